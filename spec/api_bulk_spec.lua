-- Bulk writes and org:batch through the public API, against in-process emulators over HTTP.
local dataverse = require "dataverse"
local E = require "emulator"

local function import_books(emu)
  local org = dataverse.connect { emulator = emu }
  local b = E.import_body(E.books)
  local _, _, body = org:request("POST", "ImportSolution", b)
  return org, body
end

local function code(i) return ("C%06d"):format(i) end

local function source(n, tag)
  local rows = {}
  for i = 1, n do
    rows[i] = { sample_bookcode = code(i), sample_name = (tag or "book ") .. i, sample_pages = i }
  end
  return rows
end

-- Every row of the table, by book code; fails on a code seen twice.
local function table_by_code(org)
  local by = {}
  local n = 0
  for row in org:query("sample_book", { columns = { "sample_bookcode", "sample_name", "sample_pages", "sample_bookid" }, page_size = 5000 }) do
    assert(not by[row.sample_bookcode], "book code written twice: " .. tostring(row.sample_bookcode))
    by[row.sample_bookcode] = row
    n = n + 1
  end
  return by, n
end

local function assert_table_equals(org, rows)
  local by, n = table_by_code(org)
  assert.equals(#rows, n)
  for i, r in ipairs(rows) do
    local got = by[r.sample_bookcode]
    assert(got, "row " .. i .. " missing")
    assert.equals(r.sample_name, got.sample_name)
    assert.equals(r.sample_pages, got.sample_pages)
  end
  return by
end

describe("bulk writes", function()
  local emu, org

  setup(function()
    emu = dataverse.emulator.start { db = ":memory:", key_delay = 0, faults = "" }
    org = import_books(emu)
  end)
  teardown(function()
    org:close()
    emu:stop()
  end)

  it("creates, updates, upserts and deletes 10,000 rows, checked row by row", function()
    local rows = source(10000)
    local res = org:create_many("sample_book", rows)
    assert.equals(10000, res.written)
    assert.equals(0, res.failed)
    for i = 1, 10000 do
      assert.is_true(res[i].created)
      assert.is_true(dataverse.odata.is_guid(res[i].id))
    end
    local by = assert_table_equals(org, rows)
    for i = 1, 10000 do assert.equals(res[i].id, by[code(i)].sample_bookid) end

    local upd = {}
    for i = 1, 10000 do
      upd[i] = { sample_bookid = res[i].id, sample_name = "updated " .. i }
      rows[i].sample_name = "updated " .. i
    end
    local ures = org:update_many("sample_book", upd)
    assert.equals(10000, ures.written)
    assert.equals(res[77].id, ures[77].id)
    assert.is_false(ures[77].created)
    assert_table_equals(org, rows)

    -- upsert by alternate key: the first 5,000 exist, the next 5,000 are new
    local ups = {}
    for i = 5001, 15000 do
      ups[#ups + 1] = { sample_bookcode = code(i), sample_name = "upserted " .. i, sample_pages = i }
      rows[i] = ups[#ups]
    end
    local pres = org:upsert_many("sample_book", ups, { key = { "sample_bookcode" } })
    assert.equals(10000, pres.written)
    assert_table_equals(org, rows)

    local ids = {}
    for i = 1, 10000 do ids[i] = res[i].id end
    local dres = org:delete_many("sample_book", ids)
    assert.equals(10000, dres.written)
    assert.is_true(dres[1].deleted)
    local keys = {}
    for i = 10001, 15000 do keys[#keys + 1] = { sample_bookcode = code(i) } end
    assert.equals(5000, org:delete_many("sample_book", keys).written)
    assert.equals(0, org:count("sample_book"))
  end)

  it("reports a bad row at its position, writes the other chunks, and writes nothing twice on rerun", function()
    local rows = source(3000, "bad ")
    rows[1500].sample_name = ("x"):rep(200) -- longer than the column allows
    local res = org:create_many("sample_book", rows, { batch_size = 500 })
    assert.equals(2999, res.written)
    assert.equals(1, res.failed)
    assert.is_table(res[1500].error)
    assert.equals(400, res[1500].error.status)
    assert.is_true(res[1499].created)
    assert.is_true(res[1501].created)
    assert.equals(2999, org:count("sample_book"))
    -- the rerun, by key: every row once
    rows[1500].sample_name = "fixed"
    local again = org:upsert_many("sample_book", rows, { key = "sample_bookcode", batch_size = 500 })
    assert.equals(3000, again.written)
    assert_table_equals(org, rows)
    -- a second create_many of the same rows is refused row by row (alternate key taken)
    local dup = org:create_many("sample_book", { rows[1], rows[2] })
    assert.equals(2, dup.failed)
    assert.equals(412, dup[1].error.status)
    assert.equals(3000, org:count("sample_book"))
    local ids = {}
    for row in org:query("sample_book", { columns = "sample_bookid" }) do ids[#ids + 1] = row.sample_bookid end
    org:delete_many("sample_book", ids)
  end)

  it("deletes through $batch change sets where DeleteMultiple is not offered, a missing row failing alone", function()
    local rows = source(30, "del ")
    local res = org:create_many("sample_book", rows)
    local ids = {}
    for i = 1, 30 do ids[i] = res[i].id end
    ids[17] = "00000000-0000-0000-0000-0000000000aa" -- no such row
    local dres = org:delete_many("sample_book", ids, { batch_size = 10 })
    assert.equals(29, dres.written)
    assert.equals(404, dres[17].error.status)
    assert.is_true(dres[16].deleted)
    assert.is_true(dres[18].deleted)
    assert.equals(1, org:count("sample_book", { filter = "startswith(sample_name,'del ')" }))
    org:delete_many("sample_book", { res[17].id })
  end)

  it("stops at the first failed chunk when continue_on_error is false, saying what was written", function()
    local rows = source(1000, "stop ")
    rows[450].sample_name = ("x"):rep(200)
    local res = org:create_many("sample_book", rows, { batch_size = 200, continue_on_error = false })
    assert.equals(401, res.stopped_at)
    assert.equals(400, res.written)
    for i = 1, 400 do assert.is_true(res[i].created) end
    for i = 401, 1000 do assert.is_table(res[i].error) end
    assert.equals("not_run", res[700].error.code)
    assert.equals(400, org:count("sample_book"))
    local ids = {}
    for i = 1, 400 do ids[i] = res[i].id end
    org:delete_many("sample_book", ids)
  end)

  it("reports progress after each chunk and raises a progress callback's error once all are written", function()
    local rows = source(1000, "progress ")
    local seen = {}
    local res = org:upsert_many("sample_book", rows, {
      key = { "sample_bookcode" }, batch_size = 300,
      on_progress = function(done, total) seen[#seen + 1] = { done, total } end,
    })
    assert.equals(1000, res.written)
    assert.equals(4, #seen)
    local last = 0
    for _, p in ipairs(seen) do
      assert.equals(1000, p[2])
      assert.is_true(p[1] > last)
      last = p[1]
    end
    assert.equals(1000, last)
    local calls = 0
    local ok, err = pcall(org.update_many, org, "sample_book", source(1000, "again "), {
      key = { "sample_bookcode" }, batch_size = 250,
      on_progress = function() calls = calls + 1 error("progress callback broke") end,
    })
    assert.is_false(ok)
    assert.matches("progress callback broke", tostring(err))
    assert.equals(1, calls)
    local by = table_by_code(org)
    assert.equals("again 1000", by[code(1000)].sample_name)
    ok, err = pcall(org.create_many, org, "sample_book", {}, { on_progress = 3 })
    assert.is_false(ok)
    assert.matches("on_progress", tostring(err))
    local ids = {}
    for _, r in pairs(by) do ids[#ids + 1] = r.sample_bookid end
    org:delete_many("sample_book", ids)
  end)

  it("validates rows and options before sending anything", function()
    local before = org:count("sample_book")
    local ok, err = pcall(org.create_many, org, "sample_book", { { sample_name = "a" }, "oops" })
    assert.is_false(ok)
    assert.matches("rows%[2%]: table expected, got string", err)
    ok, err = pcall(org.upsert_many, org, "sample_book", { { sample_bookcode = "K1" }, { sample_name = "no key" } },
      { key = { "sample_bookcode" } })
    assert.is_false(ok)
    assert.matches("rows%[2%]: key column 'sample_bookcode' is missing", err)
    ok, err = pcall(org.update_many, org, "sample_book", { { sample_name = "no id" } })
    assert.matches("rows%[1%]: the primary id column 'sample_bookid' is missing", err)
    ok, err = pcall(org.create_many, org, "sample_book", {}, { batchsize = 10 })
    assert.matches("unknown option 'batchsize'", err)
    ok, err = pcall(org.create_many, org, "sample_book", {}, { batch_size = 5000 })
    assert.matches("batch_size", err)
    ok, err = pcall(org.delete_many, org, "sample_book", { "not-a-guid" })
    assert.matches("rows%[1%]", err)
    ok, err = pcall(org.create_many, org, "sample_book", { { [1] = "x" } })
    assert.matches("rows%[1%]: '1' is not a column name", err)
    assert.equals(before, org:count("sample_book"))
  end)
end)

describe("bulk writes under faults", function()
  it("ends with the table equal to the source despite 429s and dropped connections", function()
    local emu = dataverse.emulator.start { db = ":memory:", key_delay = 0, faults = "" }
    local org = import_books(emu)
    local rows = source(4000, "fault ")
    emu:faults("429=0/3,drop/5")
    local res = org:create_many("sample_book", rows, { batch_size = 250 })
    for i = 1, 4000, 2 do rows[i].sample_name = "changed " .. i end
    local ures = org:upsert_many("sample_book", rows, { key = { "sample_bookcode" }, batch_size = 300 })
    local ids = {}
    for i = 1, 4000, 3 do ids[#ids + 1] = res[i].id end
    local dres = org:delete_many("sample_book", ids, { batch_size = 100 })
    assert.equals(4000, res.written)
    assert.equals(4000, ures.written)
    assert.equals(#ids, dres.written)
    local left = {}
    for i = 1, 4000 do
      if (i - 1) % 3 ~= 0 then left[#left + 1] = rows[i] end
    end
    assert_table_equals(org, left)
    org:close()
    emu:stop()
  end)
end)

describe("org:batch", function()
  local emu, org

  setup(function()
    emu = dataverse.emulator.start { db = ":memory:", key_delay = 0 }
    org = import_books(emu)
  end)
  teardown(function()
    org:close()
    emu:stop()
  end)

  it("answers each request in order, with ids, bodies and $1 references", function()
    local res = org:batch(function(b)
      b:changeset(function(cs)
        local acc = cs:create("account", { name = "Batch account" })
        assert.equals("$1", acc)
        local con = cs:create("contact", { firstname = "Ada", ["parentcustomerid_account@odata.bind"] = acc })
        cs:update("account", acc, { ["primarycontactid@odata.bind"] = con })
      end)
      b:retrieve("account", "00000000-0000-0000-0000-000000000000")
      b:request("GET", "accounts?$select=name&$filter=name eq 'Batch account'")
      b:request("GET", "/api/data/v9.2/WhoAmI")
    end, { continue_on_error = true })
    assert.equals(6, #res)
    assert.is_true(dataverse.odata.is_guid(res[6].body.UserId))
    assert.equals(204, res[1].status)
    assert.is_true(dataverse.odata.is_guid(res[1].id))
    assert.is_true(dataverse.odata.is_guid(res[2].id))
    assert.equals(204, res[3].status)
    assert.equals(404, res[4].status)
    assert.is_table(res[4].error)
    assert.equals(200, res[5].status)
    assert.equals("Batch account", res[5].body.value[1].name)
    local acc = org:retrieve("account", res[1].id, { columns = { "_primarycontactid_value" } })
    assert.equals(res[2].id, acc._primarycontactid_value)
    local con = org:retrieve("contact", res[2].id, { columns = { "_parentcustomerid_value" } })
    assert.equals(res[1].id, con._parentcustomerid_value)
  end)

  it("rolls back only the change set whose request failed", function()
    local res = org:batch(function(b)
      b:changeset(function(cs)
        cs:create("sample_book", { sample_bookcode = "CS-1", sample_name = "kept" })
      end)
      b:changeset(function(cs)
        cs:create("sample_book", { sample_bookcode = "CS-2", sample_name = "rolled back" })
        cs:create("sample_book", { sample_bookcode = "CS-3", sample_name = ("x"):rep(200) })
        cs:create("sample_book", { sample_bookcode = "CS-4", sample_name = "never run" })
      end)
      b:changeset(function(cs)
        cs:create("sample_book", { sample_bookcode = "CS-5", sample_name = "kept too" })
      end)
    end, { continue_on_error = true })
    assert.equals(5, #res)
    assert.equals(204, res[1].status)
    assert.equals("rolled_back", res[2].error.code)
    assert.equals(400, res[3].status)
    assert.is_table(res[3].error)
    assert.equals("rolled_back", res[4].error.code)
    assert.equals(204, res[5].status)
    assert.equals(2, org:count("sample_book", { filter = "startswith(sample_bookcode,'CS-')" }))
    assert.is_nil(org:retrieve("sample_book", { sample_bookcode = "CS-2" }))
    assert.is_table(org:retrieve("sample_book", { sample_bookcode = "CS-5" }))
  end)

  it("stops after a failure unless continue_on_error is given", function()
    local res = org:batch(function(b)
      b:create("sample_book", { sample_bookcode = "ST-1", sample_name = ("x"):rep(200) })
      b:create("sample_book", { sample_bookcode = "ST-2", sample_name = "not run" })
    end)
    assert.equals(2, #res)
    assert.equals(400, res[1].status)
    assert.equals("not_run", res[2].error.code)
    assert.is_nil(org:retrieve("sample_book", { sample_bookcode = "ST-2" }))
  end)

  it("refuses misuse with clear errors", function()
    local ok, err = pcall(org.batch, org, function(b)
      b:changeset(function(cs) cs:request("GET", "accounts") end)
    end)
    assert.is_false(ok)
    assert.matches("GET requests are not allowed in a change set", err)
    ok, err = pcall(org.batch, org, function() end, { bogus = 1 })
    assert.matches("unknown option 'bogus'", err)
    ok, err = pcall(org.batch, org, "nope")
    assert.matches("function expected", err)
  end)
end)
