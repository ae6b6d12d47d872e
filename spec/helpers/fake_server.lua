-- A scriptable HTTP/1.1 test server on loopback, run as a child process by the specs.
--
-- As a module (in a spec):
--   local fake = require "fake_server"
--   local srv = fake.start [[
--     return function(req, n)            -- req: method, path, headers (lower-case), body, conn
--       return { status = 200, headers = { ["Content-Type"] = "text/plain" }, body = "hi" }
--     end
--   ]]
--   ... srv.url .. "/path" ...
--   local seen = srv:requests()          -- every request received, in order
--   srv:stop()
-- The script may also return a list of responses, served in order (the last one repeats).
-- A response may say hang = true (read the request, never answer), close = true (close the
-- connection after answering) or body_file = path (send a file's bytes as the body).
--
-- As a process: dvlua spec/helpers/fake_server.lua serve SCRIPT LOG PORTFILE
-- Each request is appended to LOG as a Lua constructor line R{...}; the chosen port is written
-- to PORTFILE once the server listens. It exits after 60 s without a connection or request.

local REASONS = {
  [200] = "OK", [201] = "Created", [204] = "No Content", [400] = "Bad Request",
  [401] = "Unauthorized", [404] = "Not Found", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function serve(script_path, log_path, port_path)
  local socket = require "socket"
  local handler = assert(dofile(script_path))
  if type(handler) == "table" then
    local list = handler
    handler = function(_, n) return list[math.min(n, #list)] end
  end
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local log = assert(io.open(log_path, "ab"))
  local tmp = port_path .. ".tmp"
  local pf = assert(io.open(tmp, "wb"))
  pf:write(tostring(port))
  pf:close()
  os.rename(tmp, port_path)

  local clients, ids, hung = {}, {}, {}
  local nconn, nreq = 0, 0
  local last = socket.gettime()

  local function drop(c)
    for i, x in ipairs(clients) do
      if x == c then table.remove(clients, i) break end
    end
    ids[c] = nil
    c:close()
  end

  local function record(req)
    local parts = {}
    for k, v in pairs(req.headers) do
      parts[#parts + 1] = string.format("[%q]=%q", k, v)
    end
    log:write(string.format("R{method=%q,path=%q,body=%q,conn=%d,headers={%s}}\n",
      req.method, req.path, req.body, req.conn, table.concat(parts, ",")))
    log:flush()
  end

  local function handle(c)
    local line, err = c:receive("*l")
    if not line then drop(c) return end
    if line == "" then return end
    local method, path = line:match("^(%S+)%s+(%S+)")
    local headers = {}
    while true do
      local h = c:receive("*l")
      if not h then drop(c) return end
      if h == "" then break end
      local name, value = h:match("^([^:]+):%s*(.-)%s*$")
      if name then headers[name:lower()] = value end
    end
    local body = ""
    local len = tonumber(headers["content-length"] or "0")
    if len and len > 0 then body = c:receive(len) or "" end
    nreq = nreq + 1
    local req = { method = method, path = path, headers = headers, body = body, conn = ids[c] }
    record(req)
    local ok, resp = pcall(handler, req, nreq)
    if not ok then resp = { status = 500, body = "fake server script failed: " .. tostring(resp) } end
    resp = resp or { status = 404 }
    if resp.hang then
      for i, x in ipairs(clients) do
        if x == c then table.remove(clients, i) break end
      end
      hung[#hung + 1] = c
      return
    end
    local rbody = resp.body_file and read_all(resp.body_file) or resp.body or ""
    local status = resp.status or 200
    local out = { string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Status") }
    local has_len = false
    for k, v in pairs(resp.headers or {}) do
      if k:lower() == "content-length" then has_len = true end
      out[#out + 1] = k .. ": " .. v .. "\r\n"
    end
    if not has_len then out[#out + 1] = "Content-Length: " .. #rbody .. "\r\n" end
    if resp.close then out[#out + 1] = "Connection: close\r\n" end
    out[#out + 1] = "\r\n"
    if method ~= "HEAD" then out[#out + 1] = rbody end
    c:send(table.concat(out))
    if resp.close then drop(c) end
  end

  while socket.gettime() - last < 60 do
    local watch = { server }
    for _, c in ipairs(clients) do watch[#watch + 1] = c end
    local ready = socket.select(watch, nil, 0.5)
    for _, s in ipairs(ready) do
      last = socket.gettime()
      if s == server then
        local c = server:accept()
        if c then
          c:settimeout(5)
          nconn = nconn + 1
          ids[c] = nconn
          clients[#clients + 1] = c
        end
      else
        handle(s)
      end
    end
  end
  log:close()
end

if select(1, ...) == "serve" then
  local _, script, logp, portp = ...
  serve(script, logp, portp)
  return
end

-- ---- the module the specs use ----

local M = {}
M.bin = os.getenv("DVLUA") or "./dvlua"

local function sleep(s)
  require("socket").sleep(s)
end

local Server = {}
Server.__index = Server

-- Every request received so far: { method=, path=, body=, conn=, headers={lower-case} }.
function Server:requests()
  local list = {}
  local text = read_all(self.log) or ""
  local chunk = assert(load(text, "=fake_server_log", "t", { R = function(r) list[#list + 1] = r end }))
  chunk()
  return list
end

function Server:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pid = nil
  end
  for _, p in ipairs({ self.script, self.log, self.portfile, self.pidfile, self.out }) do
    os.remove(p)
  end
end

-- Starts a server running script (Lua source returning a handler function or a response list).
function M.start(script)
  local self = setmetatable({}, Server)
  self.script = os.tmpname()
  self.log = os.tmpname()
  self.portfile = os.tmpname()
  self.pidfile = os.tmpname()
  self.out = os.tmpname()
  os.remove(self.portfile)
  local f = assert(io.open(self.script, "wb"))
  f:write(script)
  f:close()
  local here = debug.getinfo(1, "S").source:match("^@(.*)$") or "spec/helpers/fake_server.lua"
  local cmd = string.format("%s %s serve %s %s %s >%s 2>&1 & echo $! >%s", M.bin, here,
    self.script, self.log, self.portfile, self.out, self.pidfile)
  assert(os.execute(cmd))
  self.pid = tonumber((read_all(self.pidfile) or ""):match("%d+"))
  for _ = 1, 500 do
    local p = read_all(self.portfile)
    if p and tonumber(p) then
      self.port = tonumber(p)
      break
    end
    sleep(0.01)
  end
  if not self.port then
    local why = read_all(self.out) or ""
    self:stop()
    error("fake server did not start: " .. why)
  end
  self.url = "http://127.0.0.1:" .. self.port
  return self
end

-- A loopback port with nothing listening (bound, then closed).
-- dataverse.http options with extra's on top of short waits everywhere: what a spec checks
-- is what is retried, not how long it takes.
function M.fast(extra)
  local o = { backoff_base = 0.01, backoff_cap = 0.05, timeout = 5, connect_timeout = 2 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

function M.closed_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

M.read_file = read_all
return M
