-- How long a single write of one table waits while another table takes a long bulk write
-- (docs/BENCH.md, "A write beside a bulk load").
--   ./dvlua bench/write_beside_bulk.lua [SERVER_BINARY] [BULK_ROWS] [CHUNK (at most 1000)]
-- Starts `SERVER_BINARY --serve` on a fresh SQLite file. One client process loads BULK_ROWS
-- accounts with CreateMultiple, CHUNK rows a request (each request one transaction, as
-- Dataverse's CreateMultiple is); meanwhile this process creates contacts one at a time and
-- times each create. Prints the contacts' latency (median, p99, max) while the load ran, and
-- the load's own rate. With one writer for the whole store, a contact waits for the chunk
-- under way; with a file per table, it does not.
local server = arg[1] or "./dvlua"
local bulk_rows = tonumber(arg[2] or "100000")
local chunk = tonumber(arg[3] or "1000")

local dataverse = require "dataverse"
local clock = require("dataverse.core").now
local sleep = require("dataverse.core").sleep

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local dir = sh("mktemp -d /tmp/dvlua-bench.XXXXXX"):gsub("%s+$", "")
local LOADER = [[
local dataverse = require "dataverse"
local url, n, chunk, out = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local org = dataverse.connect { url = url, token = "bench" }
local clock = require("dataverse.core").now
local rows = {}
for i = 1, n do rows[i] = { name = "bulk " .. i, revenue = i } end
local t0 = clock()
local ok, err = pcall(org.create_many, org, "account", rows, { batch_size = chunk })
local f = io.open(out, "w")
f:write(ok and string.format("%.6f %.6f\n", t0, clock()) or ("failed: " .. tostring(err) .. "\n"))
f:close()
]]
local lfile = dir .. "/loader.lua"
local f = assert(io.open(lfile, "w"))
f:write(LOADER)
f:close()

os.execute(server .. " --serve --listen 127.0.0.1:0 --db " .. dir .. "/org.sqlite >" .. dir .. "/url 2>" .. dir .. "/log & echo $! >" .. dir .. "/pid")
local pid = read(dir .. "/pid"):match("%d+")
local url
for _ = 1, 200 do
  url = read(dir .. "/url"):match("(http://[%d%.]+:%d+)\n")
  if url then break end
  sleep(0.05)
end
if not url then
  io.stderr:write("the server did not start: ", read(dir .. "/log"), "\n")
  os.exit(1)
end
local org = dataverse.connect { url = url, token = "bench" }
org:whoami()

local done = dir .. "/done"
os.execute(string.format("./dvlua %s %s %d %d %s >%s/loader.err 2>&1 &", lfile, url, bulk_rows, chunk, done, dir))
-- Contacts, one at a time, for as long as the load runs.
local lat, i = {}, 0
while read(done) == "" do
  i = i + 1
  local a = clock()
  org:create("contact", { lastname = "beside " .. i })
  lat[#lat + 1] = (clock() - a) * 1000
  if i > 1000000 then break end
end
local t0, t1 = read(done):match("^([%d.]+) ([%d.]+)")
os.execute("kill " .. pid)
if not t0 then
  io.stderr:write("the load failed: ", read(done), read(dir .. "/loader.err"), "\n")
  os.exit(1)
end
os.execute("rm -rf " .. dir)
table.sort(lat)
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] end
local slow = 0
for _, ms in ipairs(lat) do if ms > 10 then slow = slow + 1 end end
print(string.format("%s: %d single contact creates beside a load of %d accounts (%d a request, %.0f rows/s): latency median %.2f ms, p99 %.2f ms, max %.2f ms, %d over 10 ms",
  server, #lat, bulk_rows, chunk, bulk_rows / (tonumber(t1) - tonumber(t0)), pct(0.5), pct(0.99), lat[#lat], slow))
