-- The PostgreSQL writer on libpq (the module dataverse_pg, COPY) under the sync store, against
-- a throwaway cluster: values that COPY's text format must escape, exact decimals and dates,
-- a refused COPY that writes nothing, the upsert path, a first load killed and resumed, and
-- the LuaDBI fallback when the module is missing.
local sync = require "dataverse.sync"
local S = require "dataverse.sync_store"
local dv = require "dv"
local h = require "sync_mirror"
local pg = require "pg"
local pg_sync = require "pg_sync"

-- Text COPY must escape all of these; none may come back changed.
local HOSTILE = {
  "tab\there", "new\nline", "cr\r\nlf", "back\\slash", "\\N", "\\.", "ends with \\", "quotes ' \" `",
  "Zürich 日本語 😀", "", " spaced ", "semi;colon,comma|pipe", "\1\2\31 controls",
}

describe("dataverse_pg (libpq)", function()
  local cluster, c
  local pgmod = require "dataverse_pg"

  setup(function()
    cluster = pg.start()
    c = pgmod.connect(cluster.dsn)
    c:exec("SET TimeZone = 'UTC'")
    c:exec("SET client_min_messages = warning")
  end)

  teardown(function()
    if c then c:close() end
    if cluster then cluster:stop() end
  end)

  before_each(function()
    c:exec("DROP TABLE IF EXISTS t")
    c:exec("CREATE TABLE t (id bigint PRIMARY KEY, s text, d numeric, ts timestamptz, b boolean, f double precision, " ..
      "n integer)")
  end)

  it("copies text, NULL, exact decimals, dates, booleans and 64-bit integers and reads them back unchanged", function()
    local rows = {}
    for i, s in ipairs(HOSTILE) do
      rows[i] = { i, s, nil, nil, i % 2 == 0, nil, i }
    end
    local big = math.maxinteger - 6
    rows[#rows + 1] = { big, nil, "123456789012345678901234567890.123456789012", "2024-05-01T08:30:00Z", nil, 0.1,
      2147483647 }
    rows[#rows + 1] = { -big, nil, "-0.0000000001", "1999-12-31T23:59:59.5Z", false, -1.5e300, -2147483648 }
    assert.equal(#rows, c:copy('COPY "t" ("id", "s", "d", "ts", "b", "f", "n") FROM STDIN', rows, 7))
    local got = {}
    for _, r in ipairs(c:query("SELECT id, s, d, ts::text AS ts, b, f, n FROM t")) do got[r.id] = r end
    assert.equal(#rows, #c:query("SELECT id FROM t"))
    for i, s in ipairs(HOSTILE) do
      assert.equal(s, got[i].s, "row " .. i)
      assert.equal(i % 2 == 0, got[i].b)
      assert.is_nil(got[i].d)
      assert.is_nil(got[i].ts)
      assert.equal(i, got[i].n)
      assert.equal("integer", math.type(got[i].n))
    end
    assert.equal("123456789012345678901234567890.123456789012", got[big].d)
    assert.equal("2024-05-01 08:30:00+00", got[big].ts)
    assert.equal(0.1, got[big].f)
    assert.equal(2147483647, got[big].n)
    assert.is_nil(got[big].s)
    assert.is_nil(got[big].b)
    assert.equal("-0.0000000001", got[-big].d)
    assert.equal("1999-12-31 23:59:59.5+00", got[-big].ts)
    assert.equal(-1.5e300, got[-big].f)
    assert.is_false(got[-big].b)
    -- The same values as bound parameters.
    for i, s in ipairs(HOSTILE) do
      assert.equal(1, c:exec("UPDATE t SET s = $1 || $1 WHERE id = $2", s, i))
      assert.equal(s .. s, c:query("SELECT s FROM t WHERE id = $1", i)[1].s)
    end
  end)

  it("never treats a value as SQL", function()
    local evil = "x'); DROP TABLE t; --"
    assert.equal(evil, c:query("SELECT $1::text AS v", evil)[1].v)
    c:copy('COPY "t" ("id", "s") FROM STDIN', { { 1, evil }, { 2, "a\tb\n3\tc" } }, 2)
    assert.equal(evil, c:query("SELECT s FROM t WHERE id = 1")[1].s)
    assert.equal("a\tb\n3\tc", c:query("SELECT s FROM t WHERE id = 2")[1].s)
    assert.equal(2, #c:query("SELECT id FROM t"))
  end)

  it("refuses a bad value naming its row and column, and writes nothing of the COPY", function()
    local ok, err = pcall(c.copy, c, 'COPY "t" ("id", "s") FROM STDIN', { { 1, "a" }, { 2, "b" }, { 3, "nul\0byte" } }, 2)
    assert.is_false(ok)
    assert.equal("table", type(err))
    assert.equal(3, err.row)
    assert.equal(2, err.column)
    assert.matches("NUL byte", tostring(err), 1, true)
    ok, err = pcall(c.copy, c, 'COPY "t" ("id", "s") FROM STDIN', { { 1, "a" }, { 2, {} } }, 2)
    assert.is_false(ok)
    assert.equal(2, err.row)
    assert.matches("only strings, numbers, booleans and nil", err.message, 1, true)
    -- The server refuses one (not an integer): its SQLSTATE comes with the message.
    ok, err = pcall(c.copy, c, 'COPY "t" ("id", "n") FROM STDIN', { { 1, 5 }, { 2, "five" } }, 2)
    assert.is_false(ok)
    assert.equal("22P02", err.sqlstate)
    assert.matches("invalid input syntax for type integer", tostring(err), 1, true)
    assert.equal(0, #c:query("SELECT id FROM t"))
    -- The connection goes on; a COPY rolled back with its transaction leaves nothing.
    c:exec("BEGIN")
    c:copy('COPY "t" ("id") FROM STDIN', { { 1 }, { 2 } }, 1)
    c:exec("ROLLBACK")
    assert.equal(0, #c:query("SELECT id FROM t"))
    assert.equal("idle", c:status())
  end)

  it("says what is wrong: errors are tables, a DSN's password is never repeated", function()
    local ok, err = pcall(pgmod.connect, "host=" .. cluster.dir .. " port=1 user=nobody password=s3cret")
    assert.is_false(ok)
    assert.equal("table", type(err))
    assert.not_matches("s3cret", tostring(err), 1, true)
    ok, err = pcall(c.exec, c, "SELECT * FROM no_such_table")
    assert.is_false(ok)
    assert.equal("42P01", err.sqlstate)
    assert.matches('relation "no_such_table" does not exist', tostring(err), 1, true)
    local other = pgmod.connect(cluster.dsn .. " password=s3cret")
    assert.matches("^dataverse_pg connection %(postgres on ", tostring(other))
    assert.not_matches("s3cret", tostring(other), 1, true)
    other:close()
    assert.equal("closed", other:status())
    assert.matches("closed", select(2, pcall(other.exec, other, "SELECT 1")), 1, true)
    ok, err = pcall(function() return S.postgres("host=" .. cluster.dir .. " port=1 password='s 3cret'") end)
    assert.is_false(ok)
    assert.matches("^cannot connect to PostgreSQL: ", err)
    assert.not_matches("3cret", err, 1, true)
  end)

  it("the store's upsert: a page COPYs straight in, rows already there take the new values", function()
    local store <close> = S.postgres(cluster.dsn)
    assert.equal("libpq COPY", store.writer)
    local names = { "id", "s", "n" }
    local function page(from, to, tag)
      local rows = {}
      for i = from, to do rows[#rows + 1] = { i, tag .. i, i } end
      return rows
    end
    store:atomic(function() store:insert_rows("t", names, page(1, 5, "old "), "upsert") end)
    store:atomic(function() store:insert_rows("t", names, page(3, 7, "new\t"), "upsert") end)
    local got = {}
    for r in store:rows("SELECT id, s FROM t ORDER BY id") do got[#got + 1] = r.s end
    assert.same({ "old 1", "old 2", "new\t3", "new\t4", "new\t5", "new\t6", "new\t7" }, got)
    -- A failed page leaves the transaction to the caller's rollback: nothing of it stays.
    assert.has_error(function()
      store:atomic(function() store:insert_rows("t", names, { { 8, "x", "not a number" } }, "upsert") end)
    end)
    assert.equal(7, store:first("SELECT count(*) AS n FROM t").n)
  end)

  it("a stage filled without its key gets it at the end, the newest copy of a row kept", function()
    local store <close> = S.postgres(cluster.dsn)
    assert.is_true(store.deferred_key)
    store:exec("DROP TABLE IF EXISTS st")
    store:exec('CREATE TABLE st (id uuid, name text, "_dv_version" bigint)')
    local a, b = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
    store:atomic(function()
      store:insert_rows("st", { "id", "name", "_dv_version" }, { { a, "a new", 9 }, { b, "b old", 3 } }, "upsert")
      store:insert_rows("st", { "id", "name", "_dv_version" }, { { a, "a old", 5 }, { b, "b new", 4 } }, "upsert")
      store:insert_rows("st", { "id", "name", "_dv_version" }, { { b, "b newest", 4 } }, "upsert")
    end)
    store:atomic(function() store:add_key("st", "id", "_dv_version") end)
    local got = {}
    for r in store:rows("SELECT id, name FROM st") do got[r.id] = r.name end
    assert.same({ [a] = "a new", [b] = "b newest" }, got)
    assert.equal("p", store:first("SELECT contype FROM pg_constraint WHERE conrelid = 'st'::regclass").contype)
    -- Keyed already (a stage begun by an earlier version): left as it is.
    store:atomic(function() store:add_key("st", "id", "_dv_version") end)
    assert.has_error(function() store:exec("INSERT INTO st (id) VALUES (?)", a) end)
  end)
end)

describe("sync_postgres.lua through COPY", function()
  local emu, org, cluster

  setup(function()
    emu, org, cluster = pg_sync.start()
  end)
  teardown(function() pg_sync.stop(emu, cluster) end)

  local function run(extra, opts) return pg_sync.run(emu, cluster, 3, extra, opts) end
  local function with_store(fn) return pg_sync.with_store(cluster, fn) end

  local function exact()
    with_store(function(store) h.assert_exact(org, store, "account") end)
  end

  local function reset()
    with_store(function(store) store:exec("DROP TABLE IF EXISTS account, account__dvnew, account__dvdelta, sync_state") end)
  end

  it("mirrors text COPY must escape, money to the last digit and dates exactly", function()
    local ids = {}
    for i, s in ipairs(HOSTILE) do
      ids[i] = org:create("account", { name = s, description = s .. "\n" .. i, revenue = 12345678901.1234 + i,
        numberofemployees = i })
    end
    local r = run()
    assert.equal(0, r.status, r.stderr)
    assert.not_matches("LuaDBI", r.stderr, 1, true)
    exact()
    with_store(function(store)
      assert.equal("account_pkey", store:first("SELECT conname FROM pg_constraint WHERE contype = 'p' AND " ..
        "conrelid = 'account'::regclass").conname)
      for i, id in ipairs(ids) do
        local row = store:first("SELECT name, description, revenue::text AS revenue, createdon::text AS createdon " ..
          "FROM account WHERE accountid = ?", id)
        assert.equal(HOSTILE[i], row.name)
        assert.equal(HOSTILE[i] .. "\n" .. i, row.description)
        assert.equal(sync.decimal_text(12345678901.1234 + i), row.revenue)
        local created = org:retrieve("account", id, { columns = { "createdon" } }).createdon
        assert.equal(created:gsub("T", " "):gsub("Z$", "+00"), row.createdon)
      end
    end)
    -- Changes go through the delta stage the same way.
    org:update("account", ids[1], { name = "changed\t\\N\n" })
    org:delete("account", ids[2])
    r = run()
    assert.equal(0, r.status, r.stderr)
    assert.matches("1 updated, 1 deleted", r.stderr, 1, true)
    exact()
  end)

  it("a first load killed between pages and in the middle of one resumes and ends exact", function()
    h.seed(org, 10)
    reset()
    local fresh = run()
    assert.equal(0, fresh.status, fresh.stderr)
    local pages = tonumber(fresh.stderr:match("(%d+) pages"))
    assert.is_true(pages >= 8, fresh.stderr)
    reset()
    local r = run({}, { prelude = h.kill_prelude(3) })
    assert.are_not.equal(0, r.status)
    with_store(function(store)
      -- Readers see no mirror yet; the stage holds the three committed pages.
      assert.is_nil(store:columns_of("account"))
      assert.equal(9, store:first("SELECT count(*) AS n FROM account__dvnew").n)
      assert.is_string(store:first("SELECT cursor FROM sync_state WHERE table_name = 'account'").cursor)
    end)
    r = run({}, { prelude = h.kill_prelude(nil, 8) })
    assert.are_not.equal(0, r.status)
    with_store(function(store) assert.equal(15, store:first("SELECT count(*) AS n FROM account__dvnew").n) end)
    r = run()
    assert.equal(0, r.status, r.stderr)
    assert.matches("resumed", r.stderr, 1, true)
    assert.is_true(tonumber(r.stderr:match("(%d+) pages")) < pages, r.stderr)
    exact()
  end)

  it("without the module: LuaDBI, said on stderr; insisting on libpq fails clearly", function()
    -- As if the module were not installed: the C searchers do not find it.
    local hide = [[for i = 3, 4 do
  local real = package.searchers[i]
  package.searchers[i] = function(name)
    if name == "dataverse_pg" then return "\n\tno file (hidden)" end
    return real(name)
  end
end]]
    h.churn(org, {}, { create = 2, update = 0, delete = 0 })
    local r = run({}, { prelude = hide })
    assert.equal(0, r.status, r.stderr)
    assert.matches("sync: the module dataverse_pg (libpq, COPY) is not installed; writing to PostgreSQL through LuaDBI",
      r.stderr, 1, true)
    assert.matches("account: changes, 2 inserted", r.stderr, 1, true)
    exact()
    r = run({}, { prelude = hide, env = { DVLUA_PG_WRITER = "libpq" } })
    assert.equal(1, r.status)
    assert.matches("sync_postgres: the PostgreSQL module dataverse_pg (libpq, COPY) cannot be loaded: not found",
      r.stderr, 1, true)
    -- Chosen by name: a full reload through LuaDBI is exact too.
    r = run({ "--full" }, { env = { DVLUA_PG_WRITER = "luadbi" } })
    assert.equal(0, r.status, r.stderr)
    assert.not_matches("not installed", r.stderr, 1, true)
    exact()
    r = run({}, { env = { DVLUA_PG_WRITER = "fast" } })
    assert.equal(1, r.status)
    assert.matches('unknown PostgreSQL writer "fast"', r.stderr, 1, true)
  end)

  it("dvlua finds the module beside itself from any directory", function()
    local r = dv.run({ "-e", [[package.path = ""; print(require("dataverse_pg").driver)]] })
    assert.equal(0, r.status, r.stderr)
    assert.equal("libpq\n", r.stdout)
    local bin = dv.bin:match("^/") and dv.bin or (os.getenv("PWD") .. "/" .. dv.bin:gsub("^%./", ""))
    local ok = os.execute("cd / && " .. bin .. [[ -e 'assert(require("dataverse_pg").driver == "libpq")' 2>/dev/null]])
    assert.is_true(ok)
    -- Only the module links libpq: dvlua and dataverse.so run without it.
    local function needed(file)
      local p = io.popen("readelf -d " .. file .. " 2>&1")
      local out = p:read("a")
      p:close()
      return out
    end
    assert.matches("libpq.so.5", needed("dataverse_pg.so"), 1, true)
    assert.not_matches("libpq", needed(bin))
    assert.not_matches("libpq", needed("dataverse.so"))
  end)
end)
