-- GET $metadata: the CSDL document, parsed by xmllint (libxml2) and queried with XPath, for
-- the built-in tables, tables imported from Microsoft's exports, and tables added later.
local E = require "emulator"
local dv = require "dv"

local FIXTURES = "../shared/fixtures/solutions/"

local function fixture(name)
  local f = assert(io.open(FIXTURES .. name, "rb"), name .. " missing")
  local data = f:read("a")
  f:close()
  return data
end

local exec = dv.exec

-- A parsed document: doc:values(xpath) lists the values of the attributes the XPath selects
-- (CSDL elements are namespaced, so paths use local-name()).
local function parse(text)
  local path = os.tmpname()
  dv.write_file(path, text)
  local check = exec { "xmllint", "--noout", path }
  assert(check.status == 0, "not well-formed XML: " .. check.stderr)
  local doc = { path = path }
  function doc.values(xpath)
    local r = exec { "xmllint", "--xpath", xpath, path }
    local out = {}
    if r.status ~= 0 then return out end -- no match
    for v in r.stdout:gmatch('="([^"]*)"') do out[#out + 1] = v end
    return out
  end
  function doc.value(xpath) return doc.values(xpath)[1] end
  function doc.close() os.remove(path) end
  return doc
end

local function el(name, attr, value)
  if attr then return ("*[local-name()='%s'][@%s='%s']"):format(name, attr, value) end
  return ("*[local-name()='%s']"):format(name)
end

local function entity_type(name) return "//" .. el("EntityType", "Name", name) end

local function property_type(doc, tbl, prop)
  return doc.value(entity_type(tbl) .. "/" .. el("Property", "Name", prop) .. "/@Type")
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

describe("$metadata", function()
  local api

  before_each(function() api = E.start { key_delay = 0 } end)
  after_each(function() api.stop() end)

  local function metadata()
    local r = api.get("$metadata", { headers = { Accept = "application/xml" } })
    assert.equals(200, r.status, r.body)
    assert.equals("application/xml", r.headers["content-type"])
    assert.equals("4.0", r.headers["odata-version"])
    return parse(r.body)
  end

  local function import(name)
    local r = api.post("ImportSolution", { OverwriteUnmanagedCustomizations = false, PublishWorkflows = false,
      CustomizationFile = E.base64(fixture(name)), ImportJobId = "00000000-0000-0000-0000-0000000000cc" })
    assert.equals(204, r.status, r.body)
  end

  -- Every navigation property names a type the document defines, and its partner exists on
  -- that type and points back: what code generators rely on. Read from xmllint's formatted
  -- output (one element per line) in one pass.
  local function check_navigation(doc)
    local formatted = exec { "xmllint", "--format", doc.path }
    assert.equals(0, formatted.status)
    local navs, current, checked = {}, nil, 0
    for line in formatted.stdout:gmatch("[^\n]+") do
      local t = line:match('^%s*<EntityType Name="([^"]+)"')
      if t then current = t; navs[t] = navs[t] or {} end
      if line:match("^%s*</EntityType>") then current = nil end
      local name = line:match('^%s*<NavigationProperty Name="([^"]+)"')
      if name and current then
        navs[current][name] = { type = line:match('Type="([^"]+)"'), partner = line:match('Partner="([^"]+)"') }
      end
    end
    for t, list in pairs(navs) do
      for name, nav in pairs(list) do
        local target = nav.type:match("^Collection%(mscrm%.(.-)%)$") or nav.type:match("^mscrm%.(.+)$")
        assert.is_table(navs[target], t .. "." .. name .. " -> " .. nav.type)
        if nav.partner then
          local back = navs[target][nav.partner]
          assert.is_table(back, t .. "." .. name .. " partner " .. nav.partner)
          assert.equals(name, back.partner, t .. "." .. name)
        end
        checked = checked + 1
      end
    end
    return checked
  end

  it("describes the built-in tables with keys, typed properties and lookups", function()
    local doc = metadata()
    finally(doc.close)
    assert.equals("Microsoft.Dynamics.CRM", doc.value("//" .. el("Schema") .. "/@Namespace"))
    assert.equals("accountid", doc.value(entity_type("account") .. "/" .. el("Key") .. "/" .. el("PropertyRef") .. "/@Name"))
    assert.equals("Edm.String", property_type(doc, "account", "name"))
    assert.equals("Edm.Int32", property_type(doc, "account", "numberofemployees"))
    assert.equals("Edm.Decimal", property_type(doc, "account", "revenue"))
    assert.equals("Edm.Boolean", property_type(doc, "account", "donotemail"))
    assert.equals("Edm.DateTimeOffset", property_type(doc, "account", "createdon"))
    assert.equals("Edm.Int64", property_type(doc, "account", "versionnumber"))
    assert.equals("Edm.Guid", property_type(doc, "account", "_primarycontactid_value"))
    assert.is_nil(property_type(doc, "account", "primarycontactid"))
    local nav = entity_type("account") .. "/" .. el("NavigationProperty", "Name", "primarycontactid")
    assert.equals("mscrm.contact", doc.value(nav .. "/@Type"))
    assert.equals("_primarycontactid_value", doc.value(nav .. "/" .. el("ReferentialConstraint") .. "/@Property"))
    assert.equals("contactid", doc.value(nav .. "/" .. el("ReferentialConstraint") .. "/@ReferencedProperty"))
    assert.truthy(check_navigation(doc) >= 3)
    -- the customer lookup, bound as parentcustomerid_account / parentcustomerid_contact
    for _, t in ipairs { "account", "contact" } do
      local cust = entity_type("contact") .. "/" .. el("NavigationProperty", "Name", "parentcustomerid_" .. t)
      assert.equals("mscrm." .. t, doc.value(cust .. "/@Type"))
      assert.equals("_parentcustomerid_value", doc.value(cust .. "/" .. el("ReferentialConstraint") .. "/@Property"))
    end

    local set = "//" .. el("EntityContainer") .. "/" .. el("EntitySet", "Name", "accounts")
    assert.equals("Microsoft.Dynamics.CRM.account", doc.value(set .. "/@EntityType"))
    assert.equals("contacts", doc.value(set .. "/" .. el("NavigationPropertyBinding", "Path", "primarycontactid") .. "/@Target"))
    local sets = set_of(doc.values("//" .. el("EntitySet") .. "/@Name"))
    for _, s in ipairs { "contacts", "systemusers", "solutions", "importjobs", "asyncoperations", "EntityDefinitions" } do
      assert.is_true(sets[s] == true, s)
    end
  end)

  it("lists the functions and actions the emulator serves", function()
    local doc = metadata()
    finally(doc.close)
    assert.equals("mscrm.WhoAmIResponse", doc.value("//" .. el("Function", "Name", "WhoAmI") .. "/" .. el("ReturnType") .. "/@Type"))
    local params = set_of(doc.values("//" .. el("Action", "Name", "ImportSolution") .. "/" .. el("Parameter") .. "/@Name"))
    assert.is_true(params.CustomizationFile and params.ImportJobId and params.OverwriteUnmanagedCustomizations)
    local imports = set_of(doc.values("//" .. el("EntityContainer") .. "/*/@Name"))
    for _, op in ipairs { "WhoAmI", "RetrieveTotalRecordCount", "ImportSolution", "ImportSolutionAsync",
                          "ReactivateEntityKey" } do
      assert.is_true(imports[op] == true, op)
    end
    assert.equals("Collection(Edm.String)", doc.value("//" .. el("Function", "Name", "RetrieveTotalRecordCount")
      .. "/" .. el("Parameter", "Name", "EntityNames") .. "/@Type"))
    -- and what it lists answers
    assert.equals(200, api.get("WhoAmI").status)
    assert.equals(200, api.get("RetrieveTotalRecordCount(EntityNames=@p)?@p=" .. api.enc('["account"]')).status)
  end)

  it("describes a table imported from Microsoft's export, with its relationships' names", function()
    import("CodeInterpreterSample_1_0_0_0_managed.zip")
    local doc = metadata()
    finally(doc.close)
    assert.equals("sample_exampleid", doc.value(entity_type("sample_example") .. "/" .. el("Key") .. "/" .. el("PropertyRef") .. "/@Name"))
    assert.equals("Edm.String", property_type(doc, "sample_example", "sample_name"))
    assert.equals("Edm.Decimal", property_type(doc, "sample_example", "sample_creditlimit"))
    assert.equals("Edm.Int32", property_type(doc, "sample_example", "sample_category"))
    assert.equals("Edm.Guid", property_type(doc, "sample_example", "_owningbusinessunit_value"))
    local nav = entity_type("sample_example") .. "/" .. el("NavigationProperty", "Name", "createdby")
    assert.equals("lk_sample_example_createdby", doc.value(nav .. "/@Partner"))
    assert.equals("Collection(mscrm.sample_example)",
      doc.value(entity_type("systemuser") .. "/" .. el("NavigationProperty", "Name", "lk_sample_example_createdby") .. "/@Type"))
    assert.equals("Microsoft.Dynamics.CRM.sample_example",
      doc.value("//" .. el("EntitySet", "Name", "sample_examples") .. "/@EntityType"))
    check_navigation(doc)
  end)

  it("carries a table's alternate keys", function()
    import("UpsertSample_1_0_0_0_managed.zip")
    local doc = metadata()
    finally(doc.close)
    local ann = entity_type("sample_product") .. "/" .. el("Annotation", "Term", "OData.Community.Keys.V1.AlternateKeys")
    assert.same({ "sample_productcode" }, doc.values(ann .. "//" .. el("PropertyValue", "Property", "Name") .. "/@PropertyPath"))
  end)

  it("follows tables created and removed after it was first read", function()
    local before = metadata()
    finally(before.close)
    assert.is_nil(before.value(entity_type("sample_product") .. "/@Name"))
    import("UpsertSample_1_0_0_0_managed.zip")
    local after = metadata()
    finally(after.close)
    assert.equals("Edm.String", property_type(after, "sample_product", "sample_productcode"))
    assert.equals("sample_product", after.value(entity_type("sample_product") .. "/@Name"))
    local sid = api.get("solutions?$filter=" .. api.enc("uniquename eq 'UpsertSample'")).json.value[1].solutionid
    assert.equals(204, api.delete("solutions(" .. sid .. ")").status)
    local gone = metadata()
    finally(gone.close)
    assert.is_nil(gone.value(entity_type("sample_product") .. "/@Name"))
    check_navigation(gone)
  end)

  it("refuses methods other than GET", function()
    local r = api.post("$metadata", {})
    assert.equals(405, r.status)
    assert.equals("0x80060888", r.json.error.code)
  end)
end)
