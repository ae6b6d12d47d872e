-- Write throughput of the emulator with 1 and with 8 clients at once, all writing one table
-- or each writing a table of its own (docs/BENCH.md, "Concurrent writers").
--   ./dvlua bench/concurrent_writes.lua [--tables same|own|both] [--runs N] [SERVER_BINARY] [ROWS_PER_CLIENT] [CLIENTS...]
-- For each client count, and each mode asked for (default both, "same" first), starts
-- `SERVER_BINARY --serve` on a fresh SQLite file, creates one table per client over the Web
-- API (new_bench1, new_bench2, ..., each with a primary name column and a whole-number
-- column) and runs that many dvlua processes, each creating ROWS_PER_CLIENT rows one
-- request at a time over its own keep-alive connection:
--   same  every client creates rows of new_bench1;
--   own   client i creates rows of new_bench<i>.
-- The tables, the rows and the server's state are alike in both modes but for which table
-- each client writes.
-- Prints, per mode and client count, rows per second over all clients, the latency of one
-- create (mean and 99th percentile, as the clients timed them) and the server's CPU time per
-- create (Linux, from /proc, counted from the moment the clients start); with both modes,
-- also the ratio own / same. --runs N repeats each client count N times (with both modes,
-- N pairs of runs, the median of their ratios reported). Clients connect and look their table up first, then start
-- together (a start file) and are timed from then on. Afterwards every create must be stored
-- exactly once, in its client's table; a client that fails, or a row lost, doubled or in
-- another client's table, stops the run with the client's error output and the server's log.
local USAGE = "usage: ./dvlua bench/concurrent_writes.lua [--tables same|own|both] [--runs N] [SERVER_BINARY] [ROWS_PER_CLIENT] [CLIENTS...]"

local function usage_error(msg)
  io.stderr:write("concurrent_writes: ", msg, "\n", USAGE, "\n")
  os.exit(2)
end

local modes, positional, runs_arg = { "same", "own" }, {}, "1"
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    local value = a:match("^%-%-tables=(.*)$")
    local runs = a:match("^%-%-runs=(.*)$")
    if a == "--tables" then
      value = arg[i + 1] or usage_error("--tables needs a value: same, own or both")
      i = i + 1
    elseif a == "--runs" then
      runs = arg[i + 1] or usage_error("--runs needs a number")
      i = i + 1
    end
    if runs then
      runs_arg = runs
    elseif value then
      if value == "both" then modes = { "same", "own" }
      elseif value == "same" or value == "own" then modes = { value }
      else usage_error("--tables is same, own or both, not '" .. value .. "'") end
    elseif a == "-h" or a == "--help" then
      print(USAGE)
      os.exit(0)
    elseif a:match("^%-") then
      usage_error("unknown option '" .. a .. "'")
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
end
local function count_arg(s, what)
  local n = tonumber(s)
  if not n or n < 1 or n ~= math.floor(n) then usage_error(what .. " must be a whole number above 0, not '" .. s .. "'") end
  return math.tointeger(n)
end
local server = positional[1] or "./dvlua"
local rows = count_arg(positional[2] or "2000", "ROWS_PER_CLIENT")
local repeats = count_arg(runs_arg, "--runs")
local counts = {}
for i = 3, #positional do counts[#counts + 1] = count_arg(positional[i], "CLIENTS") end
if #counts == 0 then counts = { 1, 8 } end

local LABEL = { same = "same table", own = "own table per client" }

-- The table client c writes.
local function target(mode, c)
  return "new_bench" .. (mode == "same" and 1 or c)
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local dir = sh("mktemp -d /tmp/dvlua-bench.XXXXXX"):gsub("%s+$", "")
local tick_ms = 1000 / (tonumber(sh("getconf CLK_TCK 2>/dev/null")) or 100)
local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Looking the table up (the first request naming it asks for its metadata) happens before
-- the start, so the timed creates are creates only.
local WRITER = [[
local dataverse = require "dataverse"
local url, n, go, out, tag, tbl = table.unpack(arg, 1, 6)
n = tonumber(n)
local org = dataverse.connect { url = url, token = "bench" }
org:whoami()
org:count(tbl)
assert(io.open(out .. ".ready", "w")):write("ready\n"):close()
while not io.open(go) do os.execute("sleep 0.01") end
local clock = require("dataverse.core").now
local lat = {}
local t0 = clock()
for i = 1, n do
  local a = clock()
  org:create(tbl, { new_name = tag .. " " .. i, new_number = i })
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

-- On failure the server stops and the start file appears, so clients still waiting for
-- it go on to fail against the stopped server instead of waiting for ever.
local server_pid, go_file
local function fail(msg)
  if server_pid then os.execute("kill " .. server_pid) end
  if go_file then io.open(go_file, "w"):close() end
  io.stderr:write(msg, "\n(files kept in ", dir, ")\n")
  os.exit(1)
end

local function label(text)
  return { ["@odata.type"] = "Microsoft.Dynamics.CRM.Label",
    LocalizedLabels = { { ["@odata.type"] = "Microsoft.Dynamics.CRM.LocalizedLabel", Label = text, LanguageCode = 1033 } } }
end

-- new_bench<c> for c = 1..clients, as "Create and update table definitions using the Web
-- API" shows: a user-owned table with its primary name column (the only column a new
-- table's definition may hold), then a whole-number column posted to its Attributes.
local function create_tables(org, clients)
  local function post(path, what, body)
    local status, _, answer = org:request("POST", path, body)
    if status ~= 204 then
      local text = type(answer) == "table" and require("cjson").encode(answer) or tostring(answer)
      fail(string.format("creating %s answered %s: %s", what, status, text))
    end
  end
  for c = 1, clients do
    post("EntityDefinitions", "table new_bench" .. c, {
      ["@odata.type"] = "Microsoft.Dynamics.CRM.EntityMetadata",
      SchemaName = "new_Bench" .. c,
      DisplayName = label("Bench " .. c),
      DisplayCollectionName = label("Bench " .. c .. " rows"),
      OwnershipType = "UserOwned",
      IsActivity = false,
      HasActivities = false,
      HasNotes = false,
      Attributes = { {
        ["@odata.type"] = "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        AttributeType = "String",
        AttributeTypeName = { Value = "StringType" },
        SchemaName = "new_Name",
        IsPrimaryName = true,
        MaxLength = 100,
        FormatName = { Value = "Text" },
        DisplayName = label("Name"),
        RequiredLevel = { Value = "None" },
      } },
    })
    post("EntityDefinitions(LogicalName='new_bench" .. c .. "')/Attributes", "column new_bench" .. c .. ".new_number", {
      ["@odata.type"] = "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
      AttributeType = "Integer",
      AttributeTypeName = { Value = "IntegerType" },
      SchemaName = "new_Number",
      MinValue = -2147483648,
      MaxValue = 2147483647,
      Format = "None",
      DisplayName = label("Number"),
      RequiredLevel = { Value = "None" },
    })
  end
end

-- Every row of every table, by name: each row the clients created must be in its client's
-- table exactly once, and nothing else may be there.
local function verify(org, mode, clients)
  local seen, n = {}, 0
  for t = 1, clients do
    local tbl = "new_bench" .. t
    for row in org:query(tbl, { columns = { "new_name" }, page_size = 5000 }) do
      local name = row.new_name or ""
      local c, i = name:match("^c(%d+) (%d+)$")
      c, i = tonumber(c), tonumber(i)
      if not c or c > clients or i < 1 or i > rows then fail("row '" .. name .. "' in " .. tbl .. " was created by no client") end
      if target(mode, c) ~= tbl then fail("row '" .. name .. "' is in " .. tbl .. ", not in its client's table " .. target(mode, c)) end
      if seen[name] then fail("row '" .. name .. "' is in " .. tbl .. " twice") end
      seen[name] = true
      n = n + 1
    end
  end
  for c = 1, clients do
    for i = 1, rows do
      if not seen["c" .. c .. " " .. i] then
        fail("the create of 'c" .. c .. " " .. i .. "' in " .. target(mode, c) .. " was acknowledged but the row is missing")
      end
    end
  end
  return n
end

-- The server's CPU time (user + system, in clock ticks), whatever the load.
local function cpu_ticks(pid)
  local stat = read("/proc/" .. pid .. "/stat"):match("%) (.*)") or ""
  local fields = {}
  for w in stat:gmatch("%S+") do fields[#fields + 1] = w end
  return fields[12] and tonumber(fields[12]) + tonumber(fields[13])
end

-- Waits for each client's file ending in `suffix`; a client that stops first fails the run.
local function wait_clients(tag, clients, suffix, what)
  local got = {}
  for c = 1, clients do
    local base = string.format("%s.client-%d", tag, c)
    local s = ""
    for _ = 1, 6000 do
      s = read(base .. suffix)
      if s ~= "" then break end
      local rc = read(base .. ".rc"):match("%d+")
      if rc then
        fail(string.format("client %d of %d stopped (exit status %s): %s\nserver log: %s", c, clients, rc, read(base .. ".err"), read(tag .. ".log")))
      end
      os.execute("sleep 0.05")
    end
    if s == "" then fail("client " .. c .. " did not " .. what) end
    got[c] = s
  end
  return got
end

local function run(tag, mode, clients)
  local dataverse = require "dataverse"
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
  local org = dataverse.connect { url = url, token = "bench" }
  create_tables(org, clients)
  local go = tag .. ".go"
  go_file = go
  for c = 1, clients do
    local base = string.format("%s.client-%d", tag, c)
    os.execute(string.format("(./dvlua %s %s %d %s %s.out c%d %s >%s.err 2>&1; echo $? >%s.rc) &",
      wfile, url, rows, go, base, c, target(mode, c), base, base))
  end
  wait_clients(tag, clients, ".out.ready", "get ready")
  local ticks0 = cpu_ticks(pid)
  io.open(go, "w"):close()
  local first, last = math.huge, 0
  local lat = {}
  for _, s in ipairs(wait_clients(tag, clients, ".out", "finish")) do
    local a, b = s:match("^(%S+) (%S+)\n")
    first, last = math.min(first, tonumber(a)), math.max(last, tonumber(b))
    for ms in s:gmatch("\n(%S+)") do lat[#lat + 1] = tonumber(ms) end
  end
  local ticks1 = cpu_ticks(pid)
  local stored = verify(org, mode, clients)
  org:close()
  os.execute("kill " .. pid)
  -- Stopped once gone or a zombie (exited, waiting for whichever process adopted it to reap it).
  for _ = 1, 100 do
    local state = read("/proc/" .. pid .. "/stat"):match("%) (%a)")
    if not state or state == "Z" then break end
    os.execute("sleep 0.05")
  end
  server_pid = nil
  local total = rows * clients
  local sum = 0
  for _, ms in ipairs(lat) do sum = sum + ms end
  table.sort(lat)
  return {
    total = total, secs = last - first, rate = total / (last - first), mean = sum / #lat,
    p99 = lat[math.max(1, math.ceil(#lat * 0.99))], stored = stored,
    cpu = ticks0 and ticks1 and (ticks1 - ticks0) * tick_ms / total,
  }
end

local function median(list)
  table.sort(list)
  local m = #list
  return m % 2 == 1 and list[(m + 1) // 2] or (list[m // 2] + list[m // 2 + 1]) / 2
end

-- With both modes, each repetition is a pair of runs, in turn same-own and own-same, so a
-- load that rises or falls through the runs does not favour one mode; each pair's ratio
-- compares runs taken one after the other, and the median of those ratios is reported.
local n = 0
for _, clients in ipairs(counts) do
  local ratios = { rate = {}, mean = {}, cpu = {} }
  for rep = 1, repeats do
    local order = modes
    if #modes == 2 and rep % 2 == 0 then order = { modes[2], modes[1] } end
    local got = {}
    for _, mode in ipairs(order) do
      n = n + 1
      local r = run(dir .. "/run-" .. n, mode, clients)
      got[mode] = r
      print(string.format("%-20s %2d client(s): %d creates in %.2f s = %.0f creates/s, latency mean %.2f ms, p99 %.2f ms, server CPU %s ms/create (%d rows verified)",
        LABEL[mode], clients, r.total, r.secs, r.rate, r.mean, r.p99, r.cpu and string.format("%.3f", r.cpu) or "?", r.stored))
      io.stdout:flush()
    end
    if got.same and got.own then
      table.insert(ratios.rate, got.own.rate / got.same.rate)
      table.insert(ratios.mean, got.own.mean / got.same.mean)
      if got.own.cpu and got.same.cpu and got.same.cpu > 0 then table.insert(ratios.cpu, got.own.cpu / got.same.cpu) end
    end
  end
  if #ratios.rate > 0 then
    local each = {}
    for i, x in ipairs(ratios.rate) do each[i] = string.format("%.2fx", x) end
    local per_pair = #each > 1 and string.format(" (median of %d pairs; creates/s %s)", #each, table.concat(each, " ")) or ""
    print(string.format("%-20s %2d client(s): %.2fx creates/s, %.2fx mean latency, %s server CPU per create%s",
      "own / same", clients, median(ratios.rate), median(ratios.mean),
      #ratios.cpu > 0 and string.format("%.2fx", median(ratios.cpu)) or "?", per_pair))
  end
end
os.execute("rm -rf " .. dir)
