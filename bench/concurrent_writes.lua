-- Write throughput of the emulator with 1 and with 8 clients at once (docs/BENCH.md).
--   ./dvlua bench/concurrent_writes.lua [SERVER_BINARY] [ROWS_PER_CLIENT] [CLIENTS...]
-- Starts `SERVER_BINARY --serve` on a fresh SQLite file, then for each client count runs that
-- many dvlua processes, each creating ROWS_PER_CLIENT accounts one request at a time over
-- its own keep-alive connection; prints rows per second over all clients and the mean
-- latency of one create. Clients start together (a start file) and are timed from then on.
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
local url, n, go, out = arg[1], tonumber(arg[2]), arg[3], arg[4]
local org = dataverse.connect { url = url, token = "bench" }
org:whoami()
while not io.open(go) do os.execute("sleep 0.01") end
local clock = require("dataverse.core").now
local t0 = clock()
for i = 1, n do org:create("account", { name = "bench " .. i, revenue = i }) end
local f = io.open(out, "w")
f:write(string.format("%.6f %.6f\n", t0, clock()))
f:close()
]]
local wfile = dir .. "/writer.lua"
local f = assert(io.open(wfile, "w"))
f:write(WRITER)
f:close()

for _, clients in ipairs(counts) do
  local db = dir .. "/bench-" .. clients .. ".sqlite"
  os.execute(server .. " --serve --listen 127.0.0.1:0 --db " .. db .. " >" .. dir .. "/url 2>/dev/null & echo $! >" .. dir .. "/pid")
  local url
  for _ = 1, 200 do
    url = read(dir .. "/url"):match("(http://[%d%.]+:%d+)")
    if url then break end
    os.execute("sleep 0.05")
  end
  assert(url, "the server did not start")
  local go = dir .. "/go-" .. clients
  for c = 1, clients do
    os.execute(string.format("./dvlua %s %s %d %s %s/out-%d-%d >%s/err-%d-%d 2>&1 &", wfile, url, rows, go, dir, clients, c, dir, clients, c))
  end
  os.execute("sleep 1")
  local start = require("dataverse.core").now()
  io.open(go, "w"):close()
  local first, last = math.huge, 0
  for c = 1, clients do
    local path = string.format("%s/out-%d-%d", dir, clients, c)
    local s
    for _ = 1, 6000 do
      s = read(path)
      if s:match("\n") then break end
      local e = read(string.format("%s/err-%d-%d", dir, clients, c))
      if e ~= "" then error("client " .. c .. " failed: " .. e) end
      os.execute("sleep 0.05")
    end
    local a, b = s:match("(%S+) (%S+)")
    first, last = math.min(first, tonumber(a)), math.max(last, tonumber(b))
  end
  local secs = last - first
  local total = rows * clients
  print(string.format("%d client(s): %d creates in %.2f s = %.0f creates/s, mean latency %.2f ms",
    clients, total, secs, total / secs, secs * 1000 / rows))
  os.execute("kill " .. read(dir .. "/pid"):match("%d+"))
  os.execute("sleep 0.3")
  local _ = start
end
os.execute("rm -rf " .. dir)
