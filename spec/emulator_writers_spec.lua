-- Concurrent writers: eight processes creating (and deleting) rows through one `dvlua --serve`
-- on a file, with a change-tracking reader beside them. Every writer succeeds, every create it
-- was answered for is stored exactly once, every delete is gone, and a delta read from before
-- the writes reports each of them. bench/concurrent_writes.lua, which measures the same load
-- with all clients on one table and with a table per client, runs end to end in both modes
-- and checks its own rows.
local dv = require "dv"

local WRITER = [[
local dataverse = require "dataverse"
local url, n, tag, ack, go = arg[1], tonumber(arg[2]), arg[3], arg[4], arg[5]
local org = dataverse.connect { url = url, token = "t" }
org:whoami()
local f = assert(io.open(ack, "w"))
while not io.open(go) do os.execute("sleep 0.01") end
for i = 1, n do
  local name = tag .. "-" .. i
  local id = org:create("account", { name = name, revenue = i })
  f:write("C ", name, " ", id, "\n")
  f:flush() -- only what the server answered for
  if i % 5 == 0 then
    org:delete("account", id)
    f:write("D ", name, " ", id, "\n")
    f:flush()
  end
end
f:close()
]]

-- Reads the table's changes again and again while the writers run: each delta from the
-- previous token, as a sync would.
local READER = [[
local dataverse = require "dataverse"
local url, stop, out = arg[1], arg[2], arg[3]
local org = dataverse.connect { url = url, token = "t" }
local it = org:changes { entity = "account", columns = { "name" } }
for _ in it do end
local token, rounds = it.token, 0
repeat
  it = org:changes { entity = "account", columns = { "name" }, since = token }
  for _ in it do end
  token, rounds = it.token, rounds + 1
until io.open(stop)
local f = assert(io.open(out, "w"))
f:write(rounds, "\n")
f:close()
]]

local function serve(dir)
  local out, log = dir .. "/url", dir .. "/server.log"
  os.execute(dv.quote(dv.bin) .. " --serve --listen 127.0.0.1:0 --db " .. dir .. "/org.sqlite --stats " .. dir .. "/stats >" .. out .. " 2>" .. log .. " & echo $! >" .. dir .. "/pid")
  local url
  for _ = 1, 200 do
    url = dv.read_file(out):match("(http://[%d%.]+:%d+)\n")
    if url then break end
    os.execute("sleep 0.05")
  end
  return url, dv.read_file(dir .. "/pid"):match("%d+"), log
end

local function wait_for(path, tries)
  for _ = 1, tries do
    if dv.read_file(path) ~= "" then return true end
    os.execute("sleep 0.05")
  end
  return false
end

describe("emulator with concurrent writers", function()
  it("answers eight writer processes and stores each acknowledged create exactly once", function()
    local dir = dv.tmpdir()
    local pid
    finally(function()
      if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
      os.execute("rm -rf " .. dv.quote(dir))
    end)
    local url, log
    url, pid, log = serve(dir)
    assert.truthy(url, "the emulator did not start")
    local dataverse = require "dataverse"
    local org = dataverse.connect { url = url, token = "t" }
    local before = org:changes { entity = "account", columns = { "name" } }
    for _ in before do end
    assert.truthy(before.token)

    local W, N = 8, 40
    local writer = dv.write_file(dir .. "/writer.lua", WRITER)
    local reader = dv.write_file(dir .. "/reader.lua", READER)
    local go, stop = dir .. "/go", dir .. "/stop"
    for w = 1, W do
      local base = dir .. "/w" .. w
      os.execute(("(%s %s %s %d w%d %s.ack %s >%s.err 2>&1; echo $? >%s.rc) &"):format(
        dv.quote(dv.bin), writer, url, N, w, base, go, base, base))
    end
    os.execute(("(%s %s %s %s %s/reader.out >%s/reader.err 2>&1; echo $? >%s/reader.rc) &"):format(
      dv.quote(dv.bin), reader, url, stop, dir, dir, dir))
    os.execute("sleep 0.5")
    dv.write_file(go, "")
    for w = 1, W do
      assert.is_true(wait_for(dir .. "/w" .. w .. ".rc", 2400), "writer " .. w .. " did not finish")
    end
    dv.write_file(stop, "")
    assert.is_true(wait_for(dir .. "/reader.rc", 600), "the reader did not finish")
    for w = 1, W do
      local base = dir .. "/w" .. w
      assert.equals("0", dv.read_file(base .. ".rc"):match("%d+"), "writer " .. w .. ": " .. dv.read_file(base .. ".err"))
      assert.equals("", dv.read_file(base .. ".err"))
    end
    assert.equals("0", dv.read_file(dir .. "/reader.rc"):match("%d+"), dv.read_file(dir .. "/reader.err"))
    assert.is_true(tonumber(dv.read_file(dir .. "/reader.out"):match("%d+")) >= 1)

    -- What the writers were answered for, against what the store holds.
    local live, gone, n_created = {}, {}, 0
    for w = 1, W do
      for kind, name, id in dv.read_file(dir .. "/w" .. w .. ".ack"):gmatch("(%u) (%S+) (%S+)\n") do
        if kind == "C" then
          live[id] = name
          n_created = n_created + 1
        else
          live[id] = nil
          gone[id] = name
        end
      end
    end
    assert.equals(W * N, n_created)
    local seen, n_live = {}, 0
    for row in org:query("account", { columns = { "name" }, page_size = 5000 }) do
      if row.name:match("^w%d+%-%d+$") then
        assert.is_nil(seen[row.name], "stored twice: " .. row.name)
        seen[row.name] = true
        assert.equals(row.name, live[row.accountid], "unexpected row " .. row.name)
        n_live = n_live + 1
      end
    end
    local expected = 0
    for _ in pairs(live) do expected = expected + 1 end
    assert.equals(W * N - W * (N // 5), expected)
    assert.equals(expected, n_live)
    for id, name in pairs(gone) do assert.is_nil(seen[name], "deleted but stored: " .. name .. " " .. id) end

    -- A delta from before the writes: every live row, and every delete.
    local delta = org:changes { entity = "account", columns = { "name" }, since = before.token }
    local changed, removed = {}, {}
    for c in delta do
      if c.type == "new_or_updated" then changed[c.row.accountid] = true else removed[c.id] = true end
    end
    for id in pairs(live) do assert.is_true(changed[id], "change missing for " .. id) end
    for id in pairs(gone) do assert.is_true(removed[id], "delete missing for " .. id) end

    -- Stopped, the server reports the writes it committed; no request took SQLite's write
    -- lock outside its queue of writers (the log would say "bug:").
    os.execute("kill " .. pid)
    assert.is_true(wait_for(dir .. "/stats", 200), "no --stats written")
    pid = nil
    local stats = require("cjson").decode(dv.read_file(dir .. "/stats"))
    assert.is_true(stats.writes >= W * N + W * (N // 5))
    assert.equals(stats.writes, stats.commits)
    assert.is_nil(dv.read_file(log):find("bug:", 1, true), dv.read_file(log))
  end)

  it("keeps the WAL bounded while writers never pause", function()
    -- 8 x 1,000 creates (and 1,600 deletes) append over 200 MB of WAL frames; checkpoints must
    -- copy them back and the WAL start over (about 40 MB at most; it grew to 221 MB before).
    -- The rows, and so the WAL that grows, are in the account table's own file.
    local dir = dv.tmpdir()
    local pid
    finally(function()
      if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
      os.execute("rm -rf " .. dv.quote(dir))
    end)
    local url
    url, pid = serve(dir)
    assert.truthy(url, "the emulator did not start")
    local W, N = 8, 1000
    local writer = dv.write_file(dir .. "/writer.lua", WRITER)
    local go = dir .. "/go"
    for w = 1, W do
      local base = dir .. "/w" .. w
      os.execute(("(%s %s %s %d w%d %s.ack %s >%s.err 2>&1; echo $? >%s.rc) &"):format(
        dv.quote(dv.bin), writer, url, N, w, base, go, base, base))
    end
    os.execute("sleep 0.5")
    dv.write_file(go, "")
    local wal = dir .. "/org.sqlite.tables/account.sqlite-wal"
    local biggest = 0
    for w = 1, W do
      local rc = dir .. "/w" .. w .. ".rc"
      for _ = 1, 6000 do
        local f = io.open(wal)
        if f then
          biggest = math.max(biggest, f:seek("end"))
          f:close()
        end
        if dv.read_file(rc) ~= "" then break end
        os.execute("sleep 0.05")
      end
      assert.equals("0", dv.read_file(rc):match("%d+"), "writer " .. w .. ": " .. dv.read_file(dir .. "/w" .. w .. ".err"))
    end
    local f = assert(io.open(wal))
    biggest = math.max(biggest, f:seek("end"))
    f:close()
    -- a WAL that never passed SQLite's 1,000-page checkpoint would mean the writes went elsewhere
    assert.is_true(biggest > 1024 * 1024, ("the account WAL peaked at %d bytes"):format(biggest))
    assert.is_true(biggest < 64 * 1024 * 1024, ("the WAL grew to %.0f MB"):format(biggest / 1048576))
  end)

  local function bench(args)
    local out = os.tmpname()
    local ok = os.execute(dv.quote(dv.bin) .. " bench/concurrent_writes.lua " .. args .. " >" .. out .. " 2>&1")
    local text = dv.read_file(out)
    os.remove(out)
    return ok == true, text
  end

  it("runs bench/concurrent_writes.lua with 1 and then 8 clients, each run checking its rows", function()
    local ok, text = bench(dv.quote(dv.bin) .. " 15 1 8")
    assert.is_true(ok, text)
    -- both modes by default, "same" first, one line each and their ratio per client count
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equals(6, #lines, text)
    assert.matches("^same table +1 client%(s%): 15 creates .* %(15 rows verified%)$", lines[1])
    assert.matches("^own table per client +1 client%(s%): 15 creates .* %(15 rows verified%)$", lines[2])
    assert.matches("^own / same +1 client%(s%): [%d.]+x creates/s", lines[3])
    assert.matches("^same table +8 client%(s%): 120 creates .* %(120 rows verified%)$", lines[4])
    assert.matches("^own table per client +8 client%(s%): 120 creates .* %(120 rows verified%)$", lines[5])
    assert.matches("^own / same +8 client%(s%): [%d.]+x creates/s", lines[6])
  end)

  it("runs one mode of bench/concurrent_writes.lua when asked, and refuses a mode it does not know", function()
    local ok, text = bench("--tables own --runs 2 " .. dv.quote(dv.bin) .. " 5 3")
    assert.is_true(ok, text)
    local line = "own table per client +3 client%(s%): 15 creates [^\n]* %(15 rows verified%)\n"
    assert.matches("^" .. line .. line .. "$", text)
    ok, text = bench("--tables=same " .. dv.quote(dv.bin) .. " 5 2")
    assert.is_true(ok, text)
    assert.matches("^same table +2 client%(s%): 10 creates .* %(10 rows verified%)\n$", text)
    ok, text = bench("--tables mine " .. dv.quote(dv.bin) .. " 5 2")
    assert.is_false(ok)
    assert.matches("--tables is same, own or both, not 'mine'", text, 1, true)
  end)

  it("alternates the modes' order over repeated runs of bench/concurrent_writes.lua and reports the median ratio", function()
    local ok, text = bench("--runs 2 " .. dv.quote(dv.bin) .. " 5 2")
    assert.is_true(ok, text)
    local modes = {}
    for line in text:gmatch("[^\n]+") do
      modes[#modes + 1] = line:match("^(.-) +2 client%(s%): 10 creates .* %(10 rows verified%)$")
    end
    assert.same({ "same table", "own table per client", "own table per client", "same table" }, modes)
    assert.matches("\nown / same +2 client%(s%): [%d.]+x creates/s, [%d.]+x mean latency, [^\n]* %(median of 2 pairs; creates/s [%d.]+x [%d.]+x%)\n$", text)
  end)
end)
