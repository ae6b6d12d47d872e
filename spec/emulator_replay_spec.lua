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

    it("Retrieve a single property value of a lookup (_x_value)", function()
      local r = api.get("accounts(" .. id .. ")/_primarycontactid_value")
      assert.equals(200, r.status)
      assert.equals(api.base .. "$metadata#accounts(" .. id .. ")/_primarycontactid_value", r.json["@odata.context"])
      assert.equals(cid, r.json.value)
      r = api.call("PUT", "accounts(" .. id .. ")/_primarycontactid_value", { body = { value = cid } })
      assert.equals(400, r.status)
      assert.matches("@odata.bind", r.json.error.message, 1, true)
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

    it("refuses $expand=primarycontactid/$ref loudly (501)", function()
      local r = api.get("accounts(" .. id .. ")?$select=name&$expand=primarycontactid/$ref")
      assert.equals(501, r.status)
      assert.matches("primarycontactid/$ref", r.json.error.message, 1, true)
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
  -- "Query data using the Web API" and its pages "Select columns", "Filter rows", "Order
  -- rows", "Count rows", "Page results"
  describe("Query data using the Web API", function()
    local cid, outer
    setup(function()
      outer = api -- a fresh organization, so that the counts are the page's alone
      api = E.start {}
      cid = api.create("contacts", { firstname = "Susanna", lastname = "Stubberod (sample)" })
      api.create("contacts", { firstname = "Same", lastname = "same" })
      api.create("contacts", { firstname = "Pat", lastname = "O'Bryan" })
      api.create("contacts", { firstname = "Kim", lastname = "OBrian" })
      api.create("accounts", { name = "Litware, Inc. (sample)", revenue = 3000, numberofemployees = 10,
        ["primarycontactid@odata.bind"] = "/contacts(" .. cid .. ")" })
      api.create("accounts", { name = "Fourth Coffee (sample)", revenue = 150000, numberofemployees = 2500 })
      api.create("accounts", { name = "test account", revenue = 9000, numberofemployees = 4 })
    end)
    teardown(function()
      api.stop()
      api = outer
    end)

    local function names(r)
      assert.equals(200, r.status, r.body)
      local out = {}
      for _, row in ipairs(r.json.value) do out[#out + 1] = row.name or row.fullname end
      table.sort(out)
      return table.concat(out, "|")
    end
    local function q(set, query) return api.get(set .. "?" .. query:gsub(" ", "%%20"):gsub("'", "%%27")) end

    it("Select columns: the context lists them, every row has its etag and id", function()
      local r = q("accounts", "$select=name,revenue&$filter=contains(name,'(sample)')")
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals(api.base .. "$metadata#accounts(name,revenue)", r.json["@odata.context"])
      for _, row in ipairs(r.json.value) do
        assert.matches('^W/"%d+"$', row["@odata.etag"])
        assert.matches("^" .. GUID .. "$", row.accountid)
      end
      assert.equals(2, #r.json.value)
    end)

    it("Comparison and logical operators, grouping, OData string functions", function()
      assert.equals("test account", names(q("accounts", "$select=name&$filter=revenue lt 100000 and revenue gt 5000")))
      assert.equals("Fourth Coffee (sample)|Litware, Inc. (sample)|test account",
        names(q("accounts", "$select=name&$filter=contains(name,'(sample)') or contains(name,'test')")))
      assert.equals("test account", names(q("accounts", "$select=name&$filter=not contains(name,'sample')")))
      assert.equals("Fourth Coffee (sample)|test account",
        names(q("accounts", "$select=name&$filter=(contains(name,'sample') or contains(name,'test')) and revenue gt 5000")))
      assert.equals("test account", names(q("accounts", "$select=name&$filter=endswith(name,'account')")))
      assert.equals("Fourth Coffee (sample)", names(q("accounts", "$select=name&$filter=startswith(name,'f')")))
    end)

    it("Column comparison: firstname eq lastname", function()
      assert.equals("Same same", names(q("contacts", "$select=fullname&$filter=firstname eq lastname")))
    end)

    it("Dataverse query functions: Between", function()
      local r = api.get("accounts?$select=name,numberofemployees&$filter=" ..
        api.enc('Microsoft.Dynamics.CRM.Between(PropertyName=\'numberofemployees\',PropertyValues=["5","2000"])'))
      assert.equals("Litware, Inc. (sample)", names(r))
      r = api.get("accounts?$select=name&$filter=" ..
        api.enc('Microsoft.Dynamics.CRM.NotBetween(PropertyName=\'numberofemployees\',PropertyValues=["5","2000"])'))
      assert.equals("Fourth Coffee (sample)|test account", names(r))
    end)

    it("Dataverse query functions: In with parameter aliases and quotes in values (Manage single quotes)", function()
      local r = api.get("contacts?$select=fullname&$filter=" .. api.enc("Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)") ..
        "&@p1=" .. api.enc("'lastname'") .. "&@p2=" .. api.enc('["OBrian","OBryan","O\'Brian","O\'Bryan"]'))
      assert.equals("Kim OBrian|Pat O'Bryan", names(r))
      r = api.get("contacts?$select=fullname&$filter=" ..
        api.enc("Microsoft.Dynamics.CRM.NotIn(PropertyName='lastname',PropertyValues=['OBrian','same','Stubberod (sample)'])"))
      assert.equals("Pat O'Bryan", names(r))
    end)

    it("refuses the Dataverse query functions it does not serve loudly (501, naming the function)", function()
      local r = api.get("accounts?$select=name,accountnumber&$filter=" ..
        api.enc("Microsoft.Dynamics.CRM.LastXHours(PropertyName=@p1,PropertyValue=@p2)") .. "&@p1=" .. api.enc("'modifiedon'") .. "&@p2=12")
      assert.equals(501, r.status)
      assert.matches("Microsoft.Dynamics.CRM.LastXHours", r.json.error.message, 1, true)
    end)

    it("refuses not before a query function, as \"Use Web API functions\" documents", function()
      local r = api.get("accounts?$select=name&$filter=" ..
        api.enc("not Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=['x'])"))
      assert.equals(400, r.status)
      assert.equals("Not operator along with the Custom Named Condition operators is not allowed", r.json.error.message)
    end)

    it("single quotes doubled in a literal; an unterminated literal is refused", function()
      assert.equals("Pat O'Bryan", names(q("contacts", "$select=fullname&$filter=lastname eq 'O''Bryan'")))
      local r = q("contacts", "$select=fullname&$filter=lastname eq 'O")
      assert.equals(400, r.status)
      assert.matches("^There is an unterminated literal at position %d+ in 'lastname eq 'O'%.$", r.json.error.message)
    end)

    it("Filter using lookup column property values, with formatted values", function()
      local r = api.get("accounts?$filter=" .. api.enc("primarycontactid/fullname eq 'Susanna Stubberod (sample)'") ..
        "&$select=name,_primarycontactid_value",
        { headers = { Prefer = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"' } })
      assert.equals(200, r.status, r.body)
      json_headers(r)
      assert.equals('odata.include-annotations="OData.Community.Display.V1.FormattedValue"', r.headers["preference-applied"])
      assert.equals(api.base .. "$metadata#accounts(name,_primarycontactid_value)", r.json["@odata.context"])
      assert.equals(1, #r.json.value)
      local row = r.json.value[1]
      assert.equals("Litware, Inc. (sample)", row.name)
      assert.equals("Susanna Stubberod (sample)", row["_primarycontactid_value@OData.Community.Display.V1.FormattedValue"])
      assert.equals(cid, row._primarycontactid_value)
    end)

    it("Use OData to query data: the service document lists the entity sets", function()
      local r = api.get("")
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals(api.base .. "$metadata", r.json["@odata.context"])
      local found
      for _, v in ipairs(r.json.value) do
        if v.name == "accounts" then found = v end
      end
      assert.same({ name = "accounts", kind = "EntitySet", url = "accounts" }, found)
    end)

    it("Retrieve data: $select, $orderby, $top and the formatted values preference applied", function()
      local r = api.get("accounts?$select=name,statecode,statuscode&$orderby=name&$top=1",
        { headers = { Prefer = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"' } })
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals('odata.include-annotations="OData.Community.Display.V1.FormattedValue"', r.headers["preference-applied"])
      assert.equals(api.base .. "$metadata#accounts(name,statecode,statuscode)", r.json["@odata.context"])
      assert.equals(1, #r.json.value)
      local row = r.json.value[1]
      assert.equals("Fourth Coffee (sample)", row.name)
      assert.equals(0, row.statecode)
      assert.equals(1, row.statuscode)
      assert.matches("^" .. GUID .. "$", row.accountid)
    end)

    it("Use parameter aliases with query options ($orderby and $filter; an unassigned alias is null)", function()
      local plain = q("accounts", "$select=name,revenue&$orderby=revenue asc,name desc&$filter=revenue ne null")
      local aliased = api.get("accounts?$select=name,revenue&$orderby=" .. api.enc("@p1 asc,@p2 desc") ..
        "&$filter=" .. api.enc("@p1 ne @p3") .. "&@p1=revenue&@p2=name")
      assert.equals(200, aliased.status, aliased.body)
      assert.equals(3, #aliased.json.value)
      for i = 1, 3 do assert.equals(plain.json.value[i].name, aliased.json.value[i].name) end
      assert.equals("Litware, Inc. (sample)", aliased.json.value[1].name)
    end)

    it("refuses the unsupported OData query options $skip, $search, $format", function()
      for _, o in ipairs { "$skip=1", "$search=x", "$format=json" } do
        local r = api.get("accounts?" .. o)
        assert.equals(400, r.status)
        assert.equals("0x80060888", r.json.error.code)
        assert.matches(o:match("^[^=]+"), r.json.error.message, 1, true)
      end
    end)

    it("Page results: odata.maxpagesize, Preference-Applied and a nextLink that keeps $select", function()
      local seen = {}
      local r = api.get("contacts?$select=fullname", { headers = { Prefer = "odata.maxpagesize=2" } })
      for page = 1, 2 do
        assert.equals(200, r.status)
        assert.equals("4.0", r.headers["odata-version"])
        assert.equals("odata.maxpagesize=2", r.headers["preference-applied"])
        assert.equals(api.base .. "$metadata#contacts(fullname)", r.json["@odata.context"])
        assert.equals(2, #r.json.value)
        for _, row in ipairs(r.json.value) do
          assert.matches('^W/"%d+"$', row["@odata.etag"])
          assert.is_nil(seen[row.contactid])
          seen[row.contactid] = row.fullname
        end
        if page == 1 then
          assert.matches("^" .. api.base:gsub("%p", "%%%0") .. "contacts%?%$select=fullname&%$skiptoken=", r.json["@odata.nextLink"])
          r = api.get(r.json["@odata.nextLink"], { headers = { Prefer = "odata.maxpagesize=2" } })
        end
      end
      assert.is_nil(r.json["@odata.nextLink"])
    end)

    it("Order rows: lookups sort by the related row's primary name", function()
      local a = api.create("contacts", { firstname = "Aaron", lastname = "Zed" })
      local z = api.create("contacts", { firstname = "Zoe", lastname = "Able" })
      local x = api.create("accounts", { name = "Ordered 1", ["primarycontactid@odata.bind"] = "/contacts(" .. z .. ")" })
      local y = api.create("accounts", { name = "Ordered 2", ["primarycontactid@odata.bind"] = "/contacts(" .. a .. ")" })
      local r = q("accounts", "$select=name&$filter=startswith(name,'Ordered')&$orderby=_primarycontactid_value asc")
      assert.equals(200, r.status, r.body)
      assert.equals("Ordered 2", r.json.value[1].name) -- Aaron Zed before Zoe Able
      assert.equals("Ordered 1", r.json.value[2].name)
      for _, id in ipairs { x, y } do assert.equals(204, api.delete("accounts(" .. id .. ")").status) end
      for _, id in ipairs { a, z } do assert.equals(204, api.delete("contacts(" .. id .. ")").status) end
    end)

    it("Order rows and $top", function()
      local r = q("accounts", "$select=name&$orderby=revenue desc&$top=2")
      assert.equals(200, r.status)
      assert.equals(2, #r.json.value)
      assert.equals("Fourth Coffee (sample)", r.json.value[1].name)
      assert.is_nil(r.json["@odata.nextLink"])
    end)

    it("Count rows: $count=true and /$count", function()
      local r = q("accounts", "$select=accountid&$count=true&$filter=contains(name,'sample')")
      assert.equals(200, r.status)
      assert.equals(api.base .. "$metadata#accounts(accountid)", r.json["@odata.context"])
      assert.equals(2, r.json["@odata.count"])
      local c = api.get("contacts/$count")
      assert.equals(200, c.status)
      assert.matches("^text/plain", c.headers["content-type"])
      assert.equals("4.0", c.headers["odata-version"])
      assert.equals("4", c.body)
    end)

    it("Count rows with odata.maxpagesize and the Microsoft.Dynamics.CRM.* annotations", function()
      local r = api.get("accounts?$select=name&$filter=" .. api.enc("contains(name,'a')") .. "&$count=true",
        { headers = { Prefer = 'odata.maxpagesize=2,odata.include-annotations="Microsoft.Dynamics.CRM.*"' } })
      assert.equals(200, r.status)
      -- one Preference-Applied header per preference, as the page prints them
      assert.matches("\nPreference%-Applied: odata%.maxpagesize=2\r", r.raw_headers)
      assert.matches('\nPreference%-Applied: odata%.include%-annotations="Microsoft%.Dynamics%.CRM%.%*"\r', r.raw_headers)
      local b = r.json
      assert.equals(api.base .. "$metadata#accounts(name)", b["@odata.context"])
      assert.equals(3, b["@odata.count"])
      assert.equals(3, b["@Microsoft.Dynamics.CRM.totalrecordcount"])
      assert.is_false(b["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"])
      assert.equals(2, #b.value)
      assert.matches("^" .. api.base:gsub("%p", "%%%0") .. "accounts%?", b["@odata.nextLink"])
      local n = api.get(b["@odata.nextLink"], { headers = { Prefer = "odata.maxpagesize=2" } })
      assert.equals(200, n.status)
      assert.equals(1, #n.json.value)
      assert.is_nil(n.json["@odata.nextLink"])
    end)
  end)

  -- "Compose HTTP requests and handle errors"
  describe("Compose HTTP requests and handle errors", function()
    it("answers OData-Version 4.0 and the minimal-metadata JSON content type", function()
      local r = api.get("accounts?$select=name&$top=1", { headers = { ["If-None-Match"] = "null" } })
      assert.equals(200, r.status)
      json_headers(r)
    end)

    it("Parse errors from the response: {error:{code,message}}", function()
      local r = api.get("accounts?$select=nosuchcolumn")
      assert.equals(400, r.status)
      json_headers(r)
      assert.equals("0x80060888", r.json.error.code)
      assert.equals("string", type(r.json.error.message))
      local n = 0
      for _ in pairs(r.json.error) do n = n + 1 end
      assert.equals(2, n) -- no annotations unless asked for
    end)

    it("Include more details with errors: HelpLink and InnerError.Message under odata.include-annotations", function()
      local r = api.get("accounts(00000000-0000-0000-0000-00000000dead)",
        { headers = { Prefer = 'odata.include-annotations="*"' } })
      assert.equals(404, r.status)
      local e = r.json.error
      assert.equals("0x80040217", e.code)
      assert.equals("http://go.microsoft.com/fwlink/?LinkID=398563&error=Microsoft.Crm.CrmException%3a80040217&client=platform",
        e["@Microsoft.PowerApps.CDS.HelpLink"])
      assert.equals(e.message, e["@Microsoft.PowerApps.CDS.InnerError.Message"])
      r = api.get("accounts(00000000-0000-0000-0000-00000000dead)",
        { headers = { Prefer = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue,Microsoft.PowerApps.CDS.HelpLink"' } })
      assert.truthy(r.json.error["@Microsoft.PowerApps.CDS.HelpLink"])
      assert.is_nil(r.json.error["@Microsoft.PowerApps.CDS.InnerError.Message"])
    end)

    it("405 for a method the resource does not take (DELETE or PATCH on a collection)", function()
      assert.equals(405, api.delete("accounts").status)
      assert.equals(405, api.patch("accounts", { name = "x" }).status)
    end)
  end)

  -- "Use Web API functions"
  describe("Use Web API functions", function()
    it("Unbound functions: WhoAmI()", function()
      local r = api.get("WhoAmI()")
      assert.equals(200, r.status)
      json_headers(r)
      local b = r.json
      assert.equals(api.base .. "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", b["@odata.context"])
      assert.matches("^" .. GUID .. "$", b.BusinessUnitId)
      assert.matches("^" .. GUID .. "$", b.UserId)
      assert.matches("^" .. GUID .. "$", b.OrganizationId)
    end)

    it("RetrieveVersion", function()
      local r = api.get("RetrieveVersion()")
      assert.equals(200, r.status)
      json_headers(r)
      assert.equals(api.base .. "$metadata#Microsoft.Dynamics.CRM.RetrieveVersionResponse", r.json["@odata.context"])
      assert.matches("^9%.2%.%d+%.%d+$", r.json.Version)
    end)
  end)
  -- "Associate and disassociate table rows using the Web API"
  describe("Associate and disassociate table rows using the Web API", function()
    local id, c1, c2
    before_each(function()
      c1 = api.create("contacts", { firstname = "First", lastname = "Contact" })
      c2 = api.create("contacts", { firstname = "Second", lastname = "Contact" })
      id = api.create("accounts", { name = "Associated", ["primarycontactid@odata.bind"] = "/contacts(" .. c1 .. ")" })
    end)
    local function contact_of(aid)
      local v = api.get("accounts(" .. aid .. ")?$select=_primarycontactid_value").json._primarycontactid_value
      return v ~= cjson.null and v or nil
    end

    it("Change the reference in a single-valued navigation property (PUT …/$ref)", function()
      local r = api.call("PUT", "accounts(" .. id .. ")/primarycontactid/$ref",
        { body = { ["@odata.id"] = "contacts(" .. c2 .. ")" } })
      assert.equals(204, r.status)
      assert.equals("4.0", r.headers["odata-version"])
      assert.is_nil(r.headers["odata-entityid"])
      assert.equals(c2, contact_of(id))
      r = api.call("PUT", "accounts(" .. id .. ")/primarycontactid/$ref",
        { body = { ["@odata.id"] = api.base .. "contacts(" .. c1 .. ")" } })
      assert.equals(204, r.status)
      assert.equals(c1, contact_of(id))
    end)

    it("Remove a reference to a table (DELETE …/$ref of a single-valued navigation property)", function()
      local r = api.delete("accounts(" .. id .. ")/primarycontactid/$ref")
      assert.equals(204, r.status)
      assert.equals("4.0", r.headers["odata-version"])
      assert.is_nil(contact_of(id))
    end)

    it("Associate tables on update with @odata.bind", function()
      local r = api.patch("accounts(" .. id .. ")", { ["primarycontactid@odata.bind"] = "contacts(" .. c2 .. ")" })
      assert.equals(204, r.status)
      assert.equals(c2, contact_of(id))
    end)

    it("Disassociate tables on update: the bind set to null, or the navigation property set to null", function()
      local r = api.patch("accounts(" .. id .. ")", '{"parentaccountid@odata.bind": null, "primarycontactid@odata.bind": null}')
      assert.equals(204, r.status)
      assert.is_nil(contact_of(id))
      assert.equals(204, api.patch("accounts(" .. id .. ")", { ["primarycontactid@odata.bind"] = "/contacts(" .. c1 .. ")" }).status)
      r = api.patch("accounts(" .. id .. ")", '{"parentaccountid": null, "primarycontactid": null}')
      assert.equals(204, r.status, r.body)
      assert.is_nil(contact_of(id))
    end)

    it("refuses the collection-valued forms loudly (501)", function()
      local r = api.post("accounts(" .. id .. ")/opportunity_customer_accounts/$ref",
        { ["@odata.id"] = api.base .. "opportunities(00000000-0000-0000-0000-000000000001)" })
      assert.equals(501, r.status)
      assert.matches("opportunity_customer_accounts", r.json.error.message, 1, true)
    end)
  end)
end)
