-- Table definitions over the Web API as Microsoft documents them ("Query table definitions
-- using the Web API", "Create and update table definitions", "… column definitions",
-- "Define alternate keys using the Web API", "Create and update table relationships"), and
-- the rule that no request is ever answered as another method or with an option ignored.
local E = require "emulator"
local cjson = require "cjson"

local function label(text)
  return {
    ["@odata.type"] = "Microsoft.Dynamics.CRM.Label",
    LocalizedLabels = { { ["@odata.type"] = "Microsoft.Dynamics.CRM.LocalizedLabel", Label = text, LanguageCode = 1033 } },
  }
end

-- The documentation's example table, with change tracking on.
local function bank_account(extra)
  local t = {
    ["@odata.type"] = "Microsoft.Dynamics.CRM.EntityMetadata",
    SchemaName = "new_BankAccount",
    DisplayName = label("Bank Account"),
    DisplayCollectionName = label("Bank Accounts"),
    Description = label("An entity to store information about customer bank accounts"),
    OwnershipType = "UserOwned",
    IsActivity = false,
    HasActivities = false,
    HasNotes = false,
    ChangeTrackingEnabled = true,
    Attributes = { {
      ["@odata.type"] = "Microsoft.Dynamics.CRM.StringAttributeMetadata",
      AttributeType = "String",
      AttributeTypeName = { Value = "StringType" },
      SchemaName = "new_AccountName",
      DisplayName = label("Account Name"),
      Description = label("Type the name of the bank account"),
      IsPrimaryName = true,
      RequiredLevel = { Value = "None", CanBeChanged = true, ManagedPropertyLogicalName = "canmodifyrequirementlevelsettings" },
      FormatName = { Value = "Text" },
      MaxLength = 100,
    } },
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function string_column(schema, len)
  return {
    ["@odata.type"] = "Microsoft.Dynamics.CRM.StringAttributeMetadata",
    SchemaName = schema,
    DisplayName = label(schema),
    RequiredLevel = { Value = "None" },
    MaxLength = len or 100,
    FormatName = { Value = "Text" },
  }
end

local function names(list, field)
  local out = {}
  for _, v in ipairs(list) do out[#out + 1] = v[field or "LogicalName"] end
  table.sort(out)
  return out
end

describe("emulator table definitions", function()
  local api

  before_each(function() api = E.start { key_delay = 90 } end)
  after_each(function() api.stop() end)

  local function ok(r, status)
    assert.equals(status or 204, r.status, r.body)
    return r
  end

  describe("never a silent answer", function()
    local base_routes = {
      "", "WhoAmI", "accounts", "accounts/$count", "EntityDefinitions",
      "EntityDefinitions(LogicalName='account')",
      "EntityDefinitions(LogicalName='account')/Attributes",
      "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')",
      "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
      "EntityDefinitions(LogicalName='account')/Keys",
      "EntityDefinitions(LogicalName='account')/ManyToOneRelationships",
      "EntityDefinitions(LogicalName='account')/OneToManyRelationships",
      "EntityDefinitions(LogicalName='account')/ManyToManyRelationships",
      "RelationshipDefinitions", "GlobalOptionSetDefinitions", "solutions",
      "ImportSolution", "ImportSolutionAsync", "ReactivateEntityKey", "$metadata", "$batch",
      "BulkDelete", "ManagedPropertyDefinitions",
    }

    it("walks every route with every method: a non-GET never gets a GET's answer", function()
      local acct = api.create("accounts", { name = "walk" })
      local routes = {}
      for _, r in ipairs(base_routes) do routes[#routes + 1] = r end
      routes[#routes + 1] = "accounts(" .. acct .. ")"
      routes[#routes + 1] = "accounts(" .. acct .. ")/name"
      routes[#routes + 1] = "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')/Microsoft.Dynamics.CRM.StringAttributeMetadata"
      routes[#routes + 1] = "RelationshipDefinitions(SchemaName='account_primary_contact')"
      routes[#routes + 1] = "asyncoperations"
      routes[#routes + 1] = api.url .. "/common/oauth2/v2.0/token"
      routes[#routes + 1] = api.url .. "/common/oauth2/v2.0/devicecode"
      for _, path in ipairs(routes) do
        local get = api.get(path)
        for _, m in ipairs { "POST", "PATCH", "PUT", "DELETE" } do
          local r = api.call(m, path, { body = "{}" })
          local where = m .. " " .. path .. " -> " .. r.status .. " " .. r.body
          assert.is_true(r.status ~= 200 or r.body ~= get.body, where)
          if get.status == 200 and type(get.json) == "table" and get.json.value then
            -- a collection answered to a write is the silent answer this guards against
            assert.is_false(r.status == 200 and r.body:find('"value":%[') ~= nil, where)
          end
          if r.status ~= 204 then assert.is_table(r.json, where) end
          if r.status == 405 then
            assert.equals("0x80060888", r.json.error.code, where)
            assert.truthy(r.headers["allow"] or r.json.error.message:find("not allowed"), where)
          elseif r.status == 501 then
            assert.truthy(r.json.error.message:find("not served", 1, true), where)
          else
            assert.truthy(({ [200] = 1, [201] = 1, [204] = 1, [400] = 1, [404] = 1, [412] = 1 })[r.status], where)
          end
        end
      end
    end)

    it("refuses writes on Keys and Attributes that it does not take, and serves those it does", function()
      local attrs = "EntityDefinitions(LogicalName='account')/Attributes"
      local keys = "EntityDefinitions(LogicalName='account')/Keys"
      for _, m in ipairs { "PATCH", "PUT", "DELETE" } do
        for _, p in ipairs { attrs, keys } do
          local r = api.call(m, p, { body = "{}" })
          assert.equals(405, r.status, m .. " " .. p .. ": " .. r.body)
        end
      end
      -- PATCH on a single definition is not how Dataverse updates them (PUT is)
      local r = api.call("PATCH", attrs .. "(LogicalName='name')", { body = { MaxLength = 10 } })
      assert.equals(405, r.status)
      -- a POST without a type is refused, not answered with the collection
      r = api.post(attrs, {})
      assert.equals(400, r.status)
      assert.is_nil(r.json.value)
      -- the primary key and system columns cannot be deleted
      for _, c in ipairs { "accountid", "name", "createdon", "ownerid", "telephone1" } do
        r = api.delete(attrs .. "(LogicalName='" .. c .. "')")
        assert.equals(400, r.status, c)
      end
      assert.equals(200, api.get(attrs .. "(LogicalName='accountid')").status)
    end)

    it("applies $filter and $select on Attributes (and every definition collection)", function()
      local r = ok(api.get("EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,AttributeType&$filter="
        .. api.enc("LogicalName eq 'telephone1'")), 200)
      assert.equals(1, #r.json.value)
      assert.equals("telephone1", r.json.value[1].LogicalName)
      assert.equals("String", r.json.value[1].AttributeType)
      assert.is_nil(r.json.value[1].DisplayName)
      r = ok(api.get("EntityDefinitions(LogicalName='account')/Keys?$filter=" .. api.enc("LogicalName eq 'nosuch'")), 200)
      assert.same({}, r.json.value)
      r = ok(api.get("RelationshipDefinitions?$select=SchemaName&$filter=" .. api.enc("ReferencingEntity eq 'contact'")), 200)
      local got = names(r.json.value, "SchemaName")
      assert.same({ "business_unit_contacts", "contact_customer_accounts", "contact_customer_contacts",
        "lk_contact_createdby", "lk_contact_modifiedby", "owner_contacts", "user_contacts" }, got)
      r = ok(api.get("EntityDefinitions(LogicalName='account')/OneToManyRelationships?$select=ReferencingEntity&$filter="
        .. api.enc("ReferencingAttribute eq 'parentcustomerid'")), 200)
      assert.equals(1, #r.json.value)
      -- an unknown property in $filter or $select is an error, not an empty filter
      assert.equals(400, api.get("EntityDefinitions(LogicalName='account')/Attributes?$filter=" .. api.enc("Nope eq 1")).status)
      assert.equals(400, api.get("EntityDefinitions(LogicalName='account')/Attributes?$select=MaxLength").status)
      -- options the definitions do not take are refused, not ignored
      r = api.get("EntityDefinitions?$top=1")
      assert.equals(501, r.status)
      assert.matches("not served", r.json.error.message)
    end)

    it("refuses unknown query options instead of returning every row", function()
      api.create("accounts", { name = "one" })
      api.create("accounts", { name = "two" })
      local r = api.get("accounts?sql=" .. api.enc("SELECT name FROM account WHERE name = 'one'"))
      assert.equals(501, r.status)
      assert.matches("not served: the sql query option", r.json.error.message)
      r = api.get("accounts?$foo=1")
      assert.equals(400, r.status)
      assert.equals("0x80060888", r.json.error.code)
      assert.equals("The query parameter $foo is not supported.", r.json.error.message)
      r = api.get("accounts?foo=1")
      assert.equals(400, r.status)
      -- $search is an option Dataverse itself refuses on a table: its 400, not a 501
      r = api.get("accounts?$search=one")
      assert.equals(400, r.status)
      assert.equals("0x80060888", r.json.error.code)
      -- parameter aliases are part of the protocol
      assert.equals(200, api.get("accounts?$select=name&@p1=1").status)
    end)

    it("answers unserved documented operations and query functions with 501 naming them", function()
      local r = api.get("accounts?$filter=" .. api.enc("Microsoft.Dynamics.CRM.LastXHours(PropertyName='createdon',PropertyValue=1)"))
      assert.equals(501, r.status)
      assert.matches("Microsoft.Dynamics.CRM.LastXHours", r.json.error.message, 1, true)
      r = api.get("accounts?$filter=" .. api.enc("contact_customer_accounts/any(c:c/firstname eq 'x')"))
      assert.equals(501, r.status)
      for _, op in ipairs { "BulkDelete", "ExportSolution", "PublishAllXml", "ManagedPropertyDefinitions" } do
        r = api.post(op, {})
        assert.equals(501, r.status, op)
        assert.matches(op, r.json.error.message, 1, true)
      end
      -- bound to a row: not served either
      local acct = api.create("accounts", { name = "bound" })
      r = api.post("accounts(" .. acct .. ")/Microsoft.Dynamics.CRM.ExecuteWorkflow", {})
      assert.equals(501, r.status)
      -- query functions on definitions are the query compiler's, served or named
      r = ok(api.get("EntityDefinitions?$select=LogicalName&$filter="
        .. api.enc("Microsoft.Dynamics.CRM.In(PropertyName='LogicalName',PropertyValues=['account','contact'])")), 200)
      assert.same({ "account", "contact" }, names(r.json.value))
      r = api.get("EntityDefinitions?$select=LogicalName&$filter=" .. api.enc("Microsoft.Dynamics.CRM.Today(PropertyName='x')"))
      assert.equals(501, r.status)
      -- an unknown segment stays a 404
      assert.equals(404, api.get("NoSuchThing").status)
    end)
  end)

  describe("reading definitions as clients do", function()
    it("casts Attributes to a derived type with its typed properties and option sets", function()
      local r = ok(api.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        .. "?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)"), 200)
      assert.matches("Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata%(LogicalName,OptionSet%(Options%),GlobalOptionSet%(Options%)%)$",
        r.json["@odata.context"])
      local by = {}
      for _, a in ipairs(r.json.value) do by[a.LogicalName] = a end
      assert.same({ "accountcategorycode", "industrycode" }, names(r.json.value))
      local opts = by.accountcategorycode.OptionSet.Options
      assert.equals(1, opts[1].Value)
      assert.equals("Preferred Customer", opts[1].Label.UserLocalizedLabel.Label)
      assert.is_nil(by.accountcategorycode.OptionSet.Name) -- $select inside the expand
      assert.equals(cjson.null, by.industrycode.GlobalOptionSet)
      -- state and status option sets
      r = ok(api.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata"
        .. "?$select=LogicalName&$expand=OptionSet"), 200)
      assert.equals("statuscode", r.json.value[1].LogicalName)
      assert.equals(1, r.json.value[1].OptionSet.Options[1].State + 1)
      -- the option set as a resource of its own
      local attr = "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='accountcategorycode')"
        .. "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
      r = ok(api.get(attr .. "/OptionSet?$select=Options"), 200)
      assert.equals("Standard", r.json.Options[2].Label.UserLocalizedLabel.Label)
      assert.matches("/OptionSet%(Options%)/%$entity$", r.json["@odata.context"])
      assert.equals(204, api.get(attr .. "/GlobalOptionSet").status)
      assert.equals(405, api.call("PUT", attr .. "/OptionSet", { body = {} }).status)
      r = ok(api.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata"
        .. "?$select=LogicalName,MaxLength,Format&$filter=" .. api.enc("LogicalName eq 'emailaddress1'")), 200)
      assert.equals("Email", r.json.value[1].Format)
      assert.is_number(r.json.value[1].MaxLength)
      r = ok(api.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata"
        .. "?$select=LogicalName,Targets"), 200)
      local lk = {}
      for _, a in ipairs(r.json.value) do lk[a.LogicalName] = a.Targets end
      assert.same({ "contact" }, lk.primarycontactid)
      assert.same({ "systemuser" }, lk.ownerid)
      r = ok(api.get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='parentcustomerid')"
        .. "/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=Targets,AttributeType"), 200)
      assert.same({ "account", "contact" }, r.json.Targets)
      assert.equals("Customer", r.json.AttributeType)
      for _, cast in ipairs { "Money", "DateTime", "Boolean", "State", "Integer" } do
        r = api.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM." .. cast .. "AttributeMetadata")
        assert.equals(200, r.status, cast)
        for _, a in ipairs(r.json.value) do
          assert.equals("#Microsoft.Dynamics.CRM." .. cast .. "AttributeMetadata", a["@odata.type"])
        end
      end
      r = ok(api.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.MoneyAttributeMetadata?$select=LogicalName,Precision"), 200)
      assert.is_number(r.json.value[1].Precision)
      r = ok(api.get("EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata?$select=LogicalName,Format&$filter="
        .. api.enc("LogicalName eq 'birthdate'")), 200)
      assert.equals("DateOnly", r.json.value[1].Format)
    end)

    it("filters and selects EntityDefinitions on the standard EntityMetadata properties", function()
      local r = ok(api.get("EntityDefinitions?$select=LogicalName,ObjectTypeCode,IsPrivate,TableType,DisplayName&$filter="
        .. api.enc("IsPrivate eq false and IsIntersect eq false and IsActivity eq false and IsCustomizable/Value eq true "
          .. "and OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned' and IsValidForAdvancedFind eq true")), 200)
      local by = {}
      for _, d in ipairs(r.json.value) do by[d.LogicalName] = d end
      assert.equals(1, by.account.ObjectTypeCode)
      assert.equals(2, by.contact.ObjectTypeCode)
      assert.equals("Standard", by.account.TableType)
      assert.is_false(by.account.IsPrivate)
      assert.is_nil(by.systemuser) -- BusinessOwned
      assert.is_table(by.account.DisplayName.LocalizedLabels)
      r = ok(api.get("EntityDefinitions?$select=LogicalName&$filter=" .. api.enc("ObjectTypeCode eq 2")), 200)
      assert.same({ "contact" }, names(r.json.value))
    end)

    it("expands with nested options", function()
      local r = ok(api.get("EntityDefinitions(LogicalName='account')?$select=LogicalName"
        .. "&$expand=Keys($select=LogicalName,EntityKeyIndexStatus),Attributes($filter="
        .. api.enc("AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Lookup'") .. ";$select=LogicalName)"), 200)
      assert.equals(api.base .. "$metadata#EntityDefinitions(LogicalName,Keys(LogicalName,EntityKeyIndexStatus),Attributes(LogicalName))/$entity",
        r.json["@odata.context"])
      assert.same({}, r.json.Keys)
      assert.same({ "createdby", "modifiedby", "owningbusinessunit", "owninguser", "parentaccountid", "primarycontactid" },
        names(r.json.Attributes))
      assert.is_nil(r.json.Attributes[1].AttributeType)
      r = ok(api.get("EntityDefinitions?$select=LogicalName&$filter=" .. api.enc("LogicalName eq 'contact'")
        .. "&$expand=ManyToOneRelationships($select=SchemaName,ReferencedEntity;$filter="
        .. api.enc("ReferencingAttribute eq 'parentcustomerid'") .. ")"), 200)
      assert.same({ "contact_customer_accounts", "contact_customer_contacts" },
        names(r.json.value[1].ManyToOneRelationships, "SchemaName"))
      assert.equals(400, api.get("EntityDefinitions?$expand=Nope").status)
      assert.equals(501, api.get("EntityDefinitions?$expand=Keys($top=1)").status)
    end)

    it("serves RelationshipDefinitions, the relationship collections of a table and GlobalOptionSetDefinitions", function()
      local r = ok(api.get("RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata?$select=SchemaName,ReferencedEntity,ReferencingEntity,ReferencingAttribute"), 200)
      local rel
      for _, v in ipairs(r.json.value) do if v.SchemaName == "account_primary_contact" then rel = v end end
      assert.equals("contact", rel.ReferencedEntity)
      assert.equals("account", rel.ReferencingEntity)
      assert.equals("primarycontactid", rel.ReferencingAttribute)
      local one = ok(api.get("RelationshipDefinitions(SchemaName='account_primary_contact')"), 200)
      assert.equals("OneToManyRelationship", one.json.RelationshipType)
      assert.equals("contactid", one.json.ReferencedAttribute)
      assert.equals(200, api.get("RelationshipDefinitions(" .. one.json.MetadataId .. ")").status)
      r = ok(api.get("RelationshipDefinitions/Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata"), 200)
      assert.same({}, r.json.value)
      r = ok(api.get("EntityDefinitions(LogicalName='contact')/OneToManyRelationships?$select=SchemaName"), 200)
      local s = names(r.json.value, "SchemaName")
      assert.truthy(table.concat(s, " "):find("account_primary_contact", 1, true))
      r = ok(api.get("GlobalOptionSetDefinitions?$select=Name"), 200)
      assert.same({}, r.json.value)
      assert.equals(404, api.get("GlobalOptionSetDefinitions(Name='nosuch')").status)
      assert.equals(400, api.get("GlobalOptionSetDefinitions?$select=Nope").status)
      assert.equals(api.base .. "$metadata#GlobalOptionSetDefinitions(Name)", r.json["@odata.context"])
    end)

    it("names a failed key's index job in its AsyncJob", function()
      assert.equals(204, api.post("ImportSolution", E.import_body(E.books)).status)
      local key = "EntityDefinitions(LogicalName='sample_book')/Keys(LogicalName='sample_bookcode')"
      assert.equals(cjson.null, ok(api.get(key .. "?$select=LogicalName&$expand=AsyncJob"), 200).json.AsyncJob)
      assert.equals(204, api.get(key .. "/AsyncJob").status)
      api.emu:fail_key("sample_book", "sample_bookcode")
      local k = ok(api.get(key .. "?$select=EntityKeyIndexStatus&$expand=AsyncJob"), 200).json
      assert.equals("Failed", k.EntityKeyIndexStatus)
      assert.equals(3, k.AsyncJob.statecode)
      assert.equals(31, k.AsyncJob.statuscode)
      assert.is_string(k.AsyncJob.message)
      local job = ok(api.get("asyncoperations(" .. k.AsyncJob.asyncoperationid .. ")"), 200).json
      assert.equals(31, job.statuscode)
      local list = ok(api.get("EntityDefinitions(LogicalName='sample_book')?$expand=Keys($select=LogicalName;$expand=AsyncJob)"), 200).json
      assert.equals(k.AsyncJob.asyncoperationid, list.Keys[1].AsyncJob.asyncoperationid)
    end)

    it("describes the tables of a real export: required levels, lookup targets, keys, relationships", function()
      local f = assert(io.open("../shared/fixtures/solutions/UpsertSample_1_0_0_0_managed.zip", "rb"))
      local zip = f:read("a")
      f:close()
      local body = E.import_body { unique = "x" }
      body.CustomizationFile = E.base64(zip)
      assert.equals(204, api.post("ImportSolution", body).status)
      local r = ok(api.get("EntityDefinitions(LogicalName='sample_product')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata"
        .. "?$select=LogicalName,Targets,RequiredLevel"), 200)
      local by = {}
      for _, a in ipairs(r.json.value) do by[a.LogicalName] = a end
      assert.same({ "systemuser" }, by.createdonbehalfby.Targets)
      assert.same({ "systemuser" }, by.createdby.Targets)
      assert.same({ "businessunit" }, by.owningbusinessunit.Targets)
      r = ok(api.get("EntityDefinitions(LogicalName='sample_product')?$select=IsCustomEntity,IsManaged"
        .. "&$expand=Keys($select=KeyAttributes),Attributes($select=LogicalName,RequiredLevel;$filter="
        .. api.enc("RequiredLevel/Value eq 'SystemRequired'") .. ")"), 200)
      assert.is_true(r.json.IsCustomEntity)
      assert.is_true(r.json.IsManaged)
      assert.same({ "sample_productcode" }, r.json.Keys[1].KeyAttributes)
      local req = names(r.json.Attributes)
      assert.truthy(table.concat(req, " "):find("sample_productid", 1, true))
      r = ok(api.get("EntityDefinitions(LogicalName='sample_product')/ManyToOneRelationships?$select=SchemaName,ReferencedEntity"), 200)
      local rel = {}
      for _, v in ipairs(r.json.value) do rel[v.ReferencingAttribute or v.SchemaName] = v end
      r = ok(api.get("EntityDefinitions(LogicalName='sample_product')/ManyToOneRelationships"
        .. "?$select=SchemaName,ReferencedEntity,ReferencingAttribute"), 200)
      for _, v in ipairs(r.json.value) do rel[v.ReferencingAttribute] = v end
      assert.equals("systemuser", rel.createdby.ReferencedEntity)
      assert.equals("businessunit", rel.owningbusinessunit.ReferencedEntity)
      assert.matches("^%w", rel.owningbusinessunit.SchemaName)
    end)

    it("reads SystemRequired where the solution says so", function()
      local files = E.solution_files { unique = "RequiredLevels", tables = { { name = "sample_book", set = "sample_books",
        columns = { { name = "sample_name" }, { name = "sample_code" }, { name = "sample_note" } } } } }
      for _, f in ipairs(files) do
        if f.name == "customizations.xml" then
          f.data = f.data:gsub("(<LogicalName>sample_code</LogicalName>%s*<RequiredLevel>)none", "%1systemrequired")
          f.data = f.data:gsub("(<LogicalName>sample_note</LogicalName>%s*<RequiredLevel>)none", "%1applicationrequired")
        end
      end
      local body = E.import_body { unique = "x" }
      body.CustomizationFile = E.base64(E.zip(files))
      local r = api.post("ImportSolution", body)
      assert.equals(204, r.status, r.body)
      r = ok(api.get("EntityDefinitions(LogicalName='sample_book')/Attributes?$select=LogicalName,RequiredLevel"), 200)
      local lvl = {}
      for _, a in ipairs(r.json.value) do lvl[a.LogicalName] = a.RequiredLevel.Value end
      assert.equals("SystemRequired", lvl.sample_code)
      assert.equals("SystemRequired", lvl.sample_bookid)
      assert.equals("None", lvl.sample_name)
      assert.equals("ApplicationRequired", lvl.sample_note)
    end)
  end)

  describe("writing definitions", function()
    local function create_table(extra, headers)
      return api.post("EntityDefinitions", bank_account(extra), { headers = headers })
    end

    -- the index job finishes when the emulator's clock has moved past key_delay
    local function wait_key(path)
      api.emu:advance(100)
      return api.get(path).json.EntityKeyIndexStatus
    end

    it("creates a table as documented, and its rows work everywhere rows work", function()
      local r = ok(create_table())
      local id = r.headers["odata-entityid"]:match("EntityDefinitions%(([%x%-]+)%)$")
      assert.truthy(id, r.headers["odata-entityid"])
      local d = ok(api.get("EntityDefinitions(" .. id .. ")"), 200).json
      assert.equals("new_bankaccount", d.LogicalName)
      assert.equals("new_BankAccount", d.SchemaName)
      assert.equals("new_bankaccounts", d.EntitySetName)
      assert.equals("new_bankaccountid", d.PrimaryIdAttribute)
      assert.equals("new_accountname", d.PrimaryNameAttribute)
      assert.is_true(d.IsCustomEntity)
      assert.is_true(d.ChangeTrackingEnabled)
      assert.equals("UserOwned", d.OwnershipType)
      assert.equals("Bank Accounts", d.DisplayCollectionName.UserLocalizedLabel.Label)
      assert.is_true(d.ObjectTypeCode >= 10000)
      assert.equals("An entity to store information about customer bank accounts", d.Description.LocalizedLabels[1].Label)
      local pn = ok(api.get("EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_accountname')"
        .. "/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=MaxLength,IsPrimaryName,SchemaName"), 200).json
      assert.equals(100, pn.MaxLength)
      assert.is_true(pn.IsPrimaryName)
      assert.equals("new_AccountName", pn.SchemaName)
      -- the same table again is refused
      assert.equals(400, create_table().status)
      -- rows: create, read, query, update, delete, change tracking
      local row = api.create("new_bankaccounts", { new_accountname = "Savings" })
      local got = ok(api.get("new_bankaccounts(" .. row .. ")?$select=new_accountname"), 200).json
      assert.equals("Savings", got.new_accountname)
      ok(api.patch("new_bankaccounts(" .. row .. ")", { new_accountname = "Checking" }))
      local ct = ok(api.get("new_bankaccounts?$select=new_accountname", { headers = { Prefer = "odata.track-changes" } }), 200).json
      assert.equals(1, #ct.value)
      assert.equals("Checking", ct.value[1].new_accountname)
      assert.truthy(ct["@odata.deltaLink"])
      ok(api.delete("new_bankaccounts(" .. row .. ")"))
      local delta = ok(api.get(ct["@odata.deltaLink"]), 200).json
      assert.equals(1, #delta.value)
      assert.equals("deleted", delta.value[1].reason)
    end)

    it("validates the table it is asked to create", function()
      local t = bank_account()
      t.Attributes = {}
      local r = api.post("EntityDefinitions", t)
      assert.equals(400, r.status)
      assert.matches("primary name", r.json.error.message)
      r = api.post("EntityDefinitions", bank_account { SchemaName = "NoPrefix" })
      assert.equals(400, r.status)
      r = api.post("EntityDefinitions", bank_account { OwnershipType = "BusinessOwned" })
      assert.equals(400, r.status)
      r = api.post("EntityDefinitions", bank_account { IsActivity = true })
      assert.equals(501, r.status)
      r = api.post("EntityDefinitions", "not json")
      assert.equals(400, r.status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='new_bankaccount')").status)
    end)

    it("adds columns of each supported type, and deletes them as Dataverse allows", function()
      ok(create_table())
      local attrs = "EntityDefinitions(LogicalName='new_bankaccount')/Attributes"
      local cols = {
        string_column("new_Code", 20),
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.MemoAttributeMetadata", SchemaName = "new_Notes", MaxLength = 500 },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.IntegerAttributeMetadata", SchemaName = "new_Count", MinValue = 0, MaxValue = 100 },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.DecimalAttributeMetadata", SchemaName = "new_Rate", Precision = 3 },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.MoneyAttributeMetadata", SchemaName = "new_Balance", Precision = 2 },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.BooleanAttributeMetadata", SchemaName = "new_Active",
          OptionSet = { TrueOption = { Value = 1, Label = label("Open") }, FalseOption = { Value = 0, Label = label("Closed") } } },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata", SchemaName = "new_Opened", Format = "DateOnly",
          DateTimeBehavior = { Value = "DateOnly" } },
        { ["@odata.type"] = "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", SchemaName = "new_Kind",
          OptionSet = { ["@odata.type"] = "Microsoft.Dynamics.CRM.OptionSetMetadata", IsGlobal = false, OptionSetType = "Picklist",
            Options = { { Value = 727000000, Label = label("Checking") }, { Label = label("Savings") } } } },
      }
      for _, c in ipairs(cols) do
        local r = api.post(attrs, c)
        assert.equals(204, r.status, c.SchemaName .. ": " .. r.body)
        assert.matches("/Attributes%([%x%-]+%)$", r.headers["odata-entityid"])
      end
      local r = ok(api.get(attrs .. "?$select=LogicalName,AttributeType&$filter=" .. api.enc("IsCustomAttribute eq true")), 200)
      local ty = {}
      for _, a in ipairs(r.json.value) do ty[a.LogicalName] = a.AttributeType end
      assert.same({ new_accountname = "String", new_code = "String", new_notes = "Memo", new_count = "Integer",
        new_rate = "Decimal", new_balance = "Money", new_active = "Boolean", new_opened = "DateTime", new_kind = "Picklist" }, ty)
      r = ok(api.get(attrs .. "(LogicalName='new_rate')/Microsoft.Dynamics.CRM.DecimalAttributeMetadata?$select=Precision"), 200)
      assert.equals(3, r.json.Precision)
      r = ok(api.get(attrs .. "(LogicalName='new_opened')/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata?$select=Format"), 200)
      assert.equals("DateOnly", r.json.Format)
      r = ok(api.get(attrs .. "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options)"), 200)
      local opts = r.json.value[1].OptionSet.Options
      assert.equals(727000000, opts[1].Value)
      assert.equals("Savings", opts[2].Label.UserLocalizedLabel.Label)
      assert.is_number(opts[2].Value)
      r = ok(api.get(attrs .. "(LogicalName='new_active')/Microsoft.Dynamics.CRM.BooleanAttributeMetadata?$expand=OptionSet"), 200)
      assert.equals("Open", r.json.OptionSet.TrueOption.Label.UserLocalizedLabel.Label)
      -- duplicates, bad types, lookups without a relationship, unserved types
      r = api.post(attrs, string_column("new_Code"))
      assert.equals(400, r.status)
      assert.equals("0x80047013", r.json.error.code)
      assert.equals(400, api.post(attrs, { ["@odata.type"] = "Microsoft.Dynamics.CRM.LookupAttributeMetadata", SchemaName = "new_X" }).status)
      r = api.post(attrs, { ["@odata.type"] = "Microsoft.Dynamics.CRM.ImageAttributeMetadata", SchemaName = "new_Pic" })
      assert.equals(501, r.status)
      assert.equals(400, api.post(attrs, string_column("new_TooLong", 5000)).status)
      -- rows carry the new columns
      local row = api.create("new_bankaccounts", { new_accountname = "A", new_code = "C1", new_count = 3, new_kind = 727000000, new_active = true })
      local got = ok(api.get("new_bankaccounts(" .. row .. ")?$select=new_code,new_count,new_kind,new_active"), 200).json
      assert.equals("C1", got.new_code)
      assert.equals(3, got.new_count)
      -- delete a custom column: its values go too; system and primary columns stay
      ok(api.delete(attrs .. "(LogicalName='new_code')"))
      assert.equals(404, api.get(attrs .. "(LogicalName='new_code')").status)
      assert.equals(400, api.get("new_bankaccounts(" .. row .. ")?$select=new_code").status)
      assert.equals(400, api.delete(attrs .. "(LogicalName='new_accountname')").status)
      assert.equals(400, api.delete(attrs .. "(LogicalName='new_bankaccountid')").status)
      assert.equals(400, api.delete(attrs .. "(LogicalName='createdon')").status)
    end)

    it("creates alternate keys that index asynchronously, fail on duplicates and name their job", function()
      ok(create_table())
      local attrs = "EntityDefinitions(LogicalName='new_bankaccount')/Attributes"
      ok(api.post(attrs, string_column("new_Code", 20)))
      ok(api.post(attrs, string_column("new_Branch", 20)))
      api.create("new_bankaccounts", { new_accountname = "A", new_code = "C1", new_branch = "B" })
      api.create("new_bankaccounts", { new_accountname = "B", new_code = "C2", new_branch = "B" })
      local keys = "EntityDefinitions(LogicalName='new_bankaccount')/Keys"
      local r = ok(api.post(keys, { SchemaName = "new_codekey", DisplayName = label("Code"), KeyAttributes = { "new_code" } }))
      assert.matches("/Keys%([%x%-]+%)$", r.headers["odata-entityid"])
      local status = ok(api.get(keys .. "(LogicalName='new_codekey')"), 200).json.EntityKeyIndexStatus
      assert.equals("Pending", status)
      assert.equals("Active", wait_key(keys .. "(LogicalName='new_codekey')"))
      -- the key works: upsert by it, and duplicates are refused
      ok(api.patch("new_bankaccounts(new_code='C3')", { new_accountname = "C" }))
      assert.equals(200, api.get("new_bankaccounts(new_code='C3')").status)
      assert.equals(404, api.patch("new_bankaccounts(new_code='C4')", { new_accountname = "D" }, { headers = { ["If-Match"] = "*" } }).status)
      -- duplicate values in the rows already there: the index fails, and its job says why
      ok(api.post(keys, { SchemaName = "new_branchkey", KeyAttributes = { "new_branch" } }))
      local k = ok(api.get(keys .. "(LogicalName='new_branchkey')?$select=EntityKeyIndexStatus&$expand=AsyncJob"), 200).json
      assert.equals("Failed", k.EntityKeyIndexStatus)
      assert.equals(31, k.AsyncJob.statuscode)
      assert.matches("duplicate", k.AsyncJob.message)
      local job = ok(api.get(keys .. "(LogicalName='new_branchkey')/AsyncJob"), 200).json
      assert.equals(k.AsyncJob.asyncoperationid, job.asyncoperationid)
      assert.equals(200, api.get("asyncoperations(" .. job.asyncoperationid .. ")").status)
      -- an active key has no failed job
      assert.equals(cjson.null, ok(api.get(keys .. "(LogicalName='new_codekey')?$expand=AsyncJob"), 200).json.AsyncJob)
      -- refusals: unknown column, unsuitable type, same name
      assert.equals(400, api.post(keys, { SchemaName = "new_k2", KeyAttributes = { "nosuch" } }).status)
      assert.equals(400, api.post(keys, { SchemaName = "new_codekey", KeyAttributes = { "new_code" } }).status)
      -- a column in a key cannot be deleted before the key
      local refused = api.delete(attrs .. "(LogicalName='new_code')")
      assert.equals(400, refused.status)
      assert.equals("The attribute 'new_code' is used by key 'new_codekey': delete the key first.",
        refused.json.error.message)
      ok(api.delete(keys .. "(LogicalName='new_codekey')"))
      assert.equals(404, api.get(keys .. "(LogicalName='new_codekey')").status)
      ok(api.delete(attrs .. "(LogicalName='new_code')"))
    end)

    it("creates a one-to-many relationship with its lookup column", function()
      ok(create_table())
      local rel = {
        ["@odata.type"] = "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        SchemaName = "new_contact_new_bankaccount",
        ReferencedAttribute = "contactid",
        ReferencedEntity = "contact",
        ReferencingEntity = "new_bankaccount",
        CascadeConfiguration = { Assign = "NoCascade", Delete = "RemoveLink", Merge = "NoCascade", Reparent = "NoCascade",
          Share = "NoCascade", Unshare = "NoCascade" },
        Lookup = {
          ["@odata.type"] = "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
          AttributeType = "Lookup", AttributeTypeName = { Value = "LookupType" },
          SchemaName = "new_ContactId", DisplayName = label("Account Owner"),
          RequiredLevel = { Value = "ApplicationRequired" },
        },
      }
      local r = ok(api.post("RelationshipDefinitions", rel))
      local id = r.headers["odata-entityid"]:match("RelationshipDefinitions%(([%x%-]+)%)$")
      assert.truthy(id)
      local d = ok(api.get("RelationshipDefinitions(" .. id .. ")"), 200).json
      assert.equals("new_contact_new_bankaccount", d.SchemaName)
      assert.equals("new_contactid", d.ReferencingAttribute)
      assert.equals("contact", d.ReferencedEntity)
      assert.equals("RemoveLink", d.CascadeConfiguration.Delete)
      assert.is_true(d.IsCustomRelationship)
      local lk = ok(api.get("EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_contactid')"
        .. "/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=Targets,RequiredLevel"), 200).json
      assert.same({ "contact" }, lk.Targets)
      assert.equals("ApplicationRequired", lk.RequiredLevel.Value)
      r = ok(api.get("EntityDefinitions(LogicalName='contact')/OneToManyRelationships?$select=SchemaName&$filter="
        .. api.enc("ReferencingEntity eq 'new_bankaccount'")), 200)
      assert.equals(1, #r.json.value)
      -- the lookup works on rows
      local c = api.create("contacts", { firstname = "Ann", lastname = "Lee" })
      local row = api.create("new_bankaccounts", { new_accountname = "A", ["new_contactid@odata.bind"] = "/contacts(" .. c .. ")" })
      assert.equals(c, ok(api.get("new_bankaccounts(" .. row .. ")?$select=_new_contactid_value"), 200).json._new_contactid_value)
      -- refusals
      assert.equals(400, api.post("RelationshipDefinitions", rel).status)
      local many = { ["@odata.type"] = "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata", SchemaName = "new_a_b" }
      assert.equals(501, api.post("RelationshipDefinitions", many).status)
      assert.equals(400, api.delete("EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_contactid')").status)
      assert.equals(400, api.delete("RelationshipDefinitions(SchemaName='account_primary_contact')").status)
      ok(api.delete("RelationshipDefinitions(" .. id .. ")"))
      assert.equals(404, api.get("RelationshipDefinitions(" .. id .. ")").status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_contactid')").status)
    end)

    it("creates a global choice and a choice column that uses it", function()
      ok(create_table())
      local r = ok(api.post("GlobalOptionSetDefinitions", {
        ["@odata.type"] = "Microsoft.Dynamics.CRM.OptionSetMetadata", Name = "new_colors", IsGlobal = true,
        OptionSetType = "Picklist", DisplayName = label("Colors"),
        Options = { { Value = 100000000, Label = label("Red") }, { Value = 100000001, Label = label("Blue") } } }))
      local id = r.headers["odata-entityid"]:match("GlobalOptionSetDefinitions%(([%x%-]+)%)$")
      assert.truthy(id)
      local g = ok(api.get("GlobalOptionSetDefinitions(Name='new_colors')"), 200).json
      assert.equals(id, g.MetadataId)
      assert.is_true(g.IsGlobal)
      assert.equals("Blue", g.Options[2].Label.UserLocalizedLabel.Label)
      r = ok(api.get("GlobalOptionSetDefinitions?$select=Name&$filter=" .. api.enc("Name eq 'new_colors'")), 200)
      assert.equals(1, #r.json.value)
      assert.equals(400, api.post("GlobalOptionSetDefinitions", { Name = "new_colors", Options = {} }).status)
      local attrs = "EntityDefinitions(LogicalName='new_bankaccount')/Attributes"
      ok(api.post(attrs, { ["@odata.type"] = "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", SchemaName = "new_Color",
        ["GlobalOptionSet@odata.bind"] = "/GlobalOptionSetDefinitions(" .. id .. ")" }))
      r = ok(api.get(attrs .. "(LogicalName='new_color')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        .. "?$select=LogicalName&$expand=OptionSet($select=Name,Options),GlobalOptionSet($select=Name)"), 200)
      assert.equals("new_colors", r.json.GlobalOptionSet.Name)
      assert.equals("Red", r.json.OptionSet.Options[1].Label.UserLocalizedLabel.Label)
      assert.equals(400, api.post(attrs, { ["@odata.type"] = "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", SchemaName = "new_Other",
        ["GlobalOptionSet@odata.bind"] = "/GlobalOptionSetDefinitions(00000000-0000-0000-0000-000000000001)" }).status)
      -- in use: not deleted; once its column is gone, it is
      assert.equals(400, api.delete("GlobalOptionSetDefinitions(" .. id .. ")").status)
      ok(api.delete(attrs .. "(LogicalName='new_color')"))
      ok(api.delete("GlobalOptionSetDefinitions(" .. id .. ")"))
      assert.equals(404, api.get("GlobalOptionSetDefinitions(Name='new_colors')").status)
    end)

    it("updates table and column properties with PUT and MSCRM.MergeLabels", function()
      ok(create_table { ChangeTrackingEnabled = false })
      local d = ok(api.get("EntityDefinitions(LogicalName='new_bankaccount')"), 200).json
      d.DisplayName = label("Bank Account (renamed)")
      d.ChangeTrackingEnabled = true
      ok(api.call("PUT", "EntityDefinitions(" .. d.MetadataId .. ")", { body = d, headers = { ["MSCRM.MergeLabels"] = "true" } }))
      local after = ok(api.get("EntityDefinitions(LogicalName='new_bankaccount')?$select=DisplayName,ChangeTrackingEnabled"), 200).json
      assert.equals("Bank Account (renamed)", after.DisplayName.UserLocalizedLabel.Label)
      assert.is_true(after.ChangeTrackingEnabled)
      assert.equals(200, api.get("new_bankaccounts", { headers = { Prefer = "odata.track-changes" } }).status)
      d.OwnershipType = "OrganizationOwned"
      assert.equals(400, api.call("PUT", "EntityDefinitions(" .. d.MetadataId .. ")", { body = d }).status)
      local col = "EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_accountname')"
      local a = ok(api.get(col .. "/Microsoft.Dynamics.CRM.StringAttributeMetadata"), 200).json
      a.MaxLength = 200
      a.DisplayName = label("Name")
      a["@odata.context"] = nil
      ok(api.call("PUT", col, { body = a, headers = { ["MSCRM.MergeLabels"] = "true" } }))
      a = ok(api.get(col .. "/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=MaxLength,DisplayName"), 200).json
      assert.equals(200, a.MaxLength)
      assert.equals("Name", a.DisplayName.UserLocalizedLabel.Label)
      -- the cast path takes the same PUT (dynamics-web-api's updateAttribute with castType)
      a.MaxLength = 250
      ok(api.call("PUT", col .. "/Microsoft.Dynamics.CRM.StringAttributeMetadata", { body = a }))
      assert.equals(250, ok(api.get(col .. "/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=MaxLength"), 200).json.MaxLength)
      a["@odata.type"] = "#Microsoft.Dynamics.CRM.MemoAttributeMetadata"
      assert.equals(400, api.call("PUT", col, { body = a }).status)
    end)

    it("puts components in the solution named by MSCRM.SolutionUniqueName and removes them with it", function()
      assert.equals(404, create_table(nil, { ["MSCRM.SolutionUniqueName"] = "NoSuchSolution" }).status)
      local sol = api.create("solutions", { uniquename = "BankingCustom", friendlyname = "Banking", version = "1.0.0.0", ismanaged = false })
      ok(create_table(nil, { ["MSCRM.SolutionUniqueName"] = "BankingCustom" }))
      ok(api.post("EntityDefinitions(LogicalName='account')/Attributes", string_column("new_Iban", 34),
        { headers = { ["MSCRM.SolutionUniqueName"] = "BankingCustom" } }))
      local acc = api.create("accounts", { name = "X", new_iban = "DE00" })
      assert.equals("DE00", ok(api.get("accounts(" .. acc .. ")?$select=new_iban"), 200).json.new_iban)
      -- an unmanaged solution's components stay when the solution goes (as in Dataverse)
      ok(api.delete("solutions(" .. sol .. ")"))
      assert.equals(200, api.get("EntityDefinitions(LogicalName='new_bankaccount')").status)
      assert.equals(200, api.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_iban')").status)
      -- a managed solution takes everything it was given with it
      assert.equals(204, api.post("ImportSolution", E.import_body(E.books)).status)
      local books = api.get("solutions?$filter=" .. api.enc("uniquename eq 'ChangeTrackingSample'")).json.value[1].solutionid
      local h = { headers = { ["MSCRM.SolutionUniqueName"] = "ChangeTrackingSample" } }
      ok(api.post("EntityDefinitions(LogicalName='account')/Attributes", string_column("new_Shelf", 10), h))
      ok(api.post("EntityDefinitions(LogicalName='sample_book')/Attributes", string_column("new_Isbn", 13), h))
      ok(api.post("EntityDefinitions", bank_account { SchemaName = "new_Library" }, h))
      ok(api.post("RelationshipDefinitions", { ["@odata.type"] = "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        SchemaName = "new_account_new_library", ReferencedEntity = "account", ReferencingEntity = "new_library",
        Lookup = { ["@odata.type"] = "Microsoft.Dynamics.CRM.LookupAttributeMetadata", SchemaName = "new_AccountId" } }, h))
      ok(api.post("EntityDefinitions(LogicalName='contact')/Keys", { SchemaName = "new_emailkey", KeyAttributes = { "emailaddress1" } }, h))
      local shelf = api.create("accounts", { name = "Y", new_shelf = "S1" })
      ok(api.delete("solutions(" .. books .. ")"))
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_book')").status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='new_library')").status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_shelf')").status)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='contact')/Keys(LogicalName='new_emailkey')").status)
      assert.equals(404, api.get("RelationshipDefinitions(SchemaName='new_account_new_library')").status)
      assert.is_nil(api.get("accounts(" .. shelf .. ")").json.new_shelf)
      assert.equals(200, api.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_iban')").status)
    end)

    it("keeps created definitions across restarts and drops a deleted table with its rows", function()
      local path = os.tmpname()
      os.remove(path)
      api.stop()
      api = E.start { db = path, key_delay = 0 }
      ok(create_table())
      ok(api.post("EntityDefinitions(LogicalName='new_bankaccount')/Attributes", string_column("new_Code", 20)))
      ok(api.post("EntityDefinitions(LogicalName='new_bankaccount')/Keys", { SchemaName = "new_codekey", KeyAttributes = { "new_code" } }))
      api.create("new_bankaccounts", { new_accountname = "A", new_code = "K1" })
      api.stop()
      api = E.start { db = path, key_delay = 0 }
      local d = ok(api.get("EntityDefinitions(LogicalName='new_bankaccount')?$select=SchemaName,DisplayCollectionName&$expand=Keys($select=LogicalName)"), 200).json
      assert.equals("new_BankAccount", d.SchemaName)
      assert.equals("Bank Accounts", d.DisplayCollectionName.UserLocalizedLabel.Label)
      assert.equals("new_codekey", d.Keys[1].LogicalName)
      assert.equals(200, api.get("new_bankaccounts(new_code='K1')").status)
      -- built-in tables cannot be deleted; a created one can, with its rows
      assert.equals(400, api.delete("EntityDefinitions(LogicalName='account')").status)
      ok(api.delete("EntityDefinitions(LogicalName='new_bankaccount')"))
      assert.equals(404, api.get("EntityDefinitions(LogicalName='new_bankaccount')").status)
      assert.equals(404, api.get("new_bankaccounts").status)
      api.stop()
      os.remove(path)
      os.remove(path .. "-wal")
      os.remove(path .. "-shm")
      api = E.start {}
    end)
  end)
end)
