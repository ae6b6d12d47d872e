-- Table definitions, alternate keys and their index jobs, and solutions.
local E = require "emulator"

describe("emulator metadata and solutions", function()
  local api

  before_each(function()
    api = E.start { key_delay = 90 }
  end)
  after_each(function() api.stop() end)

  local function import(o)
    return api.post("ImportSolution", E.import_body(o))
  end

  local function key_status(name)
    local r = api.get("EntityDefinitions(LogicalName='sample_book')/Keys(LogicalName='" .. name .. "')")
    assert.equals(200, r.status, r.body)
    return r.json.EntityKeyIndexStatus
  end

  describe("EntityDefinitions", function()
    it("describes the built-in tables", function()
      local r = api.get("EntityDefinitions(LogicalName='account')")
      assert.equals(200, r.status)
      local d = r.json
      assert.equals(api.base .. "$metadata#EntityDefinitions/$entity", d["@odata.context"])
      assert.equals("account", d.LogicalName)
      assert.equals("accounts", d.EntitySetName)
      assert.equals("accountid", d.PrimaryIdAttribute)
      assert.equals("name", d.PrimaryNameAttribute)
      assert.is_true(d.ChangeTrackingEnabled)
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", d.MetadataId)
      for _, t in ipairs { "contact", "systemuser", "businessunit", "organization", "solution" } do
        assert.equals(200, api.get("EntityDefinitions(LogicalName='" .. t .. "')").status, t)
      end
    end)

    it("finds a table by MetadataId and applies $select", function()
      local id = api.get("EntityDefinitions(LogicalName='contact')").json.MetadataId
      local r = api.get("EntityDefinitions(" .. id .. ")?$select=LogicalName,EntitySetName")
      assert.equals(200, r.status)
      assert.equals("contact", r.json.LogicalName)
      assert.equals("contacts", r.json.EntitySetName)
      assert.is_nil(r.json.PrimaryIdAttribute)
      assert.equals(api.base .. "$metadata#EntityDefinitions(LogicalName,EntitySetName)/$entity", r.json["@odata.context"])
    end)

    it("lists tables, filtered", function()
      local r = api.get("EntityDefinitions?$select=LogicalName&$filter=" .. api.enc("ChangeTrackingEnabled eq true"))
      assert.equals(200, r.status)
      local names = {}
      for _, d in ipairs(r.json.value) do names[d.LogicalName] = true end
      assert.is_true(names.account)
      assert.is_true(names.contact)
      assert.is_nil(names.organization)
      r = api.get("EntityDefinitions?$select=LogicalName&$filter=" .. api.enc("LogicalName eq 'contact'"))
      assert.equals(1, #r.json.value)
    end)

    it("refuses unknown properties and answers 404 for unknown tables", function()
      local r = api.get("EntityDefinitions(LogicalName='account')?$select=Bogus")
      assert.equals(400, r.status)
      assert.equals("0x80060888", r.json.error.code)
      r = api.get("EntityDefinitions(LogicalName='nosuch')")
      assert.equals(404, r.status)
      assert.truthy(r.json.error.code)
    end)

    it("serves Attributes as a path and through $expand", function()
      local r = api.get("EntityDefinitions(LogicalName='account')/Attributes")
      assert.equals(200, r.status)
      local by = {}
      for _, a in ipairs(r.json.value) do by[a.LogicalName] = a end
      for _, c in ipairs { "name", "accountnumber", "telephone1", "emailaddress1", "websiteurl", "numberofemployees",
        "revenue", "description", "address1_city", "address1_country", "primarycontactid", "createdon",
        "modifiedon", "versionnumber", "statecode", "statuscode", "ownerid" } do
        assert.truthy(by[c], c)
      end
      assert.equals("Lookup", by.primarycontactid.AttributeType)
      assert.same({ "contact" }, by.primarycontactid.Targets)
      assert.is_true(by.accountid.IsPrimaryId)
      r = api.get("EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes")
      assert.truthy(#r.json.Attributes > 10)
      assert.equals(200, api.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')").status)
    end)
  end)

  describe("alternate keys", function()
    it("lists keys as a path and through $expand=Keys", function()
      assert.equals(204, import(E.books).status)
      local r = api.get("EntityDefinitions(LogicalName='sample_book')/Keys")
      assert.equals(200, r.status)
      assert.equals(2, #r.json.value)
      assert.equals("sample_bookcode", r.json.value[1].LogicalName)
      assert.same({ "sample_bookcode" }, r.json.value[1].KeyAttributes)
      assert.same({ "sample_author", "sample_edition" }, r.json.value[2].KeyAttributes)
      r = api.get("EntityDefinitions(LogicalName='sample_book')?$select=LogicalName&$expand=Keys")
      assert.equals(2, #r.json.Keys)
      assert.equals(r.json.Keys[1].MetadataId,
        api.get("EntityDefinitions(LogicalName='sample_book')/Keys(" .. r.json.Keys[1].MetadataId .. ")").json.MetadataId)
    end)

    it("moves the index job Pending, InProgress, Active as time passes", function()
      import(E.books)
      assert.equals("Pending", key_status("sample_bookcode"))
      api.emu:advance(45)
      assert.equals("InProgress", key_status("sample_bookcode"))
      api.emu:advance(60)
      assert.equals("Active", key_status("sample_bookcode"))
    end)

    it("reaches Active on its own with the default delay", function()
      local quick = E.start {}
      assert.equals(204, quick.post("ImportSolution", E.import_body(E.books)).status)
      local status
      for _ = 1, 100 do
        status = quick.get("EntityDefinitions(LogicalName='sample_book')/Keys").json.value[1].EntityKeyIndexStatus
        if status == "Active" then break end
        os.execute("sleep 0.1")
      end
      quick.stop()
      assert.equals("Active", status)
    end)

    it("can be forced to Failed and reactivated (bound and unbound forms)", function()
      import(E.books)
      api.emu:advance(100)
      api.emu:fail_key("sample_book", "sample_bookcode")
      assert.equals("Failed", key_status("sample_bookcode"))
      assert.equals("Active", key_status("sample_titleedition"))
      local r = api.post("EntityDefinitions(LogicalName='sample_book')/Keys(LogicalName='sample_bookcode')/Microsoft.Dynamics.CRM.ReactivateEntityKey", {})
      assert.equals(200, r.status)
      assert.equals("Pending", r.json.EntityKeyIndexStatus)
      api.emu:advance(100)
      assert.equals("Active", key_status("sample_bookcode"))
      api.emu:fail_key("sample_book", "sample_bookcode")
      r = api.post("ReactivateEntityKey", { EntityLogicalName = "sample_book", EntityKeyLogicalName = "sample_bookcode" })
      assert.equals(200, r.status)
      assert.equals("Pending", key_status("sample_bookcode"))
      assert.has_error(function() api.emu:fail_key("sample_book", "nosuchkey") end)
    end)
  end)

  describe("solutions", function()
    it("imports a solution: tables, columns, keys, change tracking, and the solution row", function()
      local r = import(E.books)
      assert.equals(204, r.status, r.body)
      local d = api.get("EntityDefinitions(LogicalName='sample_book')").json
      assert.equals("sample_books", d.EntitySetName)
      assert.equals("sample_bookid", d.PrimaryIdAttribute)
      assert.equals("sample_name", d.PrimaryNameAttribute)
      assert.is_true(d.ChangeTrackingEnabled)
      r = api.get("solutions?$select=uniquename,version,ismanaged&$filter=" .. api.enc("uniquename eq 'ChangeTrackingSample'"))
      assert.equals(1, #r.json.value)
      assert.is_true(r.json.value[1].ismanaged)
      assert.equals("1.0.0.0", r.json.value[1].version)
      -- rows and change tracking work on the new table
      api.create("sample_books", { sample_name = "n", sample_bookcode = "c", sample_pages = 12 })
      assert.equals(200, api.get("sample_books", { headers = { Prefer = "odata.track-changes" } }).status)
      assert.equals(400, api.post("sample_books", { sample_pages = "twelve" }).status)
    end)

    it("imports through ImportSolutionAsync and reports the job in asyncoperations", function()
      local r = api.post("ImportSolutionAsync", E.import_body(E.books))
      assert.equals(200, r.status, r.body)
      assert.equals(api.base .. "$metadata#Microsoft.Dynamics.CRM.ImportSolutionAsyncResponse", r.json["@odata.context"])
      local job = api.get("asyncoperations(" .. r.json.AsyncOperationId .. ")?$select=statecode,statuscode,message").json
      assert.equals(3, job.statecode)
      assert.equals(30, job.statuscode)
      assert.equals(200, api.get("EntityDefinitions(LogicalName='sample_book')").status)
      local bad = api.post("ImportSolutionAsync", { CustomizationFile = E.base64("not a zip") })
      assert.equals(200, bad.status)
      job = api.get("asyncoperations(" .. bad.json.AsyncOperationId .. ")").json
      assert.equals(31, job.statuscode)
      assert.matches("invalid", job.message)
    end)

    it("keeps the data when the same solution is imported again", function()
      import(E.books)
      api.create("sample_books", { sample_name = "kept", sample_bookcode = "K" })
      assert.equals(204, import(E.books).status)
      assert.equals("kept", api.get("sample_books(sample_bookcode='K')").json.sample_name)
      assert.equals(1, #api.get("solutions?$filter=" .. api.enc("uniquename eq 'ChangeTrackingSample'")).json.value)
    end)

    it("refuses a malformed zip or XML with a clear error and creates nothing", function()
      local r = api.post("ImportSolution", { CustomizationFile = E.base64("this is not a zip") })
      assert.equals(400, r.status)
      assert.truthy(#r.json.error.message > 10)
      local files = E.solution_files(E.books)
      files[3].data = files[3].data:gsub("</Entities>", "</Entitiez>")
      r = api.post("ImportSolution", { CustomizationFile = E.base64(E.zip(files)) })
      assert.equals(400, r.status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_book')").status)
      r = api.post("ImportSolution", {})
      assert.equals(400, r.status)
      r = api.post("ImportSolution", { CustomizationFile = "@@@" })
      assert.equals(400, r.status)
      assert.equals(0, #api.get("solutions?$filter=" .. api.enc("uniquename eq 'ChangeTrackingSample'")).json.value)
    end)

    it("creates all tables of a solution or none", function()
      local clash = {
        unique = "Clash",
        tables = {
          { name = "sample_fresh", set = "sample_freshes", columns = { { name = "sample_name" } } },
          { name = "account", set = "accounts", columns = { { name = "sample_tag" }, { name = "name", type = "int" } } },
        },
      }
      local r = import(clash)
      assert.equals(400, r.status)
      assert.matches("column 'name' of table 'account' is of type String; the solution defines it as Integer", r.json.error.message)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_fresh')").status)
      assert.equals(0, #api.get("solutions?$filter=" .. api.enc("uniquename eq 'Clash'")).json.value)
    end)

    it("uninstalls a managed solution with its tables and rows", function()
      import(E.books)
      api.create("sample_books", { sample_name = "n", sample_bookcode = "c" })
      local sid = api.get("solutions?$filter=" .. api.enc("uniquename eq 'ChangeTrackingSample'")).json.value[1].solutionid
      assert.equals(204, api.delete("solutions(" .. sid .. ")").status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_book')").status)
      assert.equals(404, api.get("sample_books").status)
      assert.equals(0, #api.get("solutions?$filter=" .. api.enc("uniquename eq 'ChangeTrackingSample'")).json.value)
      -- and it can be installed again, empty
      assert.equals(204, import(E.books).status)
      assert.equals("0", api.get("sample_books/$count").body)
    end)

    it("leaves the tables of an unmanaged solution when its row is deleted", function()
      local o = { unique = "Loose", managed = false, tables = { { name = "sample_loose", set = "sample_looses", columns = { { name = "sample_name" } } } } }
      assert.equals(204, import(o).status)
      local sid = api.get("solutions?$filter=" .. api.enc("uniquename eq 'Loose'")).json.value[1].solutionid
      assert.equals(204, api.delete("solutions(" .. sid .. ")").status)
      assert.equals(200, api.get("EntityDefinitions(LogicalName='sample_loose')").status)
    end)
  end)
end)
