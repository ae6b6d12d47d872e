-- Write throughput of the emulator with 1 and with 8 clients at once (docs/BENCH.md).
--   ./dvlua bench/concurrent_writes.lua [SERVER_BINARY] [ROWS_PER_CLIENT] [CLIENTS...]
-- For each client count, starts `SERVER_BINARY --serve` on a fresh SQLite file and runs that
-- many dvlua processes, each creating ROWS_PER_CLIENT accounts one request at a time over
-- its own keep-alive connection; prints rows per second over all clients and the latency of
-- one create (mean and 99th percentile, as the clients timed them) and the server's CPU time
-- per create (Linux; it includes the server's start). Clients start together
-- (a start file) and are timed from then on. Afterwards every create must be in the store
-- exactly once; a client that fails, or a row lost or doubled, stops the run with the
-- client's error output and the server's log.
local server = arg[1] or "./dvlua"
local rows = tonumber(arg[2] or "2000")
local counts = {}
for i = 3, #arg do counts[#counts + 1] = tonumber(arg[i]) end
if #counts == 0 then counts = { 1, 8 } end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local dir = sh("mktemp -d /tmp/dvlua-bench.XXXXXX"):gsub("%s+$", "")
local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local WRITER = [[
local dataverse = require "dataverse"
local url, n, go, out, tag = arg[1], tonumber(arg[2]), arg[3], arg[4], arg[5]
local org = dataverse.connect { url = url, token = "bench" }
org:whoami()
while not io.open(go) do os.execute("sleep 0.01") end
local clock = require("dataverse.core").now
local lat = {}
local t0 = clock()
for i = 1, n do
  local a = clock()
  org:create("account", { name = tag .. " " .. i, revenue = i })
  lat[i] = (clock() - a) * 1000
end
local t1 = clock()
local f = io.open(out .. ".tmp", "w")
f:write(string.format("%.6f %.6f\n", t0, t1))
for i = 1, n do f:write(string.format("%.4f\n", lat[i])) end
f:close()
os.rename(out .. ".tmp", out)
]]
local wfile = dir .. "/writer.lua"
local f = assert(io.open(wfile, "w"))
f:write(WRITER)
f:close()

local server_pid
local function fail(msg)
  if server_pid then os.execute("kill " .. server_pid) end
  io.stderr:write(msg, "\n(files kept in ", dir, ")\n")
  os.exit(1)
end

-- Every row the clients created, by name; each must be there exactly once.
local function verify(url, clients)
  local dataverse = require "dataverse"
  local org = dataverse.connect { url = url, token = "bench" }
  local seen, n = {}, 0
  for row in org:query("account", { columns = { "name" }, page_size = 5000 }) do
    local name = row.name or ""
    if name:match("^c%d+ %d+$") then
      if seen[name] then fail("row '" .. name .. "' is in the store twice") end
      seen[name] = true
      n = n + 1
    end
  end
  for c = 1, clients do
    for i = 1, rows do
      if not seen["c" .. c .. " " .. i] then fail("the create of 'c" .. c .. " " .. i .. "' was acknowledged but the row is missing") end
    end
  end
  return n
end

for run, clients in ipairs(counts) do
  local tag = dir .. "/run-" .. run
  -- A URL file of this run's own, created by this run's server: a file shared between runs
  -- could still hold the previous (stopped) server's URL when it is first read.
  os.execute(server .. " --serve --listen 127.0.0.1:0 --db " .. tag .. ".sqlite >" .. tag .. ".url 2>" .. tag .. ".log & echo $! >" .. tag .. ".pid")
  local pid = read(tag .. ".pid"):match("%d+")
  server_pid = pid
  local url
  for _ = 1, 200 do
    url = read(tag .. ".url"):match("(http://[%d%.]+:%d+)\n")
    if url then break end
    os.execute("sleep 0.05")
  end
  if not url then fail("the server did not start: " .. read(tag .. ".log")) end
  local go = tag .. ".go"
  for c = 1, clients do
    local base = string.format("%s.client-%d", tag, c)
    os.execute(string.format("(./dvlua %s %s %d %s %s.out c%d >%s.err 2>&1; echo $? >%s.rc) &", wfile, url, rows, go, base, c, base, base))
  end
  os.execute("sleep 1")
  io.open(go, "w"):close()
  local first, last = math.huge, 0
  local lat = {}
  for c = 1, clients do
    local base = string.format("%s.client-%d", tag, c)
    local s = ""
    for _ = 1, 6000 do
      s = read(base .. ".out")
      if s ~= "" then break end
      local rc = read(base .. ".rc"):match("%d+")
      if rc then
        fail(string.format("client %d of %d stopped (exit status %s): %s\nserver log: %s", c, clients, rc, read(base .. ".err"), read(tag .. ".log")))
      end
      os.execute("sleep 0.05")
    end
    if s == "" then fail("client " .. c .. " did not finish") end
    local a, b = s:match("^(%S+) (%S+)\n")
    first, last = math.min(first, tonumber(a)), math.max(last, tonumber(b))
    for ms in s:gmatch("\n(%S+)") do lat[#lat + 1] = tonumber(ms) end
  end
  -- The server's CPU time (user + system, in /proc as 10 ms clock ticks), whatever the load.
  local stat = read("/proc/" .. pid .. "/stat"):match("%) (.*)") or ""
  local fields = {}
  for w in stat:gmatch("%S+") do fields[#fields + 1] = w end
  local ticks = fields[12] and tonumber(fields[12]) + tonumber(fields[13])
  local stored = verify(url, clients)
  os.execute("kill " .. pid)
  for _ = 1, 100 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
    os.execute("sleep 0.05")
  end
  local total = rows * clients
  local secs = last - first
  local sum = 0
  for _, ms in ipairs(lat) do sum = sum + ms end
  table.sort(lat)
  print(string.format("%d client(s): %d creates in %.2f s = %.0f creates/s, latency mean %.2f ms, p99 %.2f ms, server CPU %s ms/create (%d rows verified)",
    clients, total, secs, total / secs, sum / #lat, lat[math.max(1, math.ceil(#lat * 0.99))],
    ticks and string.format("%.3f", ticks * 10 / total) or "?", stored))
end
os.execute("rm -rf " .. dir)
