-- The API is strict, and its errors point at the script: unknown options are refused by
-- name with the closest valid one, errors carry the script's file and line, a URL without
-- credentials fails at once, lookups have one spelling, and count never silently caps.
local dataverse = require "dataverse"
local E = require "emulator"
local dv = require "dv"
local fake = require "fake_server"

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- Writes a script into a fresh directory and runs it with dvlua; returns the result.
local function run_script(name, text, env)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dv.quote(dir)))
  local path = dir .. "/" .. name
  dv.write_file(path, text)
  local r = dv.run({ path }, { env = env })
  os.remove(path)
  os.remove(dir)
  r.path = path
  return r
end

local function plain(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

describe("strict options", function()
  local emu, org, sent, id

  setup(function()
    emu = dataverse.emulator.start { db = ":memory:" }
    sent = 0
    org = dataverse.connect { emulator = emu, on_request = function() sent = sent + 1 end }
    id = org:create("account", { name = "Strict" })
  end)
  teardown(function()
    org:close()
    emu:stop()
  end)

  -- How each function that takes options is called with an options table o.
  local CALLS = {
    connect = function(o)
      o.emulator = o.emulator or emu
      return dataverse.connect(o)
    end,
    create = function(o) return org:create("account", { name = "x" }, o) end,
    retrieve = function(o) return org:retrieve("account", id, o) end,
    update = function(o) return org:update("account", id, { name = "y" }, o) end,
    upsert = function(o) return org:upsert("account", id, { name = "y" }, o) end,
    delete = function(o) return org:delete("account", id, o) end,
    query = function(o) return org:query("account", o)() end,
    count = function(o) return org:count("account", o) end,
    execute = function(o) return org:execute("WhoAmI", nil, o) end,
    changes = function(o)
      o.entity = o.entity or "account"
      return org:changes(o)()
    end,
    retrieve_entity_changes = function(o)
      o.entity = o.entity or "account"
      return org:retrieve_entity_changes(o)
    end,
    import_solution = function(o) return org:import_solution("no-such-solution.zip", o) end,
    wait_for_key = function(o) return org:wait_for_key("account", "no_such_key", o) end,
    parallel = function(o) return org:parallel({ function() end }, o) end,
    wait = function(o) return org:wait(o) end,
    pretty = function(o) return dataverse.pretty({ 1 }, o) end,
    create_many = function(o) return org:create_many("account", { { name = "x" } }, o) end,
    update_many = function(o) return org:update_many("account", { { accountid = id, name = "y" } }, o) end,
    upsert_many = function(o) return org:upsert_many("account", { { accountid = id, name = "y" } }, o) end,
    delete_many = function(o) return org:delete_many("account", { id }, o) end,
    batch = function(o) return org:batch(function(b) b:retrieve("account", id) end, o) end,
  }

  it("knows how to call every function that takes options", function()
    local n = 0
    for fname in pairs(dataverse._options) do
      assert.is_function(CALLS[fname], "no call for " .. fname)
      n = n + 1
    end
    assert.is_true(n >= 13)
  end)

  it("refuses a misspelled option of every function, naming it and the closest valid one", function()
    local checked = 0
    for fname, spec in pairs(dataverse._options) do
      for name in pairs(spec) do
        local typo = name:sub(1, -2)
        if not spec[typo] and name ~= "entity" then
          local before = sent
          local err = err_of(CALLS[fname], { [typo] = true })
          assert.matches(plain(fname .. ": unknown option '" .. typo .. "' (did you mean '" .. name .. "'?)"),
            tostring(err))
          if fname ~= "connect" then assert.equals(before, sent, "a request was sent for " .. fname) end
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 60, "only " .. checked .. " options checked")
  end)

  it("never returns the whole table for a misspelled filter", function()
    local before = sent
    local err = err_of(function()
      local it = org:query("account", { filtr = "name eq 'Strict'" })
      for row in it do print(row) end
    end)
    assert.matches("^spec/api_strict_spec%.lua:%d+: query: unknown option 'filtr' %(did you mean 'filter'%?%)$", err)
    assert.equals(before, sent)
    err = err_of(function() return org:count("account", { fliter = "name eq 'x'" }) end)
    assert.matches("count: unknown option 'fliter' %(did you mean 'filter'%?%)", err)
  end)

  it("refuses misspelled options of the emulator and of dataverse.http the same way", function()
    local err = err_of(function() local e = dataverse.emulator.start { dbb = ":memory:" } return e end)
    assert.matches("^spec/api_strict_spec%.lua:%d+: emulator%.start: unknown option 'dbb' %(did you mean 'db'%?%)$", err)
    err = err_of(function() local c = require("dataverse.http").new { tiemout = 5 } return c end)
    assert.matches("^spec/api_strict_spec%.lua:%d+: http%.new: unknown option 'tiemout' %(did you mean 'timeout'%?%)$", err)
  end)

  it("refuses a misspelled option of a sync job", function()
    local sync = require "dataverse.sync"
    local err = err_of(function() local m = sync.plan(org, { table = "account", pagesize = 10 }) return m end)
    assert.matches("^spec/api_strict_spec%.lua:%d+: sync: unknown option 'pagesize' %(did you mean 'page_size'%?%)$", err)
  end)

  it("refuses write options that would be ignored", function()
    assert.matches("bad argument #3 to 'create' %(option 'columns' shapes the returned row: it needs return_row = true%)",
      err_of(function() local x = org:create("account", { name = "c" }, { columns = { "name" } }) return x end))
    assert.matches("bad argument #4 to 'update' %(option 'annotations' shapes the returned row",
      err_of(function() local x = org:update("account", id, { name = "c" }, { annotations = "*" }) return x end))
  end)

  it("lists the valid options when nothing is close", function()
    local err = err_of(function() return org:retrieve("account", id, { zzzzzzzzzz = 1 }) end)
    assert.matches("retrieve: unknown option 'zzzzzzzzzz' %(valid options: annotations, caller_id, " ..
      "caller_object_id, columns, headers%)", err)
  end)

  it("refuses options of the wrong kind by name", function()
    assert.matches("bad argument #2 to 'query' %(option 'filter': string expected, got number%)",
      err_of(function() return org:query("account", { filter = 5 }) end))
    assert.matches("bad argument #3 to 'retrieve' %(option 'caller_id': GUID string expected, got 'bob'%)",
      err_of(function() return org:retrieve("account", id, { caller_id = "bob" }) end))
    assert.matches("option 'headers': table of header names to values expected",
      err_of(function() return org:retrieve("account", id, { headers = { ["X-A"] = {} } }) end))
    assert.matches("option 'bypass_custom_logic': true, \"CustomSync\", \"CustomAsync\"",
      err_of(function() return org:create("account", { name = "b" }, { bypass_custom_logic = "Everything" }) end))
    assert.matches("query: options are named, but the options table holds a value at %[1%]",
      err_of(function() return org:query("account", { "name" }) end))
    assert.matches("bad argument #1 to 'connect' %(option 'on_request': function expected, got string%)",
      err_of(dataverse.connect, { emulator = emu, on_request = "print" }))
  end)
end)

describe("errors point at the script", function()
  it("names the script line of a misspelled option", function()
    local r = run_script("typo.lua", [[
local dataverse = require "dataverse"
local org = dataverse.connect { emulator = { db = ":memory:" } }
for row in org:query("account", { filtr = "name eq 'x'" }) do print(row.name) end
]])
    assert.equals(1, r.status)
    assert.matches(plain(r.path) .. ":3: query: unknown option 'filtr' %(did you mean 'filter'%?%)", r.stderr)
  end)

  it("prints an uncaught Dataverse error with the script's line and a traceback", function()
    local r = run_script("missing_row.lua", [[
local dataverse = require "dataverse"
local org = dataverse.connect { emulator = { db = ":memory:" } }

org:update("account", "00000000-0000-0000-0000-000000000001", { name = "x" })
]])
    assert.equals(1, r.status)
    assert.matches(plain(r.path) .. ":4: HTTP 404 0x80040217: ", r.stderr)
    assert.matches("stack traceback:", r.stderr, 1, true)
    assert.matches(plain(r.path) .. ":4: in main chunk", r.stderr)
    assert.is_nil(r.stderr:match("^[^\n]*dataverse/rows%.lua"), "the first line names the library")
  end)

  it("names the line inside the script's own function, not the library's", function()
    local r = run_script("helper.lua", [[
local dataverse = require "dataverse"
local org = dataverse.connect { emulator = { db = ":memory:" } }
local function load(name)
  local id = org:create("no_such_table", { name = name })
  return id
end
load("x")
]])
    assert.equals(1, r.status)
    assert.matches(plain(r.path) .. ":4: HTTP 404 0x80040217: no table named 'no_such_table'", r.stderr)
  end)

  it("names the script line and the API function for misuse the C layer finds", function()
    local r = run_script("closed.lua", [[
local dataverse = require "dataverse"
local org = dataverse.connect { emulator = { db = ":memory:" } }
org:count("account")
print(pcall(function() org:create("account", { name = function() end }) end))
print(pcall(function() org:retrieve("account", "00000000-0000-0000-0000-000000000001", { headers = { ["A:b"] = "x" } }) end))
org:close()
org:count("account")
]])
    assert.equals(1, r.status)
    assert.matches("false	" .. plain(r.path) .. ":4: create: cannot send this value as JSON", r.stdout)
    assert.matches("false	" .. plain(r.path) .. ":5: retrieve: bad header name 'A:b'", r.stdout)
    assert.matches(plain(r.path) .. ":7: count: the connection is closed", r.stderr)
  end)

  it("records the position in the error table", function()
    local emu, org = E.open()
    local ok, err = pcall(function()
      org:delete("account", "00000000-0000-0000-0000-000000000002")
    end)
    assert.is_false(ok)
    assert.equals(404, err.status)
    assert.matches("^spec/api_strict_spec%.lua:%d+$", err.where)
    assert.matches("^" .. plain(err.where) .. ": HTTP 404 0x80040217", tostring(err))
    org:close()
    emu:stop()
  end)
end)

describe("connect without credentials", function()
  local env = { DATAVERSE_URL = "http://127.0.0.1:9", HOME = "/tmp", PATH = os.getenv("PATH") }

  it("fails at once, naming the variables to set", function()
    local r = dv.run({ "-e", [[
      local dataverse = require "dataverse"
      local ok, err = pcall(dataverse.connect)
      print(err.code, err.status)
      error(err)
    ]] }, { env = env, env_clear = true })
    assert.equals(1, r.status)
    assert.matches("^config\t0\n", r.stdout)
    for _, name in ipairs { "DATAVERSE_TOKEN", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "device_code = true" } do
      assert.matches(name, r.stderr, 1, true)
    end
    assert.is_nil(r.stderr:find("401", 1, true))
    assert.is_nil(r.stderr:find("transport", 1, true))
  end)

  it("refuses a client id that has neither a secret nor device_code", function()
    local err = err_of(dataverse.connect, { url = "http://127.0.0.1:9", client_id = "app" })
    assert.equals("config", err.code)
    assert.matches("'client_secret'", err.message)
    assert.matches("'device_code = true'", err.message)
    err = err_of(dataverse.connect, { url = "http://127.0.0.1:9", device_code = true })
    assert.equals("config", err.code)
    assert.matches("client id", err.message)
  end)

  it("still connects with a token", function()
    local emu = dataverse.emulator.start { db = ":memory:", token = "t0k" }
    local org = dataverse.connect { url = emu.url, token = "t0k" }
    assert.is_table(org:whoami())
    org:close()
    emu:stop()
  end)
end)

describe("lookups", function()
  local emu, org
  setup(function() emu, org = E.open() end)
  teardown(function() E.close(emu, org) end)

  it("are read as _x_value and written as x@odata.bind", function()
    local c = org:create("contact", { lastname = "Lookup" })
    local a = org:create("account", { name = "L", ["primarycontactid@odata.bind"] = "/contacts(" .. c .. ")" })
    local row = org:retrieve("account", a, { columns = { "_primarycontactid_value" } })
    assert.equals(c, row._primarycontactid_value)
    local n = 0
    for _ in org:query("account", { filter = "_primarycontactid_value eq " .. c }) do n = n + 1 end
    assert.equals(1, n)
  end)

  it("refuses the read spelling in a write, naming the write spelling", function()
    local c = org:create("contact", { lastname = "Other" })
    for _, f in ipairs {
      function() return org:create("account", { _primarycontactid_value = c }) end,
      function() return org:update("account", c, { _primarycontactid_value = c }) end,
      function() return org:upsert("account", c, { _primarycontactid_value = c }) end,
    } do
      local err = err_of(f)
      assert.matches("field '_primarycontactid_value' is how the lookup is read; write it as " ..
        "%['primarycontactid@odata.bind'%] = '/<entity set>%(<guid>%)'", err)
    end
    local err = err_of(function() return org:create("account", { ["primarycontactid@odata.bind"] = c }) end)
    assert.matches("field 'primarycontactid@odata.bind' needs a row address, '/<entity set>%(" .. c:gsub("%-", "%%-") .. "%)'", err)
  end)

  it("names both spellings when the server meets a lookup's logical name", function()
    local c = org:create("contact", { lastname = "Hint" })
    local a = org:create("account", { name = "H" })
    local hint = "%('primarycontactid' is a lookup: read it as '_primarycontactid_value' in columns, " ..
      "filters and rows; write it as 'primarycontactid@odata.bind'%)"
    local err = err_of(function() return org:retrieve("account", a, { columns = { "primarycontactid" } }) end)
    assert.equals(400, err.status)
    assert.matches(hint, err.message)
    err = err_of(function() for _ in org:query("account", { filter = "primarycontactid eq " .. c }) do end end)
    assert.matches(hint, err.message)
    err = err_of(function() return org:update("account", a, { primarycontactid = c }) end)
    assert.matches(hint, err.message)
    -- a column that is no lookup gets no hint
    err = err_of(function() return org:retrieve("account", a, { columns = { "nosuchcolumn" } }) end)
    assert.is_nil(err.message:find("is a lookup", 1, true))
  end)
end)

describe("count", function()
  it("answers RetrieveTotalRecordCount in the emulator with live counts", function()
    local emu, org = E.open()
    for i = 1, 3 do org:create("account", { name = "n" .. i }) end
    local _, _, body = org:request("GET", "RetrieveTotalRecordCount(EntityNames=['account','contact'])")
    local c = body.EntityRecordCountCollection
    assert.same({ "account", "contact" }, c.Keys)
    assert.same({ 3, 0 }, c.Values)
    assert.equals(2, c.Count)
    assert.is_false(c.IsReadOnly)
    local got = org:execute("RetrieveTotalRecordCount", { EntityNames = { "account" } })
    assert.same({ 3 }, got.EntityRecordCountCollection.Values)
    local status, _, e = org:request("GET", "RetrieveTotalRecordCount(EntityNames=['nosuch'])")
    assert.equals(404, status)
    assert.equals("0x80040217", e.error.code)
    status = org:request("GET", "RetrieveTotalRecordCount")
    assert.equals(400, status)
    status = org:request("POST", "RetrieveTotalRecordCount(EntityNames=['account'])", {})
    assert.equals(405, status)
    assert.equals(3, org:count("account"))
    org:close()
    emu:stop()
  end)

  describe("beyond the 5000 that $count answers", function()
    local srv, org
    setup(function()
      srv = fake.start [[
        local meta = '{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}'
        local function page(n, from, next_link)
          local rows = {}
          for i = 1, n do rows[i] = string.format('{"accountid":"00000000-0000-0000-0000-%012d"}', from + i) end
          return '{"value":[' .. table.concat(rows, ",") .. ']' ..
            (next_link and (',"@odata.nextLink":"' .. next_link .. '"') or "") .. '}'
        end
        return function(req)
          local p = req.path
          local json = { ["Content-Type"] = "application/json" }
          if p:find("EntityDefinitions", 1, true) then return { status = 200, headers = json, body = meta } end
          if p:find("/accounts/$count", 1, true) then return { status = 200, headers = { ["Content-Type"] = "text/plain" }, body = "5000" } end
          if p:find("RetrieveTotalRecordCount", 1, true) then
            return { status = 200, headers = json, body = '{"EntityRecordCountCollection":{"Count":1,"IsReadOnly":false,"Keys":["account"],"Values":[123456]}}' }
          end
          if p:find("skip=2", 1, true) then return { status = 200, headers = json, body = page(7, 5000) } end
          if p:find("/accounts?", 1, true) then
            local host = req.headers.host
            return { status = 200, headers = json, body = page(5000, 0, "http://" .. host .. "/api/data/v9.2/accounts?$select=accountid&skip=2") }
          end
          return { status = 404, headers = json, body = '{"error":{"code":"0x80040217","message":"no"}}' }
        end
      ]]
      org = dataverse.connect { url = srv.url, token = "t" }
    end)
    teardown(function()
      org:close()
      srv:stop()
    end)

    it("counts a whole table with RetrieveTotalRecordCount", function()
      assert.equals(123456, org:count("account"))
      local seen = srv:requests()
      assert.matches("/api/data/v9.2/RetrieveTotalRecordCount%(EntityNames=%%5B'account'%%5D%)$", seen[#seen].path)
    end)

    it("counts a filtered table exactly by paging through the ids", function()
      assert.equals(5007, org:count("account", { filter = "name ne null" }))
      local seen = srv:requests()
      assert.matches("%$select=accountid", seen[#seen - 1].path)
      assert.matches("odata.maxpagesize=5000", seen[#seen - 1].headers.prefer, 1, true)
    end)
  end)
end)
