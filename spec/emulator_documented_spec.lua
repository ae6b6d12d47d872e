-- Requests and answers as Microsoft's Web API documentation prints them, replayed against
-- the emulator: conditional operations ("Perform conditional operations using the Web
-- API"), upsert by alternate key ("Use Upsert to insert or update a record"), paging
-- ("Page results") and the system columns every user-owned table has.
local E = require "emulator"

describe("emulator as documented", function()
  local api

  setup(function()
    api = E.start { key_delay = 0 }
    assert.equals(204, api.post("ImportSolution", E.import_body(E.books)).status)
    -- the keys are active once their (immediate) index job has run
    api.get("EntityDefinitions(LogicalName='sample_book')/Keys")
  end)
  teardown(function() api.stop() end)

  local function version_of(set, id)
    return api.get(set .. "(" .. id .. ")?$select=versionnumber").json["@odata.etag"]
  end

  describe("conditional operations", function()
    it("refuses a DELETE whose If-Match is not the row's ETag with 412 and keeps the row", function()
      local id = api.create("accounts", { name = "Kept" })
      local etag = version_of("accounts", id)
      assert.equals(204, api.patch("accounts(" .. id .. ")", { name = "Kept 2" }).status)
      local r = api.delete("accounts(" .. id .. ")", { headers = { ["If-Match"] = etag } })
      assert.equals(412, r.status)
      assert.equals("0x80060882", r.json.error.code)
      assert.equals("The version of the existing record doesn't match the RowVersion property provided.",
        r.json.error.message)
      local g = api.get("accounts(" .. id .. ")?$select=name")
      assert.equals(200, g.status)
      assert.equals("Kept 2", g.json.name)
    end)

    it("deletes with the current ETag", function()
      local id = api.create("accounts", { name = "Gone" })
      local r = api.delete("accounts(" .. id .. ")", { headers = { ["If-Match"] = version_of("accounts", id) } })
      assert.equals(204, r.status)
      assert.equals(404, api.get("accounts(" .. id .. ")").status)
    end)

    it("answers a GET with If-None-Match of the current ETag with 304 and no body", function()
      local id = api.create("accounts", { name = "Cached" })
      local etag = version_of("accounts", id)
      local r = api.get("accounts(" .. id .. ")?$select=name", { headers = { ["If-None-Match"] = etag } })
      assert.equals(304, r.status)
      assert.equals("", r.body)
      assert.equals(204, api.patch("accounts(" .. id .. ")", { name = "Changed" }).status)
      r = api.get("accounts(" .. id .. ")?$select=name", { headers = { ["If-None-Match"] = etag } })
      assert.equals(200, r.status)
      assert.equals("Changed", r.json.name)
      assert.equals(r.json["@odata.etag"], r.headers["etag"])
    end)

    it("ignores If-None-Match: null, which some clients send", function()
      local id = api.create("accounts", { name = "Null" })
      local r = api.get("accounts(" .. id .. ")", { headers = { ["If-None-Match"] = "null" } })
      assert.equals(200, r.status)
    end)
  end)

  describe("answers that carry a row", function()
    local prefer = { ["Prefer"] = "return=representation" }

    it("send an ETag header equal to @odata.etag on create, update and upsert", function()
      local c = api.post("accounts?$select=name", { name = "Repr" }, { headers = prefer })
      assert.equals(201, c.status)
      assert.matches('^W/"%d+"$', c.headers["etag"])
      assert.equals(c.json["@odata.etag"], c.headers["etag"])
      local id = c.json.accountid
      local u = api.patch("accounts(" .. id .. ")?$select=name", { name = "Repr 2" }, { headers = prefer })
      assert.equals(200, u.status)
      assert.equals(u.json["@odata.etag"], u.headers["etag"])
      assert.not_equals(c.headers["etag"], u.headers["etag"])
      local n = api.patch("accounts(00000000-0000-0000-0000-0000000000e1)?$select=name", { name = "Upserted" },
        { headers = prefer })
      assert.equals(201, n.status)
      assert.equals(n.json["@odata.etag"], n.headers["etag"])
    end)
  end)

  describe("upsert by alternate key", function()
    it("answers OData-EntityId in the key form the request used", function()
      local r = api.patch("sample_books(sample_bookcode='UP-1')", { sample_name = "Up" })
      assert.equals(204, r.status)
      assert.equals(api.base .. "sample_books(sample_bookcode='UP-1')", r.headers["odata-entityid"])
      r = api.patch("sample_books(sample_author='Ann',sample_edition=2)", { sample_name = "Two keys" })
      assert.equals(204, r.status)
      assert.equals(api.base .. "sample_books(sample_author='Ann',sample_edition=2)", r.headers["odata-entityid"])
      -- the order the request wrote, not the key's
      r = api.patch("sample_books(sample_edition=2,sample_author='Ann')", { sample_name = "Two keys again" })
      assert.equals(204, r.status)
      assert.equals(api.base .. "sample_books(sample_edition=2,sample_author='Ann')", r.headers["odata-entityid"])
      local rows = api.get("sample_books?$select=sample_name&$filter=" .. api.enc("sample_author eq 'Ann'")).json
      assert.equals(1, #rows.value)
      assert.equals("Two keys again", rows.value[1].sample_name)
    end)

    it("percent-encodes what a URL cannot carry in that key form", function()
      local r = api.patch("sample_books(sample_bookcode='A%20B')", { sample_name = "Space" })
      assert.equals(204, r.status)
      assert.equals(api.base .. "sample_books(sample_bookcode='A%20B')", r.headers["odata-entityid"])
    end)

    it("ignores the body's key values when it updates and takes them when it creates", function()
      -- creates: the body's value for the key column is used
      local r = api.patch("sample_books(sample_bookcode='UP-2')", { sample_name = "Created", sample_bookcode = "UP-2" })
      assert.equals(204, r.status)
      -- updates: a different key value in the body does not move the row
      r = api.patch("sample_books(sample_bookcode='UP-2')", { sample_name = "Updated", sample_bookcode = "MOVED" })
      assert.equals(204, r.status)
      local g = api.get("sample_books(sample_bookcode='UP-2')?$select=sample_name,sample_bookcode")
      assert.equals(200, g.status)
      assert.equals("Updated", g.json.sample_name)
      assert.equals("UP-2", g.json.sample_bookcode)
      assert.equals(404, api.get("sample_books(sample_bookcode='MOVED')").status)
    end)
  end)

  describe("paging", function()
    setup(function()
      for i = 1, 7 do api.create("contacts", { firstname = "Page", lastname = ("P%02d"):format(i) }) end
    end)

    it("ignores $top when odata.maxpagesize is given: pages of the asked size with next links", function()
      local r = api.get("contacts?$select=lastname&$top=2&$filter=" .. api.enc("firstname eq 'Page'"),
        { headers = { Prefer = "odata.maxpagesize=3" } })
      assert.equals(200, r.status)
      assert.equals(3, #r.json.value)
      assert.equals("odata.maxpagesize=3", r.headers["preference-applied"])
      local seen = #r.json.value
      local next = r.json["@odata.nextLink"]
      while next do
        local p = api.get(next, { headers = { Prefer = "odata.maxpagesize=3" } })
        assert.equals(200, p.status)
        seen = seen + #p.json.value
        next = p.json["@odata.nextLink"]
      end
      assert.equals(7, seen)
    end)

    it("applies $top alone, with no next link and no Preference-Applied", function()
      local r = api.get("contacts?$select=lastname&$top=2&$filter=" .. api.enc("firstname eq 'Page'"))
      assert.equals(2, #r.json.value)
      assert.is_nil(r.json["@odata.nextLink"])
      assert.is_nil(r.headers["preference-applied"])
    end)
  end)

  describe("system columns", function()
    it("fills createdby, modifiedby, owninguser and owningbusinessunit from the caller", function()
      local who = api.get("WhoAmI").json
      local id = api.create("sample_books", { sample_name = "Sys", sample_bookcode = "SYS-1" })
      local row = api.get("sample_books(" .. id .. ")").json
      assert.equals(who.UserId, row._createdby_value)
      assert.equals(who.UserId, row._modifiedby_value)
      assert.equals(who.UserId, row._owninguser_value)
      assert.equals(who.UserId, row._ownerid_value)
      assert.equals(who.BusinessUnitId, row._owningbusinessunit_value)
      local acc = api.get("accounts(" .. api.create("accounts", { name = "Sys" }) .. ")").json
      assert.equals(who.UserId, acc._createdby_value)
      assert.equals(who.BusinessUnitId, acc._owningbusinessunit_value)
    end)

    it("keeps them the server's: a bound createdby is ignored", function()
      local id = api.create("accounts", { name = "Who" })
      local who = api.get("WhoAmI").json
      local r = api.patch("accounts(" .. id .. ")",
        { ["createdby@odata.bind"] = "/systemusers(" .. who.UserId .. ")", name = "Who 2" })
      assert.equals(204, r.status)
      assert.equals(who.UserId, api.get("accounts(" .. id .. ")").json._createdby_value)
    end)

    it("filters and selects on the lookups as _x_value properties", function()
      local who = api.get("WhoAmI").json
      local r = api.get("sample_books?$select=_createdby_value&$filter=" .. api.enc("_createdby_value eq " .. who.UserId))
      assert.equals(200, r.status)
      assert.is_true(#r.json.value >= 1)
      assert.equals(who.UserId, r.json.value[1]._createdby_value)
    end)
  end)

  describe("columns that are not Web API properties", function()
    -- Microsoft's 2015 export of UpsertSample declares owneridname, owneridtype,
    -- owneridyominame, createdbyname...: columns of the table, not properties of its type.
    local fixture = "../shared/fixtures/solutions/UpsertSample_1_0_0_0_managed.zip"
    local product

    setup(function()
      local f = assert(io.open(fixture, "rb"))
      local zip = f:read("a")
      f:close()
      local r = api.post("ImportSolution", {
        OverwriteUnmanagedCustomizations = false, PublishWorkflows = false,
        CustomizationFile = E.base64(zip), ImportJobId = "00000000-0000-0000-0000-0000000000ab" })
      assert.equals(204, r.status, r.body)
      product = api.create("sample_products", { sample_name = "Widget", sample_productcode = "W-1" })
    end)

    it("are not returned", function()
      local row = api.get("sample_products(" .. product .. ")").json
      assert.equals("Widget", row.sample_name)
      for _, k in ipairs { "owneridname", "owneridtype", "owneridyominame", "createdbyname",
        "createdbyyominame", "modifiedbyname", "owningbusinessunitname" } do
        assert.is_nil(row[k], k)
      end
      assert.truthy(row._ownerid_value)
    end)

    it("are refused when written, with Dataverse's error for an unknown property", function()
      for _, k in ipairs { "owneridname", "owneridtype", "createdbyname" } do
        local r = api.post("sample_products", { sample_name = "Bad", [k] = "x" })
        assert.equals(400, r.status, k)
        assert.equals("0x80060888", r.json.error.code)
        assert.matches("The property '" .. k .. "' does not exist on type 'Microsoft.Dynamics.CRM.sample_product'",
          r.json.error.message, 1, true)
      end
      assert.equals(0, #api.get("sample_products?$filter=" .. api.enc("sample_name eq 'Bad'")).json.value)
    end)

    it("are refused in $select", function()
      local r = api.get("sample_products?$select=owneridname")
      assert.equals(400, r.status)
    end)
  end)
end)
