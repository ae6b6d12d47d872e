-- scripts/push.lua against the in-process emulator over HTTP: CSV and SQLite sources,
-- reruns that write only what is needed, failures reported per row, and kill -9 at random
-- points followed by a rerun that leaves the table equal to the source.
local dataverse = require "dataverse"
local fixture = require "push_fixture"
local dv = require "dv"
local h = require "sync_mirror"

local write, read = dv.write_file, dv.read_file

local function csv(rows)
  local t = { "sample_bookcode,sample_name,sample_author" }
  for _, r in ipairs(rows) do
    local name = r.sample_name
    if name:find('[,"]') then name = '"' .. name:gsub('"', '""') .. '"' end
    t[#t + 1] = r.sample_bookcode .. "," .. name .. "," .. (r.sample_author or "")
  end
  return table.concat(t, "\r\n") .. "\r\n"
end

-- Lua run before the script: SIGKILLs the process at its nth request, before it is sent
-- or after its answer arrived (the write applied, the script not told).
local function kill_prelude(nth, after)
  return string.format([[
local m = require("dataverse").connection
local real, n = m.send, 0
local function die()
  local f = io.open("/proc/self/stat"); local pid = f:read("n"); f:close()
  os.execute("kill -KILL " .. pid)
end
m.send = function(...)
  n = n + 1
  local mine = n -- requests of parallel chunks interleave: count this one's own number
  if mine == %d and not %s then die() end
  local a, b, c = real(...)
  if mine == %d and %s then die() end
  return a, b, c
end]], nth, tostring(after), nth, tostring(after))
end

describe("push.lua", function()
  local emu, org, dir

  setup(function() emu, org, dir = fixture.start() end)
  teardown(function() fixture.stop(emu, org, dir) end)

  local function push(args, opts)
    return h.script(emu, "push.lua", args, opts)
  end

  local function all_rows()
    local by, n = {}, 0
    for r in org:query("sample_book", { columns = { "sample_bookcode", "sample_name", "sample_author" }, page_size = 5000 }) do
      assert(by[r.sample_bookcode] == nil, "key written twice: " .. tostring(r.sample_bookcode))
      by[r.sample_bookcode] = r
      n = n + 1
    end
    return by, n
  end

  local function assert_equals_source(rows)
    local by, n = all_rows()
    assert.equals(#rows, n)
    for _, r in ipairs(rows) do
      local got = by[r.sample_bookcode]
      assert(got, "missing " .. r.sample_bookcode)
      assert.equals(r.sample_name, got.sample_name)
      if r.sample_author and r.sample_author ~= "" then assert.equals(r.sample_author, got.sample_author)
      else assert.is_true(got.sample_author == nil or got.sample_author == dataverse.json.null) end
    end
  end

  local function clear() fixture.clear(org) end

  local function source(n, tag)
    local rows = {}
    for i = 1, n do
      rows[i] = { sample_bookcode = ("P%05d"):format(i), sample_name = (tag or "Book ") .. i,
        sample_author = i % 5 == 0 and "" or ("Author " .. i % 7) }
    end
    return rows
  end

  it("upserts a CSV by key, then writes only what changed, and deletes what is missing", function()
    clear()
    local rows = source(50)
    rows[7].sample_name = 'With, comma and "quotes"'
    local file = dir .. "/books.csv"
    write(file, csv(rows))
    local r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    assert.equals(0, r.status, r.stderr)
    assert.matches("push sample_book: 50 source rows, 50 written %(50 new%), 0 unchanged, 0 deleted, 0 failed", r.stderr)
    assert_equals_source(rows)

    r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    assert.matches("50 source rows, 0 written %(0 new%), 50 unchanged", r.stderr)

    rows[3].sample_name = "changed"
    table.remove(rows, 10)
    rows[#rows + 1] = { sample_bookcode = "P99999", sample_name = "new one", sample_author = "X" }
    write(file, csv(rows))
    r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file, "--delete-missing" }
    assert.equals(0, r.status, r.stderr)
    assert.matches("50 source rows, 2 written %(1 new%), 48 unchanged, 1 deleted, 0 failed", r.stderr)
    assert_equals_source(rows)
  end)

  it("reads a SQLite table as the source", function()
    clear()
    local db = dir .. "/src.sqlite"
    local store <close> = require("dataverse.sync").sqlite(db)
    store:exec("CREATE TABLE books(sample_bookcode TEXT, sample_name TEXT, sample_author TEXT)")
    store:exec("INSERT INTO books VALUES('S1','one','A'),('S2','two',NULL)")
    local r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", "sqlite:" .. db .. ":books" }
    assert.equals(0, r.status, r.stderr)
    assert_equals_source { { sample_bookcode = "S1", sample_name = "one", sample_author = "A" },
      { sample_bookcode = "S2", sample_name = "two", sample_author = "" } }
  end)

  it("lists refused rows in the failures file, writes the others, exits 1", function()
    clear()
    local rows = source(30)
    rows[12].sample_name = ("x"):rep(150)
    local file, failures = dir .. "/bad.csv", dir .. "/failures.csv"
    write(file, csv(rows))
    local r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file, "--failures", failures,
      "--batch-size", "10" }
    assert.equals(1, r.status)
    assert.matches("29 written", r.stderr)
    assert.matches("1 row%(s%) failed, listed in", r.stderr)
    local f = read(failures)
    assert.matches("^source,key,status,code,message\n", f)
    assert.matches(file:gsub("%p", "%%%0") .. ":13,P00012,400,0x80044331,", f)
    local _, n = all_rows()
    assert.equals(29, n)
  end)

  it("refuses bad sources before writing anything, naming the line and column", function()
    clear()
    local file = dir .. "/wrong.csv"
    write(file, "sample_bookcode,nosuchcolumn\nA,1\n")
    local r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    assert.equals(1, r.status)
    assert.matches("column 'nosuchcolumn' is not a column of sample_book", r.stderr)
    write(file, "sample_bookcode,sample_name\nA,1\nA,2\n")
    r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    assert.matches("wrong.csv:3: the same key as .*wrong.csv:2", r.stderr)
    write(file, "sample_bookcode,sample_name\nA,\"open\n")
    r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    assert.matches("quoted field is not closed", r.stderr)
    write(file, "sample_name\nA\n")
    r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    assert.matches("the key column 'sample_bookcode' is not in the source", r.stderr)
    local _, n = all_rows()
    assert.equals(0, n)
  end)

  it("ends with the table equal to the CSV after kill -9 at random points and a rerun", function()
    clear()
    math.randomseed(os.time())
    local file = dir .. "/crash.csv"
    local rows = source(600, "Crash ")
    write(file, csv(rows))
    local args = { "--table", "sample_book", "--key", "sample_bookcode", "--from", file, "--batch-size", "50",
      "--delete-missing" }
    local kills = 0
    for round = 1, 6 do
      -- a different source each round: some rows change, some go, some come
      for i = round, #rows, 3 do rows[i].sample_name = "Round " .. round .. " " .. i end
      if round % 2 == 0 then table.remove(rows, round * 3) end
      rows[#rows + 1] = { sample_bookcode = ("Q%05d"):format(round), sample_name = "added " .. round, sample_author = "Z" }
      write(file, csv(rows))
      -- Counted are the requests sent with conn:send: the table's metadata, then the write
      -- chunks, at least four (twelve in the first round); so every nth below is reached.
      local nth = round == 1 and math.random(2, 13) or math.random(1, 5)
      local killed = push(args, { prelude = kill_prelude(nth, math.random() < 0.5) })
      assert(killed.status == 137 or killed.status == 0, "round " .. round .. ": " .. killed.stderr)
      if killed.status == 137 then kills = kills + 1 end
      local r = push(args)
      assert.equals(0, r.status, r.stderr)
      assert_equals_source(rows)
      -- and nothing is left to do
      r = push(args)
      assert.matches(#rows .. " source rows, 0 written %(0 new%), " .. #rows .. " unchanged, 0 deleted, 0 failed", r.stderr)
    end
    assert.equals(6, kills)
  end)

  it("ends with the table equal to the CSV despite 429s and dropped connections", function()
    clear()
    local file = dir .. "/faults.csv"
    local rows = source(800, "Faulty ")
    write(file, csv(rows))
    emu:faults("429=0/4,drop/6")
    local r = push { "--table", "sample_book", "--key", "sample_bookcode", "--from", file, "--batch-size", "40" }
    assert.equals(0, r.status, r.stderr)
    assert_equals_source(rows)
  end)
end)
