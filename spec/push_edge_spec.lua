-- scripts/push.lua against what production sources and tables hold: rows of the table with
-- no key, rows of the source that cannot be read, keys that differ only in case, and a
-- service that throttles (the summary says how much).
local dataverse = require "dataverse"
local fixture = require "push_fixture"
local dv = require "dv"
local h = require "sync_mirror"

describe("push.lua with awkward sources and tables", function()
  local emu, org, dir

  setup(function() emu, org, dir = fixture.start() end)
  teardown(function() fixture.stop(emu, org, dir) end)

  local function push(file, extra)
    local args = { "--table", "sample_book", "--key", "sample_bookcode", "--from", file }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return h.script(emu, "push.lua", args)
  end

  local function clear() fixture.clear(org) end

  -- {key or "(none)" = name}
  local function table_now()
    local t, n = {}, 0
    for r in org:query("sample_book", { columns = { "sample_bookcode", "sample_name" } }) do
      local k = r.sample_bookcode
      if k == nil or k == dataverse.json.null then k = "(none) " .. r.sample_name end
      t[k] = r.sample_name
      n = n + 1
    end
    return t, n
  end

  it("--delete-missing deletes every row of the table that has no key, in one run", function()
    clear()
    for i = 1, 3 do org:create("sample_book", { sample_name = "keyless " .. i }) end
    org:create("sample_book", { sample_name = "gone", sample_bookcode = "G-1" })
    local file = dv.write_file(dir .. "/keyless.csv", "sample_bookcode,sample_name\r\nK-1,one\r\nK-2,two\r\n")
    local r = push(file, { "--delete-missing" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("2 written %(2 new%), 0 unchanged, 4 deleted, 0 failed", r.stderr)
    assert.same({ ["K-1"] = "one", ["K-2"] = "two" }, (table_now()))
  end)

  it("--delete-missing refuses a source with no rows, and deletes nothing, unless --allow-empty-source", function()
    clear()
    org:create("sample_book", { sample_name = "kept", sample_bookcode = "E-1" })
    org:create("sample_book", { sample_name = "kept too", sample_bookcode = "E-2" })
    local file = dv.write_file(dir .. "/header_only.csv", "sample_bookcode,sample_name\r\n")
    local r = push(file, { "--delete-missing" })
    assert.equal(1, r.status)
    assert.matches(file .. " has no rows: --delete-missing would delete every row of sample_book; nothing done " ..
      "(add --allow-empty-source to empty the table)", r.stderr, 1, true)
    assert.same({ ["E-1"] = "kept", ["E-2"] = "kept too" }, (table_now()))

    local db = dir .. "/empty.sqlite"
    local store <close> = require("dataverse.sync").sqlite(db)
    store:exec("CREATE TABLE books(sample_bookcode TEXT, sample_name TEXT)")
    r = push("sqlite:" .. db .. ":books", { "--delete-missing" })
    assert.equal(1, r.status)
    assert.matches("sqlite:" .. db .. ":books has no rows: --delete-missing would delete every row", r.stderr, 1, true)
    assert.same({ ["E-1"] = "kept", ["E-2"] = "kept too" }, (table_now()))

    r = push(file, { "--delete-missing", "--allow-empty-source" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("0 source rows, 0 written %(0 new%), 0 unchanged, 2 deleted, 0 failed", r.stderr)
    local _, n = table_now()
    assert.equal(0, n)
  end)

  it("a source row with an empty key or a value that does not fit fails alone; nothing is deleted then", function()
    clear()
    org:create("sample_book", { sample_name = "kept", sample_bookcode = "OLD-1" })
    local file, failures = dir .. "/holes.csv", dir .. "/holes.failures.csv"
    dv.write_file(file, "\239\187\191sample_bookcode,sample_name,sample_pages\n" ..
      "A-1,\"first, with comma\",10\n" ..
      ",no key,11\n" ..
      "A-3,\"multi\nline\",twelve\n" ..
      "A-4,fourth,13\n")
    local r = push(file, { "--delete-missing", "--failures", failures })
    assert.equal(1, r.status)
    assert.matches("holes.csv:3: the key column 'sample_bookcode' is empty; row not written", r.stderr, 1, true)
    assert.matches("holes.csv:4: column sample_pages: 'twelve' is not a whole number; row not written", r.stderr, 1, true)
    assert.matches("--delete-missing: nothing deleted, since 2 source row(s) could not be read", r.stderr, 1, true)
    assert.matches("4 source rows, 2 written %(2 new%), 0 unchanged, 0 deleted, 2 failed", r.stderr)
    assert.same({ ["A-1"] = "first, with comma", ["A-4"] = "fourth", ["OLD-1"] = "kept" }, (table_now()))
    local f = dv.read_file(failures)
    assert.matches(file .. ":3,,,source,the key column 'sample_bookcode' is empty\n", f, 1, true)
    assert.matches(file .. ":4,A-3,,source,column sample_pages: 'twelve' is not a whole number\n", f, 1, true)
  end)

  it("keys that differ only in case are one key, as in Dataverse: two such rows in the source stop the run", function()
    clear()
    local file = dv.write_file(dir .. "/case.csv", "sample_bookcode,sample_name\nbk-1,lower\nBK-1,upper\n")
    local r = push(file)
    assert.equal(1, r.status)
    assert.matches("case.csv:3: the same key as .*case.csv:2 %(Dataverse compares keys without regard to case%)", r.stderr)
    local _, n = table_now()
    assert.equal(0, n)
  end)

  it("says how much the service throttled, and ends with the table equal to the source", function()
    clear()
    local lines = { "sample_bookcode,sample_name" }
    for i = 1, 120 do lines[#lines + 1] = ("T%03d,Throttled %d"):format(i, i) end
    local file = dv.write_file(dir .. "/throttled.csv", table.concat(lines, "\n") .. "\n")
    emu:faults("429=1*2,503,drop")
    local r = push(file, { "--batch-size", "20" })
    assert.equal(0, r.status, r.stderr)
    local retried, throttled, waited = r.stderr:match("(%d+) retried, (%d+) throttled, ([%d.]+)s waited")
    assert.is_true(tonumber(throttled) >= 2, r.stderr)
    assert.is_true(tonumber(retried) >= 4, r.stderr)
    assert.is_true(tonumber(waited) >= 1, r.stderr)
    local t, n = table_now()
    assert.equal(120, n)
    for i = 1, 120 do assert.equal("Throttled " .. i, t[("T%03d"):format(i)]) end
  end)
end)
