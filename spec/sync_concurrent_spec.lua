-- Production failures of scripts/sync.lua: overlapping runs on one mirror while another
-- process writes into the tables, kills at random points of those runs, and a plain sqlite3
-- reader that must never see a half-loaded table.
local sync = require "dataverse.sync"
local h = require "sync_mirror"
local dv = require "dv"

-- Starts `dvlua scripts/<script> args…` in the background; :wait() returns {status, stderr}.
local function spawn(emu, script, args, opts)
  opts = opts or {}
  local base = os.tmpname()
  local parts = {}
  for k, v in pairs(h.env(emu, opts.env)) do parts[#parts + 1] = k .. "=" .. dv.quote(v) end
  local cmd = "env " .. table.concat(parts, " ") .. " " .. dv.quote(dv.bin)
  if opts.prelude then cmd = cmd .. " -e " .. dv.quote(opts.prelude) end
  cmd = cmd .. " " .. dv.quote("scripts/" .. script)
  for _, a in ipairs(args) do cmd = cmd .. " " .. dv.quote(a) end
  os.execute(string.format("(%s </dev/null >/dev/null 2>%s; echo $? >%s.rc) &", cmd, dv.quote(base .. ".err"),
    dv.quote(base)))
  local p = {}
  function p.done()
    local f = io.open(base .. ".rc")
    if not f then return false end
    local s = f:read("a")
    f:close()
    return s:match("\n") ~= nil
  end
  function p.wait()
    while not p.done() do os.execute("sleep 0.05") end
    local r = { status = tonumber(dv.read_file(base .. ".rc"):match("%d+")), stderr = dv.read_file(base .. ".err") }
    os.remove(base .. ".rc")
    os.remove(base .. ".err")
    os.remove(base)
    return r
  end
  return p
end

local TABLES = { "account", "contact" }
-- `make soak` multiplies the rounds (DVLUA_SOAK=10: ten times as many runs, kills and overlaps).
local SOAK = math.max(1, math.floor(tonumber(os.getenv("DVLUA_SOAK") or "1") or 1))

describe("sync.lua under production failures", function()
  local emu, org, dir, accounts, contacts

  setup(function()
    emu, org = h.start()
    dir = h.tmpdir()
    accounts = h.seed(org, 60, "Adv")
    contacts = {}
    for i = 1, 40 do
      contacts[i] = org:create("contact", { firstname = "F" .. i, lastname = "Adv ünïcode " .. i, numberofchildren = i })
    end
  end)
  teardown(function()
    if emu then emu:stop() end
    h.rmdir(dir)
  end)

  -- A few creates, updates and deletes in both tables.
  local serial = 0
  local function write_some()
    serial = serial + 1
    h.churn(org, accounts, { create = 2, update = 2, delete = 1 })
    contacts[#contacts + 1] = org:create("contact", { firstname = "N" .. serial, lastname = "New" })
    org:update("contact", contacts[1 + serial % #contacts], { lastname = "Changed " .. serial })
    org:delete("contact", table.remove(contacts, 2))
  end

  -- Writes into the tables while the spawned runs go on, a bounded number of times (so that
  -- the runs can catch up), then waits for them all; returns their results in order.
  local function while_writing(procs, max_writes, pause)
    local function all_done()
      for _, p in ipairs(procs) do
        if not p.done() then return false end
      end
      return true
    end
    local writes = 0
    while not all_done() do
      if writes < max_writes then
        write_some()
        writes = writes + 1
      else
        os.execute("sleep " .. pause)
      end
    end
    local results = {}
    for i, p in ipairs(procs) do results[i] = p.wait() end
    return results
  end

  -- Two runs of sync.lua with the same args at once, while rows change; returns both results.
  local function overlapping(args, max_writes, pause)
    local r = while_writing({ spawn(emu, "sync.lua", args), spawn(emu, "sync.lua", args) }, max_writes, pause)
    return r[1], r[2]
  end

  local function sync_args(db, extra)
    local a = { "--to", "sqlite:" .. db, "--tables", table.concat(TABLES, ","), "--page-size", "9", "--parallel", "2" }
    for _, x in ipairs(extra or {}) do a[#a + 1] = x end
    return a
  end

  -- Of two overlapping runs, one or the other carried each table to its end.
  local function completed_each(ra, rb)
    for _, t in ipairs(TABLES) do
      local done = false
      for _, r in ipairs { ra, rb } do
        done = done or r.stderr:find("\n" .. t .. ": full", 1, true) ~= nil or r.stderr:find("\n" .. t .. ": changes", 1, true) ~= nil
          or r.stderr:find("^" .. t .. ": full") ~= nil or r.stderr:find("^" .. t .. ": changes") ~= nil
      end
      assert.is_true(done, "no run finished " .. t .. ":\n" .. ra.stderr .. rb.stderr)
    end
  end

  local function check(db, opts)
    local store <close> = sync.sqlite(db)
    for _, t in ipairs(TABLES) do h.assert_exact(org, store, t, nil, opts) end
    for _, t in ipairs(TABLES) do
      assert.is_nil(store:columns_of(t .. "__dvnew"))
      assert.is_nil(store:columns_of(t .. "__dvdelta"))
    end
  end

  it("processes opening one mirror at the same moment all get it, also when it is new", function()
    for round = 1, 10 * SOAK do
      local db = dir .. "/opens" .. round .. ".sqlite"
      local code = string.format([[local sync = require "dataverse.sync"
for _ = 1, 3 do local s = sync.sqlite(%q); s:close() end]], db)
      local procs = {}
      for i = 1, 4 do
        local err = os.tmpname()
        procs[i] = { err = err, p = io.popen(dv.quote(dv.bin) .. " -e " .. dv.quote(code) .. " 2>" .. err .. "; echo $?") }
      end
      for _, x in ipairs(procs) do
        local status = x.p:read("a")
        x.p:close()
        assert.equal("0", status:match("%d+"), dv.read_file(x.err))
        os.remove(x.err)
      end
    end
  end)

  for _, variant in ipairs { {}, { "--soft-delete" }, { "--history" } } do
    it("two overlapping runs while rows change, then a quiet run: exact " .. table.concat(variant, " "), function()
      local db = dir .. "/overlap" .. #variant .. (variant[1] or "") .. ".sqlite"
      for round = 1, 2 * SOAK do
        local ra, rb = overlapping(sync_args(db, variant), 6, "0.05")
        -- Each run either finished or stopped because the other took a table over.
        for _, r in ipairs { ra, rb } do
          if r.status ~= 0 then
            assert.matches("another sync took over table", r.stderr, 1, true)
            assert.not_matches("database is locked", r.stderr, 1, true)
          end
        end
        completed_each(ra, rb)
      end
      local r = h.script(emu, "sync.lua", sync_args(db, variant))
      assert.equal(0, r.status, r.stderr)
      check(db, { live = variant[1] == "--soft-delete" })
    end)
  end

  it("a plain sqlite3 reader sees the whole old mirror or the whole new one, never a part", function()
    local db = dir .. "/reader.sqlite"
    local r = h.script(emu, "sync.lua", sync_args(db))
    assert.equal(0, r.status, r.stderr)
    local function count()
      -- With a busy timeout, as docs/SYNC.md asks of readers: SQLite holds the file alone
      -- for a moment when a run opens it and when it closes it (WAL recovery, checkpoint).
      local p = io.popen("sqlite3 -readonly -cmd '.timeout 5000' " .. dv.quote(db) .. " 'SELECT count(*) FROM account' 2>&1")
      local out = p:read("a")
      p:close()
      return out
    end
    local before = tonumber(count())
    h.seed(org, 25, "Reader")
    -- A delta of several pages, then a full reload of several pages, both read throughout.
    local added = 25
    for _, extra in ipairs { {}, { "--full" } } do
      local p = spawn(emu, "sync.lua", sync_args(db, extra))
      local seen = {}
      while not p.done() do
        local out = count()
        assert.matches("^%d+\n$", out)
        seen[tonumber(out)] = true
      end
      assert.equal(0, p.wait().status)
      local after = tonumber(count())
      assert.equal(before + added, after)
      added = 0
      for n in pairs(seen) do assert.is_true(n == before or n == after, "a reader saw " .. n .. " rows") end
      before = after
    end
  end)

  -- With --history, the last change logged for each row tells what the mirror holds: a live
  -- row's last entry is new_or_updated at the row's version, a deleted row's is its deletion.
  local function history_agrees(db, t, soft)
    local store <close> = sync.sqlite(db)
    local id = t .. "id"
    local last = {}
    for x in store:rows(string.format("SELECT %s AS id, _dv_change, _dv_version FROM %s__history ORDER BY _dv_seq", id, t)) do
      last[x.id] = x
    end
    local live = {}
    for x in store:rows(string.format("SELECT %s AS id, _dv_version%s FROM %s", id,
      soft and ", _dv_deleted_at" or "", t)) do
      if not x._dv_deleted_at then
        live[x.id] = true
        assert.is_truthy(last[x.id], "row " .. x.id .. " of " .. t .. " is not in the history")
        assert.equal("new_or_updated", last[x.id]._dv_change)
        assert.equal(tostring(x._dv_version), tostring(last[x.id]._dv_version))
      end
    end
    for rid, x in pairs(last) do
      if not live[rid] then assert.equal("removed_or_deleted", x._dv_change, "row " .. rid .. " of " .. t) end
    end
  end

  it("kill -9 at random pages of runs while rows change, then a rerun: exact, nothing deleted comes back", function()
    math.randomseed(1129)
    for _, variant in ipairs { { "--soft-delete", "--history" }, {} } do
      local db = dir .. "/killed" .. #variant .. ".sqlite"
      local kills = 0
      for round = 1, 6 * SOAK do
        -- The first runs are loads, the later ones deltas; --full once, midway.
        local extra = { "--page-size", "7" }
        for _, x in ipairs(variant) do extra[#extra + 1] = x end
        if round % 5 == 0 then extra[#extra + 1] = "--full" end
        local p = spawn(emu, "sync.lua", sync_args(db, extra), { prelude = h.kill_prelude(math.random(1, 4)) })
        if while_writing({ p }, 3, "0.02")[1].status ~= 0 then kills = kills + 1 end
      end
      assert.is_true(kills >= 3, "only " .. kills .. " runs were killed")
      local deleted = {}
      for _ = 1, 3 do deleted[#deleted + 1] = table.remove(accounts, 3) end
      for _, rid in ipairs(deleted) do org:delete("account", rid) end
      local r = h.script(emu, "sync.lua", sync_args(db, variant))
      assert.equal(0, r.status, r.stderr)
      local soft = variant[1] == "--soft-delete"
      check(db, { live = soft })
      local store <close> = sync.sqlite(db)
      for _, rid in ipairs(deleted) do
        local row = store:first("SELECT " .. (soft and "_dv_deleted_at" or "accountid") ..
          " FROM account WHERE accountid = ?", rid)
        if soft then
          assert.is_truthy(row and row._dv_deleted_at, "deleted row " .. rid .. " is not marked")
        else
          assert.is_nil(row)
        end
      end
      if variant[2] == "--history" then
        for _, t in ipairs(TABLES) do history_agrees(db, t, soft) end
      end
    end
  end)

  it("a storm of 429s with Retry-After, 503s and dropped connections: exit 0, exact, throttling reported", function()
    -- An emulator of its own: standing faults last as long as it does.
    local emu2, org2 = h.start()
    finally(function() emu2:stop() end)
    local ids = h.seed(org2, 40, "Storm")
    for i = 1, 30 do org2:create("contact", { firstname = "S" .. i, lastname = "Storm" }) end
    local db = dir .. "/storm.sqlite"
    local tables = "account,contact,businessunit,systemuser"
    -- Every 5th request throttled, every 7th refused, every 11th dropped halfway through its
    -- answer (each request gets 5 tries, so never more than that in a row).
    emu2:faults("429=0/5,503/7,drop/11")
    for round = 1, 2 * SOAK do
      pcall(h.churn, org2, ids, { create = 3, update = 2, delete = 2 })
      emu2:faults("429=1*2") -- and a burst with Retry-After: 1 as each run starts
      local r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--tables", tables, "--parallel", "4",
        "--page-size", "6" })
      assert.equal(0, r.status, "round " .. round .. ": " .. r.stderr)
      local retried, throttled, waited = r.stderr:match("(%d+) retried, (%d+) throttled, ([%d.]+)s waited")
      assert.is_true(tonumber(throttled) >= 2, r.stderr)
      assert.is_true(tonumber(retried) > tonumber(throttled), r.stderr)
      assert.is_true(tonumber(waited) >= 1, r.stderr)
      assert.not_matches("failed", r.stderr, 1, true)
      local store <close> = sync.sqlite(db)
      for t in tables:gmatch("[^,]+") do h.assert_exact(org2, store, t) end
    end
  end)

  -- Replays a JSON-lines feed strictly (every line a whole object): {id = row} at its end.
  local function replay(path)
    local state = {}
    local text = dv.read_file(path)
    assert.equal("\n", text:sub(-1))
    for line in text:gmatch("([^\n]*)\n") do
      local l = require("dataverse").json.decode(line)
      if l.type == "full_sync" then
        state = {}
      elseif l.type == "removed_or_deleted" then
        state[l.id] = nil
      else
        state[l.id] = l.row
      end
    end
    return state
  end

  it("JSON lines: overlapping runs into one directory never interleave a feed; a replay equals the table", function()
    local out = dir .. "/feeds"
    os.execute("mkdir -p " .. dv.quote(out))
    local args = { "--to", "jsonl:" .. out, "--tables", "account", "--page-size", "4" }
    local refused = 0
    for _ = 1, 4 * SOAK do
      for _, r in ipairs { overlapping(args, 4, "0.02") } do
        if r.status ~= 0 then
          refused = refused + 1
          assert.matches("another run is writing " .. out .. "/account.jsonl", r.stderr, 1, true)
        end
      end
    end
    assert.is_true(refused >= 1, "the runs never overlapped")
    local r = h.script(emu, "sync.lua", args)
    assert.equal(0, r.status, r.stderr)
    local want = {}
    for row in org:query("account", { columns = { "name" } }) do want[row.accountid] = row.name end
    local got = {}
    for id, row in pairs(replay(out .. "/account.jsonl")) do got[id] = row.name end
    assert.same(want, got)
  end)

  it("changes_jsonl.lua refuses a feed that another run is writing, and leaves it as it was", function()
    local feed = dir .. "/held.jsonl"
    dv.write_file(feed, '{"type":"full_sync"}\n')
    -- A run that holds the feed: this process, through the same lock.
    local held = require("dataverse.sync_jsonl").lock(feed)
    local r = h.script(emu, "changes_jsonl.lua", { "--table", "account", "--out", feed })
    assert.equal(1, r.status)
    assert.matches("another run is writing " .. feed, r.stderr, 1, true)
    assert.equal('{"type":"full_sync"}\n', dv.read_file(feed))
    held:close()
    r = h.script(emu, "changes_jsonl.lua", { "--table", "account", "--out", feed })
    assert.equal(0, r.status, r.stderr)
    assert.is_true(#dv.read_file(feed) > 100)
  end)

  it("--all: a table deleted from Dataverse between runs is said, its mirror left as it was", function()
    local emu2, org2 = h.start()
    finally(function() emu2:stop() end)
    local E = require "emulator"
    local books = { unique = "Unmanaged", managed = false, tables = E.books.tables }
    org2:request("POST", "ImportSolution", E.import_body(books))
    for i = 1, 5 do org2:create("sample_book", { sample_name = "Kept " .. i, sample_bookcode = "K" .. i }) end
    local db = dir .. "/dropped.sqlite"
    local r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--all" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("sample_book: full load, 5 inserted", r.stderr, 1, true)
    local status = org2:request("DELETE", "EntityDefinitions(LogicalName='sample_book')")
    assert.equal(204, status)
    r = h.script(emu2, "sync.lua", { "--to", "sqlite:" .. db, "--all" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("sample_book: not synced: no longer a table with change tracking; its mirror is left as it was",
      r.stderr, 1, true)
    local store <close> = sync.sqlite(db)
    assert.equal(5, tonumber(store:first("SELECT count(*) AS n FROM sample_book").n))
    h.assert_exact(org2, store, "account", nil, { allow_empty = true })
  end)

  it("the token expires in the middle of a paged delta: that run ends exact, the next one reloads, once", function()
    local db = dir .. "/midexpiry.sqlite"
    local args = sync_args(db, { "--page-size", "3" })
    assert.equal(0, h.script(emu, "sync.lua", args).status)
    write_some()
    write_some()
    -- The run stops after its first page of account until the spec has moved the clock.
    local marker, go = os.tmpname(), os.tmpname()
    os.remove(marker)
    os.remove(go)
    local prelude = string.format([[
local sync = require "dataverse.sync"
local real = sync.each_change
sync.each_change = function(org, o, on_change, on_page)
  local pages = 0
  return real(org, o, on_change, function()
    on_page()
    pages = pages + 1
    if o.entity == "account" and pages == 1 and o.next_link then
      io.open(%q, "w"):close()
      while not io.open(%q) do os.execute("sleep 0.05") end
    end
  end)
end]], marker, go)
    local p = spawn(emu, "sync.lua", args, { prelude = prelude })
    while not io.open(marker) and not p.done() do os.execute("sleep 0.05") end
    emu:advance(8 * 24 * 3600)
    dv.write_file(go, "")
    local r = p.wait()
    os.remove(marker)
    os.remove(go)
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: changes", r.stderr, 1, true)
    check(db)
    -- Both tokens are now older than the retention: the next run reloads both, and only once.
    write_some()
    r = h.script(emu, "sync.lua", args)
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: full reload (token expired)", r.stderr, 1, true)
    check(db)
    r = h.script(emu, "sync.lua", args)
    assert.equal(0, r.status, r.stderr)
    assert.not_matches("full reload", r.stderr, 1, true)
  end)

  it("a reload after an expired token, killed halfway, goes on from its last page in the next run", function()
    local db = dir .. "/reload-resume.sqlite"
    local args = { "--to", "sqlite:" .. db, "--tables", "account", "--page-size", "5" }
    assert.equal(0, h.script(emu, "sync.lua", args).status)
    emu:advance(8 * 24 * 3600)
    write_some()
    local full_pages = 0
    for _ in org:query("account", { columns = { "name" } }) do full_pages = full_pages + 1 end
    full_pages = full_pages // 5 + 1
    -- Killed after the 4th page of the reload the expired token forced.
    local r = h.script(emu, "sync.lua", args, { prelude = h.kill_prelude(4) })
    assert.are_not.equal(0, r.status)
    write_some()
    r = h.script(emu, "sync.lua", args)
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: full reload (left unfinished by an earlier run)", r.stderr, 1, true)
    assert.matches("resumed", r.stderr, 1, true)
    local pages = tonumber(r.stderr:match("(%d+) pages"))
    assert.is_true(pages < full_pages, r.stderr)
    local store <close> = sync.sqlite(db)
    h.assert_exact(org, store, "account")
  end)

  it("two overlapping runs into PostgreSQL while rows change, then a quiet run: exact", function()
    local cluster <close> = require("pg").start()
    local to = "postgres:" .. cluster.dsn
    local args = { "--to", to, "--tables", table.concat(TABLES, ","), "--page-size", "9", "--parallel", "2",
      "--soft-delete" }
    for _ = 1, 2 * SOAK do
      local ra, rb = overlapping(args, 6, "0.05")
      for _, r in ipairs { ra, rb } do
        if r.status ~= 0 then assert.matches("another sync took over table", r.stderr, 1, true) end
      end
      completed_each(ra, rb)
    end
    local r = h.script(emu, "sync.lua", args)
    assert.equal(0, r.status, r.stderr)
    local store <close> = sync.postgres(cluster.dsn)
    for _, t in ipairs(TABLES) do h.assert_exact(org, store, t, nil, { live = true }) end
  end)

  it("a misspelt setting in a config file is refused, naming it, before anything is written", function()
    local db = dir .. "/conf-typo.sqlite"
    local conf = dv.write_file(dir .. "/typo.conf.lua", string.format(
      "return { to = %q, tables = { 'account' }, soft_delet = true }\n", "sqlite:" .. db))
    local r = h.script(emu, "sync.lua", { "--config", conf })
    assert.equal(1, r.status)
    assert.matches('config file ' .. conf .. ': unknown setting "soft_delet"', r.stderr, 1, true)
    assert.is_nil(io.open(db))
  end)
end)
