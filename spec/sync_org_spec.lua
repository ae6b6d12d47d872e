-- scripts/sync.lua: a whole organization (20 tables with change tracking) into SQLite,
-- PostgreSQL and JSON lines, against the in-process emulator over HTTP.
local sync = require "dataverse.sync"
local dataverse = require "dataverse"
local h = require "sync_mirror"
local E = require "emulator"
local dv = require "dv"
local pg = require "pg"

local NTABLES, NROWS, PAGE = 20, 1000, 100

local function table_name(i)
  return string.format("sample_t%02d", i)
end

local function solution()
  local tables = {}
  for i = 1, NTABLES do
    local cols = { { name = "sample_name" }, { name = "sample_code" }, { name = "sample_count", type = "int" } }
    tables[i] = { name = table_name(i), set = table_name(i) .. "s", columns = cols }
  end
  return { unique = "SyncOrg", tables = tables, managed = false }
end

describe("sync.lua over an organization", function()
  local emu, org, dir, ids

  local function import()
    local path = dir .. "/solution.zip"
    local f = assert(io.open(path, "wb"))
    f:write(E.zip(E.solution_files(solution())))
    f:close()
    org:import_solution(path)
  end

  local serial = 0
  local function add_rows(t, n)
    for _ = 1, n do
      serial = serial + 1
      ids[t][#ids[t] + 1] = org:create(t, { sample_name = "Row " .. serial .. " d'Été", sample_code = "C" .. serial,
        sample_count = serial })
    end
  end

  setup(function()
    emu, org = h.start()
    dir = h.tmpdir()
    import()
    ids = {}
    for i = 1, NTABLES do
      ids[table_name(i)] = {}
      add_rows(table_name(i), NROWS)
    end
  end)

  teardown(function()
    if emu then emu:stop() end
    h.rmdir(dir)
  end)

  local function run(args, opts)
    local all = { "--page-size", tostring(PAGE) }
    for _, a in ipairs(args) do all[#all + 1] = a end
    return h.script(emu, "sync.lua", all, opts)
  end

  local function tables()
    local t = {}
    for i = 1, NTABLES do t[i] = table_name(i) end
    return t
  end

  local function all_exact(store, opts)
    for _, t in ipairs(tables()) do h.assert_exact(org, store, t, nil, opts) end
  end

  -- Creates, updates and deletes rows in every other table.
  local function churn()
    local n = 0
    for i = 1, NTABLES, 2 do
      local t = table_name(i)
      add_rows(t, 3)
      org:update(t, ids[t][1], { sample_name = "Updated " .. i, sample_count = -i })
      org:delete(t, table.remove(ids[t], 2))
      n = n + 5
    end
    return n
  end

  local function pages_of(stderr)
    local n = 0
    for p in stderr:gmatch("(%d+) pages") do n = n + tonumber(p) end
    return n
  end

  it("--all finds the tracked tables, syncs them exactly, then applies churn exactly", function()
    local db = dir .. "/all.sqlite"
    local r = run { "--to", "sqlite:" .. db, "--all", "--parallel", "4" }
    assert.equal(0, r.status, r.stderr)
    for _, t in ipairs(tables()) do
      assert.matches(t .. ": full load, " .. NROWS .. " inserted", r.stderr, 1, true)
    end
    -- Tables without change tracking (solution) are not among them.
    assert.not_matches("solution:", r.stderr, 1, true)
    local store <close> = sync.sqlite(db)
    all_exact(store)
    churn()
    r = run { "--to", "sqlite:" .. db, "--all" }
    assert.equal(0, r.status, r.stderr)
    assert.matches(table_name(1) .. ": changes, 3 inserted, 1 updated, 1 deleted", r.stderr, 1, true)
    assert.matches(table_name(2) .. ": changes, 0 inserted, 0 updated, 0 deleted", r.stderr, 1, true)
    all_exact(store)
  end)

  it("--dry-run prints the plan and creates nothing", function()
    local db = dir .. "/dry.sqlite"
    local r = run { "--to", "sqlite:" .. db, "--tables", table_name(1) .. "," .. table_name(2), "--dry-run" }
    assert.equal(0, r.status, r.stderr)
    assert.matches(table_name(1) .. ": first load, %d+ columns", r.stdout)
    assert.matches("sample_count%s+Integer%s+INTEGER", r.stdout)
    assert.is_nil(io.open(db))
    -- On an existing mirror: delta or first load per table, and not a byte changed.
    assert.equal(0, run({ "--to", "sqlite:" .. db, "--tables", table_name(1) }).status)
    local before = dv.read_file(db)
    r = run { "--to", "sqlite:" .. db, "--tables", table_name(1) .. "," .. table_name(2), "--dry-run" }
    assert.equal(0, r.status, r.stderr)
    assert.matches(table_name(1) .. ": delta from the saved token", r.stdout, 1, true)
    assert.matches(table_name(2) .. ": first load", r.stdout, 1, true)
    assert.equal(before, dv.read_file(db))
  end)

  it("ends exact after kills at 20 random points of a first load and of a delta run; a resumed load fetches fewer pages", function()
    local db = dir .. "/kill.sqlite"
    math.randomseed(20261129)
    local fresh_pages = NTABLES * (NROWS // PAGE + 1)
    local kills = 0
    for _ = 1, 20 do
      -- Each run goes on from the last committed page of every table and is killed again.
      local r = run({ "--to", "sqlite:" .. db, "--all", "--parallel", "3" },
        { prelude = h.kill_prelude(math.random(1, 12), nil) })
      if r.status ~= 0 then kills = kills + 1 end
    end
    assert.is_true(kills >= 15)
    local r = run { "--to", "sqlite:" .. db, "--all" }
    assert.equal(0, r.status, r.stderr)
    assert.matches("resumed", r.stderr, 1, true)
    -- The last run only fetched what the killed runs had not committed.
    assert.is_true(pages_of(r.stderr) < fresh_pages, r.stderr)
    local store <close> = sync.sqlite(db)
    all_exact(store)
    -- No staging table is left behind.
    for _, t in ipairs(tables()) do
      assert.is_nil(store:columns_of(t .. "__dvnew"))
      assert.is_nil(store:columns_of(t .. "__dvdelta"))
    end
    -- Delta runs killed at 20 random points (rows and pages), with changes made in between.
    local dkills = 0
    for k = 1, 20 do
      if k % 5 == 1 then churn() end
      local point = math.random(1, 8)
      local run_k = run({ "--to", "sqlite:" .. db, "--all", "--page-size", "2" },
        { prelude = k % 2 == 0 and h.kill_prelude(point, nil) or h.kill_prelude(nil, point) })
      if run_k.status ~= 0 then dkills = dkills + 1 end
    end
    assert.is_true(dkills >= 15)
    r = run { "--to", "sqlite:" .. db, "--all", "--page-size", "2" }
    assert.equal(0, r.status, r.stderr)
    all_exact(store)
  end)

  it("a refused continuation starts that table's load again", function()
    local db = dir .. "/refused.sqlite"
    local t = table_name(3)
    local k = run({ "--to", "sqlite:" .. db, "--tables", t }, { prelude = h.kill_prelude(2) })
    assert.are_not.equal(0, k.status)
    do
      local store <close> = sync.sqlite(db)
      local st = sync.read_state(store, t)
      assert.is_truthy(st.cursor)
      store:exec("UPDATE sync_state SET cursor = ? WHERE table_name = ?",
        (st.cursor:gsub("skiptoken=[^&]*", "skiptoken=ct%%21bogus")), t)
    end
    local r = run { "--to", "sqlite:" .. db, "--tables", t }
    assert.equal(0, r.status, r.stderr)
    assert.matches("continuation refused: started again", r.stderr, 1, true)
    local store <close> = sync.sqlite(db)
    h.assert_exact(org, store, t)
  end)

  it("an expired token on one table reloads only that table", function()
    local db = dir .. "/expired.sqlite"
    assert.equal(0, run({ "--to", "sqlite:" .. db, "--all" }).status)
    churn()
    emu:advance(8 * 24 * 3600)
    -- Every table but the first gets a current token.
    local others = {}
    for _, name in ipairs(sync.tracked_tables(org)) do
      if name ~= table_name(1) then others[#others + 1] = name end
    end
    local r = run { "--to", "sqlite:" .. db, "--tables", table.concat(others, ",") }
    assert.equal(0, r.status, r.stderr)
    r = run { "--to", "sqlite:" .. db, "--all" }
    assert.equal(0, r.status, r.stderr)
    assert.matches(table_name(1) .. ": full reload (token expired)", r.stderr, 1, true)
    local _, reloads = r.stderr:gsub("full reload", "")
    assert.equal(1, reloads)
    local store <close> = sync.sqlite(db)
    all_exact(store)
  end)

  it("--soft-delete keeps deleted rows marked, --history logs every change; neither comes back after a reload", function()
    local db = dir .. "/soft.sqlite"
    local t = table_name(5)
    assert.equal(0, run({ "--to", "sqlite:" .. db, "--tables", t, "--soft-delete", "--history" }).status)
    local seq
    do
      local s <close> = sync.sqlite(db)
      seq = tonumber(s:first("SELECT max(_dv_seq) AS n FROM " .. t .. "__history").n)
    end
    local gone = table.remove(ids[t], 1)
    org:delete(t, gone)
    org:update(t, ids[t][1], { sample_name = "Changed" })
    local r = run { "--to", "sqlite:" .. db, "--tables", t, "--soft-delete", "--history" }
    assert.equal(0, r.status, r.stderr)
    local store <close> = sync.sqlite(db)
    h.assert_exact(org, store, t, nil, { live = true })
    local row = store:first("SELECT _dv_deleted_at FROM " .. t .. " WHERE " .. t .. "id = ?", gone)
    assert.is_truthy(row and row._dv_deleted_at)
    local hist = {}
    for x in store:rows("SELECT _dv_change, " .. t .. "id AS id FROM " .. t .. "__history WHERE _dv_seq > ? ORDER BY _dv_seq", seq) do
      hist[#hist + 1] = x._dv_change .. " " .. x.id
    end
    assert.same({ "new_or_updated " .. ids[t][1], "removed_or_deleted " .. gone }, hist)
    -- A reload (forced) keeps the deleted row marked and logs nothing new for it.
    r = run { "--to", "sqlite:" .. db, "--tables", t, "--soft-delete", "--history", "--full" }
    assert.equal(0, r.status, r.stderr)
    row = store:first("SELECT _dv_deleted_at FROM " .. t .. " WHERE " .. t .. "id = ?", gone)
    assert.is_truthy(row and row._dv_deleted_at)
    h.assert_exact(org, store, t, nil, { live = true })
    local n = store:first("SELECT count(*) AS n FROM " .. t .. "__history WHERE " .. t .. "id = ?", gone)
    assert.equal(2, tonumber(n.n))
    -- Without --soft-delete the deletion time column goes and deleted rows with it.
    r = run { "--to", "sqlite:" .. db, "--tables", t }
    assert.equal(0, r.status, r.stderr)
    h.assert_exact(org, store, t)
  end)

  it("a column added in Dataverse between runs is added to the mirror and filled", function()
    -- An emulator on a file, so that its table definition can change while it is stopped.
    local file, db = dir .. "/drift-emu.sqlite", dir .. "/drift.sqlite"
    local t = "sample_drift"
    local emu2 = dataverse.emulator.start { db = file }
    local org2 = h.connect(emu2)
    local zip = dir .. "/drift.zip"
    local f = assert(io.open(zip, "wb"))
    f:write(E.zip(E.solution_files { unique = "Drift", managed = false, tables = { { name = t, set = t .. "s",
      columns = { { name = "sample_name" }, { name = "sample_code" } } } } }))
    f:close()
    org2:import_solution(zip)
    local first
    for i = 1, 30 do
      local id = org2:create(t, { sample_name = "Row " .. i, sample_code = "C" .. i })
      first = first or id
    end
    local r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--tables", t, "--page-size", "7" })
    assert.equal(0, r.status, r.stderr)
    emu2:stop()
    do
      local s <close> = sync.sqlite(file)
      s:exec("INSERT INTO attr SELECT entity, 'sample_extra', 'sample_extra', type, maxlen, 0, target, ord + 100 " ..
        "FROM attr WHERE entity = ? AND logical = 'sample_code'", t)
    end
    emu2 = dataverse.emulator.start { db = file }
    org2 = h.connect(emu2)
    org2:update(t, first, { sample_extra = "filled" })
    r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--tables", t, "--page-size", "7" })
    assert.equal(0, r.status, r.stderr)
    assert.matches(t .. ": full reload (columns added: sample_extra)", r.stderr, 1, true)
    local store <close> = sync.sqlite(db)
    h.assert_exact(org2, store, t)
    local row = store:first("SELECT sample_extra FROM " .. t .. " WHERE " .. t .. "id = ?", first)
    assert.equal("filled", row.sample_extra)
    -- Then sample_extra is removed and sample_code becomes a whole number: the mirror keeps
    -- both columns with their data, says so, and goes on with the rest.
    emu2:stop()
    do
      local s <close> = sync.sqlite(file)
      s:exec("DELETE FROM attr WHERE entity = ? AND logical = 'sample_extra'", t)
      s:exec("UPDATE attr SET type = 2 WHERE entity = ? AND logical = 'sample_code'", t)
    end
    emu2 = dataverse.emulator.start { db = file }
    org2 = h.connect(emu2)
    org2:update(t, first, { sample_name = "Renamed" })
    r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--tables", t, "--page-size", "7" })
    assert.equal(0, r.status, r.stderr)
    assert.matches(t .. ": changes, 0 inserted, 1 updated", r.stderr, 1, true)
    assert.matches("column sample_extra is no longer in the table: kept with its data", r.stderr, 1, true)
    assert.matches("column sample_code changed type (String -> Integer): kept as it was", r.stderr, 1, true)
    row = store:first("SELECT sample_name, sample_code, sample_extra FROM " .. t .. " WHERE " .. t .. "id = ?", first)
    assert.same({ sample_name = "Renamed", sample_code = "C1", sample_extra = "filled" }, row)
    -- The next run says it again and changes nothing else.
    r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--tables", t, "--page-size", "7" })
    assert.equal(0, r.status, r.stderr)
    assert.matches(t .. ": changes, 0 inserted, 0 updated, 0 deleted", r.stderr, 1, true)
    assert.matches("column sample_code changed type", r.stderr, 1, true)
    assert.equal(30, tonumber(store:first("SELECT count(*) AS n FROM " .. t).n))
    emu2:stop()
  end)

  it("with the service protection limits on: throttled, retried, every mirror exact", function()
    -- Seeded without limits, then served again from the same file with scaled-down limits.
    local file, db = dir .. "/limits-emu.sqlite", dir .. "/limits.sqlite"
    local emu2 = dataverse.emulator.start { db = file }
    local org2 = h.connect(emu2)
    h.seed(org2, 80)
    for i = 1, 80 do org2:create("contact", { firstname = "F" .. i, lastname = "L" .. i }) end
    emu2:stop()
    emu2 = dataverse.emulator.start { db = file, limits = { requests = 12, concurrent = 2, window = 1 } }
    local r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--tables", "account,contact,businessunit,systemuser",
      "--parallel", "4", "--page-size", "8" })
    assert.equal(0, r.status, r.stderr)
    local throttled = tonumber(r.stderr:match("(%d+) throttled"))
    assert.is_true(throttled > 0, r.stderr)
    emu2:stop()
    -- Compared without limits (the comparison's own requests would be throttled too).
    emu2 = dataverse.emulator.start { db = file }
    local org3 = h.connect(emu2)
    local store <close> = sync.sqlite(db)
    for _, t in ipairs { "account", "contact", "businessunit", "systemuser" } do h.assert_exact(org3, store, t) end
    emu2:stop()
  end)

  describe("bad input: a clear message naming it, status 1, nothing written", function()
    it("an unknown table in the list", function()
      local db = dir .. "/bad.sqlite"
      local r = run { "--to", "sqlite:" .. db, "--tables", table_name(1) .. ",nosuchtable" }
      assert.equal(1, r.status)
      assert.matches('sync: unknown table "nosuchtable"', r.stderr, 1, true)
      assert.is_nil(io.open(db))
    end)

    it("a DSN that does not connect", function()
      local r = run { "--to", "postgres:host=" .. dir .. " port=1 password=s3cret", "--tables", table_name(1) }
      assert.equal(1, r.status)
      assert.matches("sync: cannot connect to PostgreSQL", r.stderr, 1, true)
      assert.not_matches("s3cret", r.stderr, 1, true)
    end)

    it("an unwritable path", function()
      local r = run { "--to", "sqlite:" .. dir .. "/missing/m.sqlite", "--tables", table_name(1) }
      assert.equal(1, r.status)
      assert.matches("sync: cannot open database " .. dir .. "/missing/m.sqlite", r.stderr, 1, true)
      r = run { "--to", "jsonl:" .. dir .. "/missing", "--tables", table_name(1) }
      assert.equal(1, r.status)
      assert.matches("sync: cannot write into directory " .. dir .. "/missing", r.stderr, 1, true)
    end)

    it("options", function()
      local r = run { "--to", "nowhere:x", "--all" }
      assert.equal(1, r.status)
      assert.matches('--to must be sqlite:FILE, postgres:DSN or jsonl:DIR, not "nowhere:x"', r.stderr, 1, true)
      r = run { "--to", "sqlite:" .. dir .. "/x.sqlite" }
      assert.equal(1, r.status)
      assert.matches("name the tables", r.stderr, 1, true)
      r = run { "--to", "sqlite:" .. dir .. "/x.sqlite", "--tables", table_name(1), "--columns", table_name(1) .. ":nosuch" }
      assert.equal(1, r.status)
      assert.matches('has no column "nosuch"', r.stderr, 1, true)
      assert.is_nil(io.open(dir .. "/x.sqlite"))
    end)
  end)

  it("shows progress only when stderr is a terminal", function()
    local db = dir .. "/tty.sqlite"
    local env = h.env(emu)
    -- script(1) gives the run a terminal; the summary lines come either way.
    local cmd = string.format("env DATAVERSE_URL=%s DATAVERSE_TOKEN=%s %s scripts/sync.lua --to sqlite:%s --tables %s,%s " ..
      "--page-size 50", dv.quote(env.DATAVERSE_URL), dv.quote(env.DATAVERSE_TOKEN), dv.quote(dv.bin), dv.quote(db),
      table_name(1), table_name(2))
    local p = assert(io.popen("script -qec " .. dv.quote(cmd) .. " /dev/null 2>&1"))
    local out = p:read("a")
    p:close()
    assert.matches("tables done, %d+ running, %d+ waiting, %d+ rows, %d+ rows/s", out)
    assert.matches(table_name(2) .. ": full load", out, 1, true)
    local r = run { "--to", "sqlite:" .. db, "--tables", table_name(1) .. "," .. table_name(2) }
    assert.equal(0, r.status, r.stderr)
    assert.not_matches("tables done", r.stderr, 1, true)
    assert.matches(table_name(1) .. ": changes", r.stderr, 1, true)
  end)

  it("a config file says the same as the options", function()
    local db = dir .. "/conf.sqlite"
    local conf = dir .. "/sync.conf.lua"
    local f = assert(io.open(conf, "w"))
    f:write(string.format("return { to = %q, tables = { %q, %q }, columns = { [%q] = { 'sample_name' } }, parallel = 2 }\n",
      "sqlite:" .. db, table_name(1), table_name(2), table_name(2)))
    f:close()
    local r = h.script(emu, "sync.lua", { "--config", conf })
    assert.equal(0, r.status, r.stderr)
    local store <close> = sync.sqlite(db)
    h.assert_exact(org, store, table_name(1))
    h.assert_exact(org, store, table_name(2), { "sample_name" })
  end)

  it("into PostgreSQL: --all exact, then churn exact", function()
    local cluster <close> = pg.start()
    local r = run { "--to", "postgres:" .. cluster.dsn, "--all", "--parallel", "4" }
    assert.equal(0, r.status, r.stderr)
    local store <close> = sync.postgres(cluster.dsn)
    all_exact(store)
    churn()
    r = run { "--to", "postgres:" .. cluster.dsn, "--all" }
    assert.equal(0, r.status, r.stderr)
    all_exact(store)
  end)

  it("into JSON lines: whole lines after kills at random points, and an exact replay", function()
    local out = dir .. "/jsonl"
    os.execute("mkdir -p " .. dv.quote(out))
    local t = table_name(7)
    math.randomseed(7)
    for _ = 1, 6 do
      run({ "--to", "jsonl:" .. out, "--tables", t }, { prelude = h.kill_prelude(nil, math.random(1, NROWS)) })
    end
    churn()
    org:update(t, ids[t][3], { sample_name = "Late" })
    local r = run { "--to", "jsonl:" .. out, "--tables", t }
    assert.equal(0, r.status, r.stderr)
    -- A strict reader: every line is one whole JSON object.
    local state = {}
    local f = assert(io.open(out .. "/" .. t .. ".jsonl", "rb"))
    local text = f:read("a")
    f:close()
    assert.equal("\n", text:sub(-1))
    for line in text:gmatch("([^\n]*)\n") do
      local l = dataverse.json.decode(line)
      if l.type == "full_sync" then
        state = {} -- a load that starts again: rows not in it are gone
      elseif l.type == "removed_or_deleted" then
        state[l.id] = nil
      else
        state[l.id] = l.row.sample_name
      end
    end
    local want = {}
    for row in org:query(t, { columns = { "sample_name" } }) do want[row[t .. "id"]] = row.sample_name end
    assert.same(want, state)
  end)
end)
