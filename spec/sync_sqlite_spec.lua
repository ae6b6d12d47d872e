-- scripts/sync_sqlite.lua against the in-process emulator over HTTP and a real SQLite file.
local sync = require "dataverse.sync"
local h = require "sync_mirror"
local dv = require "dv"

describe("sync_sqlite.lua", function()
  local emu, org, dir, ids

  setup(function()
    emu, org = h.start()
    dir = h.tmpdir()
    ids = h.seed(org, 9)
  end)

  teardown(function()
    if emu then emu:stop() end
    h.rmdir(dir)
  end)

  local n = 0
  local function fresh_db()
    n = n + 1
    return dir .. "/mirror" .. n .. ".sqlite"
  end

  local function run(db, extra, opts)
    local args = { "--table", "account", "--db", db, "--page-size", "2" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return h.script(emu, "sync_sqlite.lua", args, opts)
  end

  local function exact(db, columns)
    local store <close> = sync.sqlite(db)
    h.assert_exact(org, store, "account", columns)
  end

  local function token_of(db)
    local store <close> = sync.sqlite(db)
    return h.token(store, "account")
  end

  local function snapshot(db)
    local store <close> = sync.sqlite(db)
    local _, cols = sync.plan(org, { table = "account" })
    return (h.store_rows(store, "account", cols))
  end

  it("loads everything, then applies creates, updates and deletes exactly", function()
    local db = fresh_db()
    local r = run(db)
    assert.equal(0, r.status, r.stderr)
    local _, total = h.table_rows(org, "account")
    assert.matches("account: full load, " .. total .. " inserted, 0 updated, 0 deleted", r.stderr, 1, true)
    exact(db)

    local c, u, d = h.churn(org, ids)
    r = run(db)
    assert.equal(0, r.status, r.stderr)
    assert.matches(string.format("account: changes, %d inserted, %d updated, %d deleted", c, u, d), r.stderr, 1, true)
    exact(db)

    r = run(db)
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: changes, 0 inserted, 0 updated, 0 deleted", r.stderr, 1, true)
    exact(db)
  end)

  it("mirrors only the named columns, and adds a column named later, filled for every row", function()
    local db = fresh_db()
    local r = run(db, { "--columns", "name,numberofemployees" })
    assert.equal(0, r.status, r.stderr)
    exact(db, { "name", "numberofemployees" })

    h.churn(org, ids, { create = 1, update = 1, delete = 1 })
    r = run(db, { "--columns", "name,numberofemployees,revenue,donotemail" })
    assert.equal(0, r.status, r.stderr)
    -- New columns are filled by a reload of the table, swapped in when complete.
    assert.matches("account: full reload (columns added: revenue, donotemail)", r.stderr, 1, true)
    exact(db, { "name", "numberofemployees", "revenue", "donotemail" })

    r = run(db, { "--columns", "name" })
    assert.equal(0, r.status, r.stderr)
    exact(db, { "name" })
  end)

  it("mirrors lookups with their target table and, with labels, choices with their labels", function()
    local db = fresh_db()
    local contact = org:create("contact", { firstname = "Pat", lastname = "Lookup" })
    local linked = org:create("account", { name = "Linked", donotemail = true,
      ["primarycontactid@odata.bind"] = "/contacts(" .. contact .. ")" })
    ids[#ids + 1] = linked
    local store <close> = sync.sqlite(db)
    local s = sync.mirror(org, store, { table = "account", page_size = 3, progress = false, labels = true })
    assert.is_true(s.full)
    h.assert_exact(org, store, "account")
    local row = store:first("SELECT primarycontactid, primarycontactid__table, donotemail, donotemail__label FROM account " ..
      "WHERE accountid = ?", linked)
    assert.equal(contact, row.primarycontactid)
    assert.equal("contact", row.primarycontactid__table)
    assert.equal(1, row.donotemail)
    assert.equal("Yes", row.donotemail__label)
    -- A null lookup has no target.
    row = store:first("SELECT count(*) AS n FROM account WHERE primarycontactid IS NULL AND primarycontactid__table IS NOT NULL")
    assert.equal(0, row.n)
    -- Without labels the label columns go; the lookup targets stay.
    s = sync.mirror(org, store, { table = "account", page_size = 3, progress = false })
    assert.same({ "donotemail__label" }, { (function()
      for _, c in ipairs(s.dropped) do if c == "donotemail__label" then return c end end
    end)() })
    assert.is_nil(store:columns_of("account").donotemail__label)
    assert.is_truthy(store:columns_of("account").ownerid__table)
  end)

  it("ends exact after the process is killed at any page or row, rerun", function()
    local db = fresh_db()
    assert.equal(0, run(db).status)
    -- After the first page, the second, in the middle of a page, and after the last change
    -- (just before the commit).
    for _, point in ipairs { { page = 1 }, { page = 2 }, { row = 3 }, { last = true } } do
      local c, u, d = h.churn(org, ids)
      local before, rows_before = token_of(db), snapshot(db)
      local at_page, at_row = point.page, point.row
      if point.last then at_row = c + u + d end
      local r = run(db, {}, { prelude = h.kill_prelude(at_page, at_row) })
      assert.are_not.equal(0, r.status)
      assert.not_matches("inserted", r.stderr)
      -- All or nothing: neither the token nor any row moved.
      assert.equal(before, token_of(db))
      assert.same(rows_before, snapshot(db))
      r = run(db)
      assert.equal(0, r.status, r.stderr)
      exact(db)
    end
  end)

  it("ends exact after the connection drops between pages, rerun", function()
    local db = fresh_db()
    do
      local store <close> = sync.sqlite(db)
      sync.mirror(org, store, { table = "account", page_size = 2, progress = false })
    end
    h.churn(org, ids, { create = 4, update = 2, delete = 1 })
    local store <close> = sync.sqlite(db)
    local before = h.token(store, "account")
    local real = sync.each_change
    local pages = 0
    sync.each_change = function(o, opts, on_change, on_page)
      return real(o, opts, on_change, function()
        on_page()
        pages = pages + 1
        if pages == 2 then emu:faults("drop") end
      end)
    end
    -- No retries, so the dropped connection ends the run rather than being retried away.
    local once = h.connect(emu, { retries = 0 })
    local ok, err = pcall(sync.mirror, once, store, { table = "account", page_size = 2, progress = false })
    sync.each_change = real
    assert.is_false(ok)
    assert.is_truthy(err)
    assert.equal(before, h.token(store, "account"))
    -- The drop hits the next request: the third page, or the fourth when the third was
    -- already asked for (each page is requested as soon as the one before it arrives).
    assert.is_true(pages == 2 or pages == 3)
    local s = sync.mirror(org, store, { table = "account", page_size = 2, progress = false })
    assert.is_falsy(s.full)
    -- The pages committed before the drop are not fetched again: the others of the four,
    -- then one page of changes since the stopped run's snapshot.
    assert.is_true(s.resumed)
    assert.equal(4 - pages + 1, s.pages)
    h.assert_exact(org, store, "account")
  end)

  it("completes exact when the client retries 503s and a dropped connection mid-pages", function()
    local db = fresh_db()
    h.churn(org, ids, { create = 2, update = 1, delete = 1 })
    local store <close> = sync.sqlite(db)
    local real = sync.each_change
    sync.each_change = function(o, opts, on_change, on_page)
      local pages = 0
      return real(o, opts, on_change, function()
        on_page()
        pages = pages + 1
        if pages == 2 then emu:faults("503*2") end
        if pages == 4 then emu:faults("drop") end
      end)
    end
    local ok, s = pcall(sync.mirror, org, store, { table = "account", page_size = 2, progress = false })
    sync.each_change = real
    assert.is_true(ok, tostring(s))
    assert.is_true(s.pages >= 5)
    h.assert_exact(org, store, "account")
  end)

  it("reloads everything when the token has expired, keeping the old mirror readable until the swap", function()
    local db = fresh_db()
    assert.equal(0, run(db).status)
    h.churn(org, ids)
    emu:advance(8 * 24 * 3600)
    local store <close> = sync.sqlite(db)
    -- A row the mirror has, deleted now: gone after the reload, still there during it.
    local deleted
    for i, id in ipairs(ids) do
      if store:first("SELECT accountid FROM account WHERE accountid = '" .. id:lower() .. "'") then
        deleted = table.remove(ids, i)
        break
      end
    end
    assert.is_truthy(deleted)
    org:delete("account", deleted)
    local old_rows = select(2, h.store_rows(store, "account", select(2, sync.plan(org, { table = "account" }))))
    local seen_during
    local real = sync.each_change
    sync.each_change = function(o, opts, on_change, on_page)
      return real(o, opts, on_change, function()
        on_page()
        if not seen_during then
          -- Another reader, while the reload is under way.
          local reader <close> = sync.sqlite(db)
          seen_during = {
            count = tonumber(reader:first("SELECT count(*) AS n FROM account").n),
            deleted = reader:first("SELECT accountid FROM account WHERE accountid = '" .. deleted .. "'"),
          }
        end
      end)
    end
    local ok, s = pcall(sync.mirror, org, store, { table = "account", page_size = 2, progress = false })
    sync.each_change = real
    assert.is_true(ok, tostring(s))
    assert.is_true(s.expired)
    assert.matches("full reload (token expired)", sync.summary_line(s), 1, true)
    assert.equal(old_rows, seen_during.count)
    assert.is_truthy(seen_during.deleted)
    h.assert_exact(org, store, "account")
    assert.is_nil(store:columns_of("account__dvnew"))
  end)

  describe("bad input", function()
    local function file_bytes(path)
      return dv.read_file(path)
    end

    local db
    before_each(function()
      db = fresh_db()
      assert.equal(0, run(db).status)
    end)

    it("an unknown table: clear message, status 1, mirror untouched, no new file", function()
      local before = file_bytes(db)
      local r = h.script(emu, "sync_sqlite.lua", { "--table", "nosuchtable", "--db", db })
      assert.equal(1, r.status)
      assert.matches('sync_sqlite: unknown table "nosuchtable"', r.stderr, 1, true)
      assert.equal(before, file_bytes(db))
      local other = dir .. "/never.sqlite"
      r = h.script(emu, "sync_sqlite.lua", { "--table", "nosuchtable", "--db", other })
      assert.equal(1, r.status)
      assert.is_nil(io.open(other))
    end)

    it("a table without change tracking", function()
      local r = h.script(emu, "sync_sqlite.lua", { "--table", "solution", "--db", db })
      assert.equal(1, r.status)
      assert.matches('table "solution" does not have change tracking enabled', r.stderr, 1, true)
      local store <close> = sync.sqlite(db)
      assert.is_nil(store:columns_of("solution"))
      h.assert_exact(org, store, "account")
    end)

    it("an unknown column", function()
      local r = run(db, { "--columns", "name,nosuchcolumn" })
      assert.equal(1, r.status)
      assert.matches('table "account" has no column "nosuchcolumn"', r.stderr, 1, true)
    end)

    it("a database file that cannot be written", function()
      local r = run(dir .. "/missing-dir/mirror.sqlite")
      assert.equal(1, r.status)
      assert.matches("sync_sqlite: cannot open database " .. dir .. "/missing-dir/mirror.sqlite", r.stderr, 1, true)
      r = run(dir)
      assert.equal(1, r.status)
      assert.matches("sync_sqlite: cannot open database " .. dir, r.stderr, 1, true)
    end)

    it("a table of the same name that no sync made is left alone", function()
      local other = fresh_db()
      do
        local s <close> = sync.sqlite(other)
        s:exec("CREATE TABLE account (x TEXT)")
        s:exec("INSERT INTO account VALUES ('mine')")
      end
      local r = run(other)
      assert.equal(1, r.status)
      assert.matches("sync_sqlite: the store already has a table account that this sync did not make", r.stderr, 1, true)
      local s <close> = sync.sqlite(other)
      assert.equal("mine", s:first("SELECT x FROM account").x)
    end)

    it("bad options", function()
      local r = h.script(emu, "sync_sqlite.lua", { "--table", "account" })
      assert.equal(1, r.status)
      assert.matches("usage: sync_sqlite.lua", r.stderr, 1, true)
      r = run(db, { "--watch", "soon" })
      assert.equal(1, r.status)
      assert.matches('--watch needs a positive number, not "soon"', r.stderr, 1, true)
    end)
  end)

  it("--watch repeats until SIGINT, then stops cleanly with the mirror exact", function()
    local db = fresh_db()
    local errf, rcf, pidf = dir .. "/watch.err", dir .. "/watch.rc", dir .. "/watch.pid"
    local env = h.env(emu)
    local cmd = string.format("env DATAVERSE_URL=%s DATAVERSE_TOKEN=%s %s scripts/sync_sqlite.lua --table account " ..
      "--db %s --watch 1 </dev/null >/dev/null 2>%s & echo $! >%s; wait $!; echo $? >%s",
      dv.quote(env.DATAVERSE_URL), dv.quote(env.DATAVERSE_TOKEN), dv.quote(dv.bin), dv.quote(db), dv.quote(errf),
      dv.quote(pidf), dv.quote(rcf))
    os.execute("(" .. cmd .. ") >/dev/null 2>&1 &")
    -- Waits (without asserting on time) for two completed runs, then interrupts.
    local function wait_for(pred)
      for _ = 1, 600 do
        if pred() then return true end
        os.execute("sleep 0.05")
      end
      return false
    end
    assert.is_true(wait_for(function()
      local _, runs = dv.read_file(errf):gsub("account: ", "")
      return runs >= 2
    end))
    h.churn(org, ids, { create = 1, update = 1, delete = 0 })
    local pid = dv.read_file(pidf):match("%d+")
    os.execute("kill -INT " .. pid)
    assert.is_true(wait_for(function() return dv.read_file(rcf):match("%d") ~= nil end))
    local rc = tonumber(dv.read_file(rcf):match("%d+"))
    assert.equal(130, rc)
    assert.matches("sync_sqlite: interrupted", dv.read_file(errf), 1, true)
    -- every round's summary line says when it ran
    local rounds = 0
    for line in dv.read_file(errf):gmatch("[^\n]+") do
      if line:find("account: ", 1, true) then
        rounds = rounds + 1
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ account: ", line)
      end
    end
    assert.is_true(rounds >= 2)
    local r = run(db)
    assert.equal(0, r.status, r.stderr)
    assert.matches("^account: ", r.stderr)
    exact(db)
  end)
end)
