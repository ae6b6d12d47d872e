-- A throwaway PostgreSQL cluster for specs: initdb into a fresh temporary directory, start it
-- on a free loopback port with its unix socket in that directory, and remove everything
-- on stop (and when starting fails half way).
--
--   local pg = require "pg"
--   local cluster = pg.start()          -- raises with the server log when it cannot start
--   cluster.dsn                         -- "host=/tmp/… port=… dbname=postgres user=postgres"
--   cluster.env                         -- {PGHOST=, PGPORT=, PGUSER=, PGDATABASE=}
--   cluster:stop()                      -- idempotent; also run by __gc and __close
--
-- PostgreSQL refuses to run as root. When the specs run as root (as in CI containers), the
-- cluster is created and run by the `postgres` system user (Debian's `postgresql` package
-- creates it) through `runuser`, in a temporary directory handed over to that user; root
-- still reaches the socket, and the cluster trusts local connections, so no password is
-- involved. As any other user, the cluster simply runs as that user.
--
-- A cluster left behind by a spec process that was killed is stopped and removed by the next
-- start (each temporary directory records the process that owns it).
--
-- Speed: fsync is off and initdb skips syncing; a cluster starts in about a second.
local M = {}

M.bindir = os.getenv("PG_BINDIR") or "/usr/lib/postgresql/15/bin"

local dv = require "dv"
local q, read_file = dv.quote, dv.read_file

local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

local function is_root()
  local _, out = capture("id -u")
  return out:match("^%s*0%s*$") ~= nil
end

-- Ports some process already listens on, from /proc/net/tcp{,6} (state 0A = LISTEN).
local function listening_ports()
  local used = {}
  for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    for line in read_file(f):gmatch("[^\n]+") do
      local port, state = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:%x+%s+(%x+)")
      if port and state == "0A" then used[tonumber(port, 16)] = true end
    end
  end
  return used
end

local function pick_port()
  local used = listening_ports()
  for _ = 1, 100 do
    local port = math.random(20000, 59999)
    if not used[port] then return port end
  end
  error("no free loopback port found")
end

local Cluster = {}
Cluster.__index = Cluster

-- Runs a PostgreSQL binary as the cluster's owner.
function Cluster:run(cmd)
  if self.as_postgres then
    cmd = "runuser -u postgres -- sh -c " .. q(cmd)
  end
  return capture(cmd)
end

function Cluster:stop()
  if self.stopped then return end
  self.stopped = true
  if self.started then
    self:run(q(M.bindir .. "/pg_ctl") .. " stop -s -w -m immediate -D " .. q(self.data))
  end
  if self.dir and self.dir:match("^/tmp/") then os.execute("rm -rf " .. q(self.dir)) end
end
Cluster.__gc = Cluster.stop
Cluster.__close = Cluster.stop

-- Runs SQL through psql; returns its output, raises on failure.
function Cluster:psql(sql)
  local ok, out = capture(q(M.bindir .. "/psql") .. " -X -q -A -t -v ON_ERROR_STOP=1 " .. q(self.dsn) .. " -c " .. q(sql))
  if not ok then error("psql failed: " .. out, 2) end
  return out
end

local function start_once(self)
  local pgctl = q(M.bindir .. "/pg_ctl")
  local ok, out = self:run(q(M.bindir .. "/initdb") .. " -D " .. q(self.data) ..
    " -U postgres -A trust -E UTF8 --locale=C --no-sync --no-instructions")
  if not ok then error("initdb failed: " .. out) end
  for _ = 1, 5 do
    self.port = pick_port()
    local opts = string.format("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off " ..
      "-c synchronous_commit=off -c full_page_writes=off -c max_connections=20 -c shared_buffers=16MB",
      self.port, self.dir)
    self.started = true
    ok, out = self:run(pgctl .. " start -s -w -t 30 -D " .. q(self.data) .. " -l " .. q(self.log) .. " -o " .. q(opts))
    if ok then break end
    self.started = false
    local log = read_file(self.log)
    -- Another process took the port between the check and the start: try another one.
    if not log:find("could not bind", 1, true) and not log:find("already in use", 1, true) then
      error("pg_ctl start failed: " .. out .. "\n" .. log)
    end
  end
  if not self.started then error("pg_ctl start failed: no usable port\n" .. read_file(self.log)) end
  self.dsn = string.format("host=%s port=%d dbname=postgres user=postgres", self.dir, self.port)
  self.env = { PGHOST = self.dir, PGPORT = tostring(self.port), PGUSER = "postgres", PGDATABASE = "postgres" }
end

local function my_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("n")
  f:close()
  return pid
end

-- A spec process killed before its teardown leaves its cluster running: each start stops and
-- removes the clusters whose owning process is gone.
local function reap_orphans()
  local p = io.popen("ls -d /tmp/dvlua-pg.* 2>/dev/null")
  local dirs = p:read("a")
  p:close()
  for dir in dirs:gmatch("[^\n]+") do
    local owner = tonumber(read_file(dir .. "/owner"):match("%d+") or "")
    local alive = owner and io.open("/proc/" .. owner .. "/stat", "r")
    if alive then alive:close() end
    if owner and not alive and dir:match("^/tmp/dvlua%-pg%.%w+$") then
      local stale = setmetatable({ dir = dir, data = dir .. "/data", started = true, as_postgres = is_root() }, Cluster)
      stale:stop()
    end
  end
end

function M.start()
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  reap_orphans()
  local _, dir = capture("mktemp -d /tmp/dvlua-pg.XXXXXX")
  dir = dir:gsub("%s+$", "")
  assert(dir:match("^/tmp/dvlua%-pg%.%w+$"), "mktemp failed: " .. dir)
  local self = setmetatable({ dir = dir, data = dir .. "/data", log = dir .. "/server.log" }, Cluster)
  local owner = assert(io.open(dir .. "/owner", "w"))
  owner:write(my_pid(), "\n")
  owner:close()
  self.as_postgres = is_root()
  if self.as_postgres then
    local ok, out = capture("chown postgres: " .. q(dir))
    if not ok then
      self:stop()
      error("cannot hand " .. dir .. " to the postgres user: " .. out)
    end
  end
  local ok, err = pcall(start_once, self)
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

return M
