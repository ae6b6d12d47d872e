-- The requests and answers printed in Microsoft's Dataverse Web API documentation
-- (learn.microsoft.com, power-apps/developer/data-platform/webapi/…), replayed against the
-- emulator: each `describe` names the page, each `it` one of its examples, adapted to the
-- tables the emulator has (account, contact, and the books table of a solution).
local E = require "emulator"
local cjson = require "cjson"

local GUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"

describe("emulator replaying the documentation", function()
  local api

  setup(function()
    api = E.start { key_delay = 0 }
    assert.equals(204, api.post("ImportSolution", E.import_body(E.books)).status)
  end)
  teardown(function() api.stop() end)

  -- The documented JSON answer headers.
  local function json_headers(r)
    assert.equals("4.0", r.headers["odata-version"])
    assert.equals("application/json; odata.metadata=minimal", r.headers["content-type"])
  end

  local sample = {
    name = "Sample Account",
    creditonhold = false,
    address1_latitude = 47.639583,
    description = "This is the description of the sample account",
    revenue = 5000000,
    accountcategorycode = 1,
  }

  -- "Create a table row using the Web API"
  describe("Create a table row using the Web API", function()
    it("Basic create: 204 with OData-Version and OData-EntityId", function()
      local r = api.post("accounts", sample)
      assert.equals(204, r.status)
      assert.equals("", r.body)
      assert.equals("4.0", r.headers["odata-version"])
      assert.matches("^" .. api.base:gsub("%p", "%%%0") .. "accounts%(" .. GUID .. "%)$", r.headers["odata-entityid"])
    end)

    it("Create with data returned: 201, Preference-Applied and the selected columns", function()
      local r = api.post("accounts?$select=name,creditonhold,address1_latitude,description,revenue,accountcategorycode,createdon",
        sample, { headers = { Prefer = "return=representation" } })
      assert.equals(201, r.status)
      json_headers(r)
      assert.equals("return=representation", r.headers["preference-applied"])
      local b = r.json
      -- The page prints "$metadata#accounts/$entity" (an answer from the v8.2 days); the
      -- newer captures in "Migrate from the Organization Data Service" and "Associate table
      -- rows on create" list the $select: that is what is checked.
      assert.equals(api.base .. "$metadata#accounts(name,creditonhold,address1_latitude,description,revenue,accountcategorycode,createdon)/$entity",
        b["@odata.context"])
      assert.is_nil(r.headers["odata-entityid"]) -- "the OData-EntityId header ... is not returned"
      assert.matches('^W/"%d+"$', b["@odata.etag"])
      assert.matches("^" .. GUID .. "$", b.accountid)
      assert.equals(1, b.accountcategorycode)
      assert.equals("This is the description of the sample account", b.description)
      assert.equals(47.639583, b.address1_latitude)
      assert.is_false(b.creditonhold)
      assert.equals("Sample Account", b.name)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", b.createdon)
      assert.equals(5000000, b.revenue)
      assert.is_nil(b.telephone1) -- only what $select asked for, plus the id and etag
    end)

    it("Create related table rows in one operation (single-valued deep insert)", function()
      local r = api.post("accounts", { name = "Sample Account", primarycontactid = { firstname = "John", lastname = "Smith" } })
      assert.equals(204, r.status)
      local id = r.headers["odata-entityid"]:match("%((" .. GUID .. ")%)$")
      local g = api.get("accounts(" .. id .. ")?$select=name&$expand=primarycontactid($select=fullname)")
      assert.equals(200, g.status)
      assert.equals("John Smith", g.json.primarycontactid.fullname)
    end)

    it("refuses a collection-valued deep insert loudly (501, naming it) and creates nothing", function()
      local r = api.post("accounts", { name = "Deep collection",
        opportunity_customer_accounts = { { name = "Opportunity associated to Sample Account" } } })
      assert.equals(501, r.status)
      assert.matches("opportunity_customer_accounts", r.json.error.message, 1, true)
      assert.equals("0", api.get("accounts/$count?$filter=" .. api.enc("name eq 'Deep collection'")).body:gsub("^\239\187\191", ""))
    end)

    it("Associate table rows on create: @odata.bind with $expand under return=representation", function()
      local cid = api.create("contacts", { firstname = "Yvonne", lastname = "McKay (sample)" })
      local r = api.post("accounts?$select=name&$expand=primarycontactid($select=fullname)",
        { name = "Sample Account", ["primarycontactid@odata.bind"] = "/contacts(" .. cid .. ")" },
        { headers = { Prefer = "return=representation" } })
      assert.equals(201, r.status)
      assert.equals("return=representation", r.headers["preference-applied"])
      local b = r.json
      assert.equals(api.base .. "$metadata#accounts(name,primarycontactid(fullname))/$entity", b["@odata.context"])
      assert.equals("Sample Account", b.name)
      assert.matches('^W/"%d+"$', b.primarycontactid["@odata.etag"])
      assert.equals("Yvonne McKay (sample)", b.primarycontactid.fullname)
      assert.equals(cid, b.primarycontactid.contactid)
    end)
  end)
  -- "Retrieve a table row using the Web API"
  describe("Retrieve a table row using the Web API", function()
    local id, cid
    setup(function()
      cid = api.create("contacts", { firstname = "Nancy", lastname = "Anderson (sample)" })
      id = api.create("accounts", { name = "Adventure Works (sample)", revenue = 10000,
        ["primarycontactid@odata.bind"] = "/contacts(" .. cid .. ")" })
    end)

    it("Basic retrieve: every property", function()
      local r = api.get("accounts(" .. id .. ")")
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals(api.base .. "$metadata#accounts/$entity", r.json["@odata.context"])
      assert.equals(id, r.json.accountid)
      assert.equals(cid, r.json._primarycontactid_value)
    end)

    it("Retrieve specific properties", function()
      local r = api.get("accounts(" .. id .. ")?$select=name,revenue")
      assert.equals(200, r.status)
      json_headers(r)
      local b = r.json
      assert.equals(api.base .. "$metadata#accounts(name,revenue)/$entity", b["@odata.context"])
      assert.matches('^W/"%d+"$', b["@odata.etag"])
      assert.equals("Adventure Works (sample)", b.name)
      assert.equals(10000, b.revenue)
      assert.equals(id, b.accountid)
      assert.is_nil(b.description)
    end)

    it("Retrieve using an alternate key", function()
      local bid = api.create("sample_books", { sample_name = "Joe", sample_bookcode = "abc@example.com" })
      local r = api.get("sample_books(sample_bookcode='abc@example.com')?$select=sample_name")
      assert.equals(200, r.status)
      assert.equals(bid, r.json.sample_bookid)
      assert.equals("Joe", r.json.sample_name)
    end)

    it("Retrieve a single property value", function()
      local r = api.get("accounts(" .. id .. ")/name")
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals(api.base .. "$metadata#accounts(" .. id .. ")/name", r.json["@odata.context"])
      assert.equals("Adventure Works (sample)", r.json.value)
    end)

    it("Retrieve the raw value of a property with /$value", function()
      local r = api.get("accounts(" .. id .. ")/name/$value")
      assert.equals(200, r.status)
      assert.matches("^text/plain", r.headers["content-type"])
      assert.equals("Adventure Works (sample)", r.body)
      r = api.get("accounts(" .. id .. ")/revenue/$value")
      assert.equals(200, r.status)
      assert.equals("10000", r.body)
    end)

    it("Retrieve navigation property values (single-valued)", function()
      local r = api.get("accounts(" .. id .. ")/primarycontactid?$select=fullname")
      assert.equals(200, r.status)
      json_headers(r)
      local b = r.json
      assert.equals(api.base .. "$metadata#contacts(fullname)/$entity", b["@odata.context"])
      assert.matches('^W/"%d+"$', b["@odata.etag"])
      assert.equals("Nancy Anderson (sample)", b.fullname)
      assert.equals(cid, b.contactid)
    end)

    it("refuses /$ref and collection-valued navigation loudly (501)", function()
      local r = api.get("accounts(" .. id .. ")/Account_Tasks/$ref")
      assert.equals(501, r.status)
      assert.matches("Account_Tasks", r.json.error.message, 1, true)
      r = api.get("accounts(" .. id .. ")/Account_Tasks/$count")
      assert.equals(501, r.status)
    end)

    it("Retrieve related rows by expanding single-valued navigation properties", function()
      local r = api.get("accounts(" .. id .. ")?$select=name&$expand=primarycontactid($select=contactid,fullname)")
      assert.equals(200, r.status)
      json_headers(r)
      local b = r.json
      assert.equals(api.base .. "$metadata#accounts(name,primarycontactid(contactid,fullname))/$entity", b["@odata.context"])
      assert.equals("Adventure Works (sample)", b.name)
      assert.equals(id, b.accountid)
      assert.matches('^W/"%d+"$', b.primarycontactid["@odata.etag"])
      assert.equals(cid, b.primarycontactid.contactid)
      assert.equals("Nancy Anderson (sample)", b.primarycontactid.fullname)
    end)
  end)

  -- "Update and delete table rows using the Web API"
  describe("Update and delete table rows using the Web API", function()
    local id
    before_each(function() id = api.create("accounts", sample) end)

    local upd = {
      name = "Updated Sample Account ",
      creditonhold = true,
      address1_latitude = 47.639583,
      description = "This is the updated description of the sample account",
      revenue = 6000000,
      accountcategorycode = 2,
    }

    it("Basic update with If-Match: *", function()
      local r = api.patch("accounts(" .. id .. ")", upd, { headers = { ["If-Match"] = "*" } })
      assert.equals(204, r.status)
      assert.equals("4.0", r.headers["odata-version"])
      local g = api.get("accounts(" .. id .. ")?$select=name,creditonhold,revenue,accountcategorycode").json
      assert.equals("Updated Sample Account ", g.name)
      assert.is_true(g.creditonhold)
      assert.equals(6000000, g.revenue)
      assert.equals(2, g.accountcategorycode)
    end)

    it("Update with data returned: 200 and Preference-Applied", function()
      local r = api.patch("accounts(" .. id .. ")?$select=name,creditonhold,address1_latitude,description,revenue,accountcategorycode,createdon",
        { name = "Updated Sample Account" }, { headers = { Prefer = "return=representation", ["If-Match"] = "*" } })
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals("return=representation", r.headers["preference-applied"])
      local b = r.json
      assert.equals(api.base .. "$metadata#accounts(name,creditonhold,address1_latitude,description,revenue,accountcategorycode,createdon)/$entity",
        b["@odata.context"])
      assert.equals(id, b.accountid)
      assert.equals("Updated Sample Account", b.name)
      assert.equals("This is the description of the sample account", b.description)
      assert.equals(1, b.accountcategorycode)
      assert.is_false(b.creditonhold)
      assert.equals(5000000, b.revenue)
    end)

    it("Update a single property value with PUT", function()
      local r = api.call("PUT", "accounts(" .. id .. ")/name", { body = { value = "Updated Sample Account Name" } })
      assert.equals(204, r.status)
      assert.equals("4.0", r.headers["odata-version"])
      assert.equals("Updated Sample Account Name", api.get("accounts(" .. id .. ")/name").json.value)
    end)

    it("Delete a single property value", function()
      local r = api.delete("accounts(" .. id .. ")/description")
      assert.equals(204, r.status)
      assert.equals("4.0", r.headers["odata-version"])
      assert.equals(cjson.null, api.get("accounts(" .. id .. ")?$select=description").json.description)
    end)

    it("Upsert: PATCH to an id that does not exist creates the row", function()
      local new = "00000000-0000-0000-0000-0000000000c1"
      local r = api.patch("accounts(" .. new .. ")", { name = "Upserted" })
      assert.equals(204, r.status)
      assert.equals(api.base .. "accounts(" .. new .. ")", r.headers["odata-entityid"])
      assert.equals("Upserted", api.get("accounts(" .. new .. ")/name").json.value)
      r = api.patch("accounts(" .. new .. ")", { name = "Upserted again" })
      assert.equals(204, r.status)
      assert.equals("Upserted again", api.get("accounts(" .. new .. ")/name").json.value)
    end)

    it("Basic delete: 204, then 404 for a row that is not there", function()
      local r = api.delete("accounts(" .. id .. ")")
      assert.equals(204, r.status)
      assert.equals("4.0", r.headers["odata-version"])
      r = api.delete("accounts(" .. id .. ")")
      assert.equals(404, r.status)
      assert.equals("0x80040217", r.json.error.code)
      assert.equals("Entity 'account' With Id = " .. id .. " Does Not Exist", r.json.error.message)
    end)
  end)
end)
