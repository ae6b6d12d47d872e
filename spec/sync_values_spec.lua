-- Values at the edges, through sync.lua into SQLite, PostgreSQL and JSON lines: a null primary
-- name, empty text, long text in many scripts, money with every digit a double holds, whole
-- numbers at their bounds, a table with no rows, and a table whose rows all go.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"
local h = require "sync_mirror"
local E = require "emulator"
local dv = require "dv"
local pg = require "pg"

local NULL = dataverse.json.null

describe("sync.lua with values at the edges", function()
  local emu, org, dir

  setup(function()
    emu, org = h.start()
    dir = h.tmpdir()
    org:request("POST", "ImportSolution", E.import_body(E.books))
    local long = ("Zürich 🚀 日本語 ελληνικά \"q\" \\ \t"):rep(60)
    for _, v in ipairs {
      { name = NULL, description = long, revenue = 12345678901.2345, numberofemployees = 2147483647,
        address1_latitude = -89.12345 },
      { name = "tab\there\r\nnew line", description = "", revenue = -0.0001, numberofemployees = -2147483648,
        address1_latitude = 0 },
      { name = "00123", revenue = 0, creditlimit = 99999999999.9999, donotemail = false },
      { name = "", revenue = 0.1, creditlimit = 0.3 },
    } do
      org:create("account", v)
    end
  end)
  teardown(function()
    if emu then emu:stop() end
    h.rmdir(dir)
  end)

  local function run(to, tables)
    local r = h.script(emu, "sync.lua", { "--to", to, "--tables", tables, "--page-size", "3" })
    assert.equal(0, r.status, r.stderr)
    return r
  end

  local function exact(store)
    h.assert_exact(org, store, "account")
    h.assert_exact(org, store, "sample_book", nil, { allow_empty = true })
  end

  -- Rows come to sample_book and all go again: the mirror follows, down to no rows.
  local function come_and_go(to, store)
    local ids = {}
    for i = 1, 4 do ids[i] = org:create("sample_book", { sample_name = "B" .. i, sample_bookcode = "B" .. i }) end
    run(to, "sample_book")
    exact(store)
    assert.equal(4, tonumber(store:first("SELECT count(*) AS n FROM sample_book").n))
    org:delete_many("sample_book", ids)
    local r = run(to, "sample_book")
    assert.matches("sample_book: changes, 0 inserted, 0 updated, 4 deleted", r.stderr, 1, true)
    exact(store)
    assert.equal(0, tonumber(store:first("SELECT count(*) AS n FROM sample_book").n))
  end

  it("into SQLite", function()
    local db = dir .. "/values.sqlite"
    local r = run("sqlite:" .. db, "account,sample_book")
    assert.matches("sample_book: full load, 0 inserted", r.stderr, 1, true)
    local store <close> = sync.sqlite(db)
    exact(store)
    -- The null primary name is NULL, not the text "null"; the money keeps its digits.
    assert.equal(1, tonumber(store:first("SELECT count(*) AS n FROM account WHERE name IS NULL").n))
    assert.equal(12345678901.2345, store:first("SELECT revenue FROM account WHERE name IS NULL").revenue)
    come_and_go("sqlite:" .. db, store)
  end)

  it("into PostgreSQL", function()
    local cluster <close> = pg.start()
    local to = "postgres:" .. cluster.dsn
    run(to, "account,sample_book")
    local store <close> = sync.postgres(cluster.dsn)
    exact(store)
    assert.equal("12345678901.2345", store:first("SELECT revenue::text AS t FROM account WHERE name IS NULL").t)
    assert.equal("99999999999.9999", store:first("SELECT creditlimit::text AS t FROM account WHERE name = '00123'").t)
    come_and_go(to, store)
  end)

  it("into JSON lines", function()
    local out = dir .. "/jsonl"
    os.execute("mkdir -p " .. dv.quote(out))
    run("jsonl:" .. out, "account,sample_book")
    local want = h.table_rows(org, "account")
    local got, n = {}, 0
    for line in dv.read_file(out .. "/account.jsonl"):gmatch("([^\n]*)\n") do
      local l = dataverse.json.decode(line)
      if l.type ~= "full_sync" then
        got[l.id] = l.row
        n = n + 1
      end
    end
    assert.equal(4, n)
    for id, row in pairs(want) do
      assert.equal(row.name, h.norm(got[id].name, "String"))
      assert.equal(row.description, h.norm(got[id].description, "Memo"))
      assert.equal(row.revenue, h.norm(got[id].revenue, "Money"))
    end
    assert.equal("", dv.read_file(out .. "/sample_book.jsonl"):gsub('[^\n]*"full_sync"[^\n]*\n', ""))
  end)
end)
