-- Rows through the public API against an in-process emulator over HTTP.
local dataverse = require "dataverse"
local E = require "emulator"

describe("rows", function()
  local emu, org

  setup(function() emu, org = E.open() end)
  teardown(function() E.close(emu, org) end)

  it("answers whoami with the three ids", function()
    local me = org:whoami()
    assert.is_true(dataverse.odata.is_guid(me.UserId))
    assert.is_true(dataverse.odata.is_guid(me.BusinessUnitId))
    assert.is_true(dataverse.odata.is_guid(me.OrganizationId))
  end)

  it("creates a row and reads it back by id, with and without columns", function()
    local id = org:create("account", { name = "Contoso", accountnumber = "A-1" })
    assert.is_true(dataverse.odata.is_guid(id))
    local row = org:retrieve("account", id)
    assert.equals("Contoso", row.name)
    assert.equals("A-1", row.accountnumber)
    assert.equals(id, row.accountid)
    assert.is_nil(row["@odata.context"])
    local some = org:retrieve("account", id, { columns = { "name" } })
    assert.equals("Contoso", some.name)
    assert.is_nil(some.accountnumber)
  end)

  it("accepts entity set names as well as logical names", function()
    local id = org:create("accounts", { name = "By set name" })
    assert.equals("By set name", org:retrieve("account", id).name)
  end)

  it("looks a table's entity set name up once per connection", function()
    local dv = require "dv"
    local r = dv.run({ "-e", [[
      local dataverse = require "dataverse"
      local org = dataverse.connect { emulator = { db = ":memory:" }, trace = true }
      local id = org:create("account", { name = "a" })
      org:retrieve("account", id)
      org:count("accounts")
      org:close()
      local again = dataverse.connect { emulator = { db = ":memory:" }, trace = true }
      again:count("account")
    ]] })
    assert.equals(0, r.status, r.stderr)
    local _, lookups = r.stderr:gsub("> GET [^\n]*/EntityDefinitions", "")
    assert.equals(2, lookups)
  end)

  it("returns nil for a row that does not exist", function()
    assert.is_nil(org:retrieve("account", "00000000-0000-0000-0000-00000000abcd"))
  end)

  it("updates a row and refuses to update one that does not exist", function()
    local id = org:create("account", { name = "Before" })
    org:update("account", id, { name = "After" })
    assert.equals("After", org:retrieve("account", id).name)
    local ok, err = pcall(org.update, org, "account", "00000000-0000-0000-0000-00000000abcd", { name = "x" })
    assert.is_false(ok)
    assert.equals(404, err.status)
    assert.equals("0x80040217", err.code)
    assert.matches("HTTP 404 0x80040217: ", tostring(err))
  end)

  it("upserts by id: created first, updated next", function()
    local g = "6d7a3b1c-0000-4000-8000-0000000000a1"
    local id, created = org:upsert("account", g, { name = "Upserted" })
    assert.equals(g, id)
    assert.is_true(created)
    id, created = org:upsert("account", g, { name = "Upserted again" })
    assert.equals(g, id)
    assert.is_false(created)
    assert.equals("Upserted again", org:retrieve("account", g).name)
  end)

  it("deletes a row, and raises when deleting it again", function()
    local id = org:create("account", { name = "Doomed" })
    org:delete("account", id)
    assert.is_nil(org:retrieve("account", id))
    local ok, err = pcall(org.delete, org, "account", id)
    assert.is_false(ok)
    assert.equals(404, err.status)
  end)

  it("sets lookups with @odata.bind and reads them back as _x_value", function()
    local c = org:create("contact", { lastname = "Primary" })
    local acc = org:create("account", { name = "Parent", ["primarycontactid@odata.bind"] = "/contacts(" .. c .. ")" })
    local row = org:retrieve("account", acc, { columns = { "_primarycontactid_value" } })
    assert.equals(c, row._primarycontactid_value)
  end)

  describe("query and count", function()
    local tag = "Q" .. os.time()
    setup(function()
      for i = 1, 7 do org:create("account", { name = tag .. "-" .. i, numberofemployees = i }) end
    end)

    it("follows nextLinks across pages and yields every row once, in order", function()
      local seen = {}
      for row in org:query("account", { columns = { "name", "numberofemployees" },
        filter = "startswith(name,'" .. tag .. "')", orderby = "numberofemployees desc", page_size = 2 }) do
        seen[#seen + 1] = row.numberofemployees
      end
      assert.same({ 7, 6, 5, 4, 3, 2, 1 }, seen)
      assert.equals("integer", math.type(seen[1]))
    end)

    it("honours top", function()
      local n = 0
      for _ in org:query("account", { filter = "startswith(name,'" .. tag .. "')", top = 3 }) do n = n + 1 end
      assert.equals(3, n)
    end)

    it("quotes filter values safely when built with odata.literal", function()
      org:create("account", { name = "O'Brien & Sons" })
      local names = {}
      for row in org:query("account", { filter = "name eq " .. dataverse.odata.literal("O'Brien & Sons") }) do
        names[#names + 1] = row.name
      end
      assert.same({ "O'Brien & Sons" }, names)
    end)

    it("counts rows, with and without a filter", function()
      assert.equals(7, org:count("account", { filter = "startswith(name,'" .. tag .. "')" }))
      assert.is_true(org:count("account") >= 7)
      assert.equals("integer", math.type(org:count("account")))
    end)

    it("raises the server's error for a bad filter", function()
      local ok, err = pcall(function()
        for _ in org:query("account", { filter = "nosuchcolumn eq 1" }) do end
      end)
      assert.is_false(ok)
      assert.equals(400, err.status)
      assert.is_string(err.message)
    end)
  end)

  describe("execute and request", function()
    it("calls a function with GET", function()
      local me = org:execute("WhoAmI")
      assert.equals(org:whoami().UserId, me.UserId)
    end)

    it("posts an action with its parameters as the JSON body", function()
      local ok, err = pcall(org.execute, org, "ReactivateEntityKey", { EntityLogicalName = "account", EntityKeyLogicalName = "nokey" })
      assert.is_false(ok)
      assert.equals(404, err.status)
      assert.matches("nokey", err.message) -- the server read the body
    end)

    it("passes function parameters as aliases with OData literals", function()
      local dv = require "dv"
      local r = dv.run({ "-e", [[
        local org = require"dataverse".connect{ emulator = { db = ":memory:" }, trace = true, retries = 0 }
        pcall(org.execute, org, "RetrieveTotalRecordCount", { EntityNames = { "account" }, N = "O'B" }, { method = "GET" })
      ]] })
      assert.equals(0, r.status)
      assert.matches("GET [^ ]*/api/data/v9.2/RetrieveTotalRecordCount%(EntityNames=@EntityNames,N=@N%)%?@EntityNames=%%5B%%22account%%22%%5D&@N='O''B' ", r.stderr)
    end)

    it("raises for an operation the server does not know", function()
      local ok, err = pcall(org.execute, org, "NoSuchAction", { A = 1 })
      assert.is_false(ok)
      assert.is_true(err.status >= 400)
    end)

    it("gives status, headers and the decoded body without raising on HTTP errors", function()
      local status, headers, body = org:request("GET", "WhoAmI")
      assert.equals(200, status)
      assert.matches("application/json", headers["content-type"])
      assert.is_true(dataverse.odata.is_guid(body.UserId))
      status, _, body = org:request("GET", "accounts(00000000-0000-0000-0000-00000000abcd)")
      assert.equals(404, status)
      assert.equals("0x80040217", body.error.code)
    end)

    it("refuses an absolute URL outside the organization, so the token stays home", function()
      local ok, err = pcall(org.request, org, "GET", "http://example.invalid/api/data/v9.2/WhoAmI")
      assert.is_false(ok)
      assert.equals("url", err.code)
    end)

    it("sends a body and headers", function()
      local status, headers, body = org:request("POST", "accounts", { name = "Raw" }, { Prefer = "return=representation" })
      assert.equals(201, status)
      assert.equals("return=representation", headers["preference-applied"])
      assert.equals("Raw", body.name)
    end)
  end)

  describe("misuse", function()
    local function msg(f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      return tostring(err)
    end

    it("names the bad argument", function()
      assert.matches("bad argument #1 to 'create' %(table name expected, got nil%)", msg(org.create, org, nil, {}))
      assert.matches("bad argument #2 to 'create' %(table expected, got string%)", msg(org.create, org, "account", "x"))
      assert.matches("bad argument #2 to 'retrieve'", msg(org.retrieve, org, "account", "not-a-guid"))
      assert.matches("bad argument #2 to 'delete'", msg(org.delete, org, "account", {}))
      assert.matches("bad argument #3 to 'retrieve' %(option 'columns'", msg(org.retrieve, org, "account",
        "00000000-0000-0000-0000-00000000abcd", { columns = 5 }))
      assert.matches("bad argument #2 to 'query' %(option 'top'", msg(org.query, org, "account", { top = "x" }))
      assert.matches("connect: unknown option 'nope' %(valid options: allow_insecure_http, authority_host, ", msg(dataverse.connect, { nope = 1 }))
      assert.matches("bad argument #1 to 'request'", msg(org.request, org, nil, "WhoAmI"))
    end)

    it("points the message at the script line that made the bad call", function()
      local ok, err = pcall(function() org:retrieve("account", 5) end)
      assert.is_false(ok)
      assert.matches("^spec/api_rows_spec%.lua:%d+: bad argument #2 to 'retrieve'", err)
      ok, err = pcall(function() org:changes { entity = "account", columns = 5 } end)
      assert.matches("^spec/api_rows_spec%.lua:%d+: bad argument #1 to 'changes' %(option 'columns'", err)
    end)

    it("raises a not-found error for an unknown table", function()
      local ok, err = pcall(org.create, org, "nosuch_table", { name = "x" })
      assert.is_false(ok)
      assert.equals(404, err.status)
      assert.matches("nosuch_table", err.message)
    end)
  end)
end)
