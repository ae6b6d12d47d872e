-- Each table's rows live in a file of their own (db.tables/<table>.sqlite), so a write to one
-- table does not wait for a write to another, and reads never wait for writes. The specs hold
-- one table's writers off (emu:hold_writes, as a long write of that table would) and check
-- what goes on meanwhile; then what the file layout means for stores on disk.
local E = require "emulator"
local dv = require "dv"
local DBI = require "DBI"

local function sleep(s) require("dataverse.core").sleep(s) end

-- Runs one statement on a LuaDBI connection, closing it (an open one keeps the file open).
local function exec(db, sql)
  local st = assert(db:prepare(sql))
  assert(st:execute())
  st:close()
end

-- The first column of a one-row query.
local function scalar(db, sql)
  local st = assert(db:prepare(sql))
  st:execute()
  local v = st:fetch()[1]
  st:close()
  return v
end

-- Waits (bounded, generously: a slow machine only takes longer) until f() is true.
local function eventually(f, what)
  for _ = 1, 600 do
    if f() then return end
    sleep(0.05)
  end
  error("never happened: " .. what)
end

local function count(api, set, filter)
  local r = api.get(set .. "?$select=" .. (set == "contacts" and "lastname" or "name") ..
    "&$filter=" .. api.enc(filter))
  assert(r.status == 200, r.body)
  return #r.json.value
end

describe("writes to different tables", function()
  local api, dir
  setup(function()
    dir = dv.tmpdir()
    api = E.start { db = dir .. "/org.sqlite" }
  end)
  teardown(function()
    api.stop()
    dv.sh("rm -rf " .. dir)
  end)

  it("go on while a write of another table is under way, which waits its turn", function()
    local hold <close> = api.emu:hold_writes("account")
    assert.matches("account's writers %(held%)", tostring(hold))
    -- a write of the held table gets no answer while the hold lasts
    local r = api.post("accounts", { name = "waited" }, { curl_args = { "--max-time", "1" } })
    assert.are.equal(0, r.status)
    -- a write of another table is answered (a time limit, so a wait fails the spec, not hangs it)
    r = api.post("contacts", { lastname = "Beside" }, { curl_args = { "--max-time", "30" } })
    assert.are.equal(204, r.status, r.body)
    local id = r.headers["odata-entityid"]:match("%(([%x%-]+)%)$")
    r = api.patch("contacts(" .. id .. ")", { firstname = "Ada" }, { curl_args = { "--max-time", "30" } })
    assert.are.equal(204, r.status, r.body)
    -- ... and so is a bulk write of it
    r = api.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets = {
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.contact", lastname = "Bulk 1" },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.contact", lastname = "Bulk 2" },
      },
    }, { curl_args = { "--max-time", "30" } })
    assert.are.equal(200, r.status, r.body)
    -- reads of the held table are answered too, from what was committed
    r = api.get("accounts?$select=name", { curl_args = { "--max-time", "30" } })
    assert.are.equal(200, r.status, r.body)
    r = api.get("accounts?$select=name", {
      headers = { Prefer = "odata.track-changes" }, curl_args = { "--max-time", "30" } })
    assert.are.equal(200, r.status, r.body)
    assert.truthy(r.json["@odata.deltaLink"])
    hold:release()
    assert.matches("%(released%)", tostring(hold))
    -- the write that waited is done once the hold ends (its client had given up by then)
    eventually(function() return count(api, "accounts", "name eq 'waited'") == 1 end,
      "the held write was stored")
    assert.are.equal(1, count(api, "contacts", "lastname eq 'Beside' and firstname eq 'Ada'"))
    assert.are.equal(2, count(api, "contacts", "startswith(lastname,'Bulk ')"))
  end)

  it("still commit as one when a change set spans tables", function()
    local batch = table.concat({
      "--batch_1", "Content-Type: multipart/mixed; boundary=changeset_1", "",
      "--changeset_1", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
      "Content-ID: 1", "",
      "POST " .. api.base .. "accounts HTTP/1.1", "Content-Type: application/json", "",
      '{"name":"Set A"}',
      "--changeset_1", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
      "Content-ID: 2", "",
      "POST " .. api.base .. "contacts HTTP/1.1", "Content-Type: application/json", "",
      '{"lastname":"Set C","parentcustomerid_account@odata.bind":"$1"}',
      "--changeset_1", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
      "Content-ID: 3", "",
      "POST " .. api.base .. "contacts HTTP/1.1", "Content-Type: application/json", "",
      '{"lastname":"refused", "nosuchcolumn":1}',
      "--changeset_1--", "--batch_1--", "" }, "\r\n")
    local r = api.post("$batch", batch, {
      headers = { ["Content-Type"] = "multipart/mixed; boundary=batch_1" } })
    -- a failed change set answers with its failed request, as Dataverse does
    assert.are.equal(400, r.status, r.body)
    assert.matches("HTTP/1.1 400", r.body)
    assert.matches("nosuchcolumn", r.body)
    -- the third request failed: neither table keeps what the first two wrote
    assert.are.equal(0, count(api, "accounts", "name eq 'Set A'"))
    assert.are.equal(0, count(api, "contacts", "lastname eq 'Set C'"))
  end)

  it("filter and sort by a related table's column across files", function()
    local zed = api.create("contacts", { firstname = "Zed", lastname = "Nav" })
    local abe = api.create("contacts", { firstname = "Abe", lastname = "Nav" })
    api.create("accounts", { name = "Nav 1", ["primarycontactid@odata.bind"] = "/contacts(" .. zed .. ")" })
    api.create("accounts", { name = "Nav 2", ["primarycontactid@odata.bind"] = "/contacts(" .. abe .. ")" })
    local r = api.get("accounts?$select=name&$filter=" .. api.enc("primarycontactid/fullname eq 'Zed Nav'"))
    assert.are.equal(200, r.status, r.body)
    assert.are.equal(1, #r.json.value)
    assert.are.equal("Nav 1", r.json.value[1].name)
    -- a lookup sorts by the related row's primary name (fullname): Abe before Zed
    r = api.get("accounts?$select=name&$filter=" .. api.enc("startswith(name,'Nav ')") ..
      "&$orderby=_primarycontactid_value")
    assert.are.equal(200, r.status, r.body)
    assert.are.same({ "Nav 2", "Nav 1" }, { r.json.value[1].name, r.json.value[2].name })
  end)
end)

describe("a store on disk", function()
  local dir
  before_each(function() dir = dv.tmpdir() end)
  after_each(function() dv.sh("rm -rf " .. dir) end)

  it("keeps each table's rows in a file beside the main one", function()
    local api = E.start { db = dir .. "/org.sqlite" }
    api.create("accounts", { name = "On disk" })
    api.stop()
    local db = assert(DBI.Connect("SQLite3", dir .. "/org.sqlite.tables/account.sqlite"))
    assert.are.equal(1, scalar(db, "SELECT count(*) FROM row WHERE entity = 'account' AND data ->> '$.name' = 'On disk'"))
    db:close()
  end)

  it("is served by one emulator at a time: a second one on it is refused, saying why", function()
    local api = E.start { db = dir .. "/org.sqlite" }
    local ok, err = pcall(E.start, { db = dir .. "/org.sqlite" })
    assert.is_false(ok)
    assert.matches("in use by another emulator", tostring(err))
    local r = dv.run({ "--serve", "--listen", "127.0.0.1:0", "--db", dir .. "/org.sqlite" })
    assert.are_not.equal(0, r.status)
    assert.matches("in use by another emulator", r.stderr)
    api.stop()
    -- once it stopped, the store opens again
    api = E.start { db = dir .. "/org.sqlite" }
    api.stop()
  end)

  it("made anew where one was deleted does not find the old tables' rows", function()
    local api = E.start { db = dir .. "/org.sqlite" }
    api.create("accounts", { name = "Before" })
    api.stop()
    os.remove(dir .. "/org.sqlite")
    os.remove(dir .. "/org.sqlite-wal")
    os.remove(dir .. "/org.sqlite-shm")
    api = E.start { db = dir .. "/org.sqlite" }
    assert.are.equal(0, count(api, "accounts", "name eq 'Before'"))
    api.create("accounts", { name = "After" })
    assert.are.equal(1, count(api, "accounts", "name eq 'After'"))
    api.stop()
  end)

  it("of an earlier build, with every row in the main file, moves them into the tables' files", function()
    local api = E.start { db = dir .. "/org.sqlite" }
    for i = 1, 3 do api.create("accounts", { name = "Old " .. i }) end
    local r = api.get("accounts?$select=name", { headers = { Prefer = "odata.track-changes" } })
    local delta = r.json["@odata.deltaLink"]:sub(#api.base + 1) -- the next run has another port
    local gone = api.create("accounts", { name = "Deleted" })
    assert.are.equal(204, api.delete("accounts(" .. gone .. ")").status)
    api.stop()
    -- the layout of an earlier build: rows, tombstones and key entries in the main file
    local db = assert(DBI.Connect("SQLite3", dir .. "/org.sqlite"))
    exec(db, "ATTACH '" .. dir .. "/org.sqlite.tables/account.sqlite' AS t")
    for _, tbl in ipairs { "row", "tomb", "keyval" } do
      exec(db, "INSERT INTO main." .. tbl .. " SELECT * FROM t." .. tbl)
    end
    -- ... and the organization's version counter there
    exec(db, "UPDATE main.org SET v = (SELECT v FROM t.org WHERE k = 'version') WHERE k = 'version'")
    db:commit()
    exec(db, "DETACH t")
    db:close()
    dv.sh("rm -rf " .. dir .. "/org.sqlite.tables")
    api = E.start { db = dir .. "/org.sqlite" }
    assert.are.equal(3, count(api, "accounts", "startswith(name,'Old ')"))
    -- a delta token from before still works, and still sees the delete
    r = api.get(delta)
    assert.are.equal(200, r.status, r.body)
    local removed = 0
    for _, row in ipairs(r.json.value) do
      if row["@odata.context"] and row["@odata.context"]:match("deletedEntity") then removed = removed + 1 end
    end
    assert.are.equal(1, removed)
    api.stop()
    -- ... and the main file let them go
    db = assert(DBI.Connect("SQLite3", dir .. "/org.sqlite"))
    assert.are.equal(0, scalar(db, "SELECT (SELECT count(*) FROM row) + (SELECT count(*) FROM tomb)"))
    db:close()
  end)
end)
