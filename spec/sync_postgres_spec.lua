-- scripts/sync_postgres.lua against the in-process emulator and a throwaway PostgreSQL cluster.
local sync = require "dataverse.sync"
local h = require "sync_mirror"
local pg_sync = require "pg_sync"

describe("sync_postgres.lua", function()
  local emu, org, cluster, ids

  setup(function()
    emu, org, cluster = pg_sync.start()
    ids = h.seed(org, 7)
  end)
  teardown(function() pg_sync.stop(emu, cluster) end)

  local function run(extra, opts) return pg_sync.run(emu, cluster, 2, extra, opts) end
  local function with_store(fn) return pg_sync.with_store(cluster, fn) end

  local function exact(columns)
    with_store(function(store) h.assert_exact(org, store, "account", columns) end)
  end

  local function token()
    return with_store(function(store) return h.token(store, "account") end)
  end

  local function snapshot()
    local _, cols = sync.plan(org, { table = "account" })
    return with_store(function(store) return (h.store_rows(store, "account", cols)) end)
  end

  it("loads everything with typed columns, then applies creates, updates and deletes exactly", function()
    local r = run()
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: full load, ", r.stderr, 1, true)
    exact()
    local types = cluster:psql("SELECT column_name || ':' || data_type FROM information_schema.columns " ..
      "WHERE table_name = 'account' ORDER BY column_name")
    assert.matches("accountid:uuid", types, 1, true)
    assert.matches("revenue:numeric", types, 1, true)
    assert.matches("donotemail:boolean", types, 1, true)
    assert.matches("numberofemployees:integer", types, 1, true)
    assert.matches("createdon:timestamp with time zone", types, 1, true)
    assert.matches("name:text", types, 1, true)

    local c, u, d = h.churn(org, ids)
    r = run()
    assert.equal(0, r.status, r.stderr)
    assert.matches(string.format("account: changes, %d inserted, %d updated, %d deleted", c, u, d), r.stderr, 1, true)
    exact()
  end)

  it("takes the connection from the PG* variables", function()
    h.churn(org, ids, { create = 1, update = 1, delete = 1 })
    local r = h.script(emu, "sync_postgres.lua", { "--table", "account" }, { env = cluster.env })
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: ", r.stderr, 1, true)
    exact()
  end)

  it("ends exact after the process is killed mid-pages, rerun", function()
    assert.equal(0, run().status)
    for _, point in ipairs { { page = 1 }, { row = 2 }, { last = true } } do
      local c, u, d = h.churn(org, ids)
      local before, rows_before = token(), snapshot()
      local r = run({}, { prelude = h.kill_prelude(point.page, point.row or (point.last and c + u + d)) })
      assert.are_not.equal(0, r.status)
      assert.equal(before, token())
      assert.same(rows_before, snapshot())
      r = run()
      assert.equal(0, r.status, r.stderr)
      exact()
    end
  end)

  it("reloads everything when the token has expired, twice in a row", function()
    assert.equal(0, run().status)
    for _ = 1, 2 do
      h.churn(org, ids)
      emu:advance(8 * 24 * 3600)
      local r = run()
      assert.equal(0, r.status, r.stderr)
      assert.matches("account: full reload (token expired)", r.stderr, 1, true)
      exact()
    end
  end)

  it("a bad DSN: clear message, status 1, nothing printed about the password", function()
    local r = h.script(emu, "sync_postgres.lua",
      { "--table", "account", "--dsn", "host=" .. cluster.dir .. " port=1 user=nobody password=s3cret" })
    assert.equal(1, r.status)
    assert.matches("sync_postgres: cannot connect to PostgreSQL", r.stderr, 1, true)
    assert.not_matches("s3cret", r.stderr, 1, true)
    r = h.script(emu, "sync_postgres.lua", { "--table", "account", "--dsn", "this is not a dsn" })
    assert.equal(1, r.status)
    assert.matches("sync_postgres: cannot connect to PostgreSQL", r.stderr, 1, true)
  end)

  it("an unknown table or one without change tracking leaves the database untouched", function()
    assert.equal(0, run().status)
    local before = cluster:psql("SELECT table_name || '=' || token FROM sync_state ORDER BY 1")
    local r = h.script(emu, "sync_postgres.lua", { "--table", "nosuchtable", "--dsn", cluster.dsn })
    assert.equal(1, r.status)
    assert.matches('sync_postgres: unknown table "nosuchtable"', r.stderr, 1, true)
    r = h.script(emu, "sync_postgres.lua", { "--table", "solution", "--dsn", cluster.dsn })
    assert.equal(1, r.status)
    assert.matches('table "solution" does not have change tracking enabled', r.stderr, 1, true)
    assert.equal(before, cluster:psql("SELECT table_name || '=' || token FROM sync_state ORDER BY 1"))
    assert.equal("", cluster:psql("SELECT table_name FROM information_schema.tables WHERE table_name IN " ..
      "('nosuchtable', 'solution')"))
    exact()
  end)
end)
