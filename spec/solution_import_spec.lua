-- ImportSolution as Dataverse does it, over HTTP against the emulator: Microsoft's own exports
-- (../shared/fixtures/solutions/, read in place), exports that customize tables the
-- organization has already, column types the emulator only describes, solutions layered over
-- each other, and the import job each import leaves.
local E = require "emulator"
local cjson = require "cjson"
local dataverse = require "dataverse"
local U = require "dataverse.util"

local FIXTURES = "../shared/fixtures/solutions/"
local UPSERT = FIXTURES .. "UpsertSample_1_0_0_0_managed.zip"
local INTERPRETER = FIXTURES .. "CodeInterpreterSample_1_0_0_0_managed.zip"
local SECONDARY = FIXTURES .. "SecondaryRecordSource_SampleSolution_1_23091_1_managed.zip"

local function fixture(path)
  local f = assert(io.open(path, "rb"), path .. " missing (specs read the fixtures in place)")
  local data = f:read("a")
  f:close()
  return data
end

-- ---- solutions written here, as small as an export can be ----

-- A column: {name=, type="nvarchar", maxlen=, primary=true, display=}.
local function column_xml(c)
  local mask = c.primary and "PrimaryName|ValidForAdvancedFind" or "ValidForAdvancedFind"
  return ([[
        <attribute PhysicalName="%s"><Type>%s</Type><Name>%s</Name><LogicalName>%s</LogicalName>
          <RequiredLevel>none</RequiredLevel><DisplayMask>%s</DisplayMask>%s
          <displaynames><displayname description="%s" languagecode="1033" /></displaynames>
        </attribute>
]]):format(c.name, c.type or "nvarchar", c.name, c.name, mask,
    c.maxlen and ("<MaxLength>%d</MaxLength>"):format(c.maxlen) or "", c.display or c.name)
end

-- A solution: {unique=, managed=, tables={{name=, set=, info=false, ct=, columns=, keys=}},
-- relationships={{name=, from=, attr=, to=}}} as the three files of its zip.
local function solution_zip(o)
  local ents = {}
  for _, t in ipairs(o.tables or {}) do
    local info = ""
    if t.info ~= false then
      local cols, keys = {}, {}
      for _, c in ipairs(t.columns or {}) do cols[#cols + 1] = column_xml(c) end
      for _, k in ipairs(t.keys or {}) do
        local names = {}
        for _, c in ipairs(k.columns) do names[#names + 1] = "<AttributeName>" .. c .. "</AttributeName>" end
        keys[#keys + 1] = ("<EntityKey><Name>%s</Name><LogicalName>%s</LogicalName>"
          .. "<EntityKeyAttributes>%s</EntityKeyAttributes></EntityKey>"):format(k.name, k.name,
          table.concat(names))
      end
      info = ([[
      <EntityInfo><entity Name="%s">
        <LocalizedNames><LocalizedName description="%s" languagecode="1033" /></LocalizedNames>
        <attributes>
%s        </attributes>
        <EntityKeys>%s</EntityKeys>%s
        <ChangeTrackingEnabled>%s</ChangeTrackingEnabled>
      </entity></EntityInfo>]]):format(t.name, t.display or t.name, table.concat(cols),
        table.concat(keys), t.set and ("<EntitySetName>" .. t.set .. "</EntitySetName>") or "",
        t.ct == false and "0" or "1")
    end
    ents[#ents + 1] = ("    <Entity><Name LocalizedName=\"%s\" OriginalName=\"%s\">%s</Name>%s\n"
      .. "      <FormXml /><SavedQueries /></Entity>\n"):format(t.name, t.name, t.name, info)
  end
  local rels = {}
  for _, r in ipairs(o.relationships or {}) do
    rels[#rels + 1] = ([[
    <EntityRelationship Name="%s"><EntityRelationshipType>OneToMany</EntityRelationshipType>
      <ReferencingEntityName>%s</ReferencingEntityName><ReferencedEntityName>%s</ReferencedEntityName>
      <ReferencingAttributeName>%s</ReferencingAttributeName></EntityRelationship>
]]):format(r.name, r.from, r.to, r.attr)
  end
  local head = '<?xml version="1.0" encoding="utf-8"?>\n<ImportExportXml version="9.2" languagecode="1033">\n'
  local manifest = head .. ([[
  <SolutionManifest><UniqueName>%s</UniqueName>
    <LocalizedNames><LocalizedName description="%s" languagecode="1033" /></LocalizedNames>
    <Version>%s</Version><Managed>%s</Managed>
    <Publisher><UniqueName>specpublisher</UniqueName><CustomizationPrefix>sample</CustomizationPrefix></Publisher>
  </SolutionManifest>
</ImportExportXml>
]]):format(o.unique, o.unique, o.version or "1.0.0.0", o.managed == false and "0" or "1")
  local custom = head .. "  <Entities>\n" .. table.concat(ents) .. "  </Entities>\n"
    .. "  <EntityRelationships>\n" .. table.concat(rels) .. "  </EntityRelationships>\n</ImportExportXml>\n"
  return E.zip {
    { name = "[Content_Types].xml", data = '<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/octet-stream" /></Types>' },
    { name = "solution.xml", data = manifest },
    { name = "customizations.xml", data = custom },
  }
end

describe("ImportSolution", function()
  local api

  before_each(function() api = E.start { key_delay = 0 } end)
  after_each(function() api.stop() end)

  local function import_zip(zip, job)
    return api.post("ImportSolution", {
      OverwriteUnmanagedCustomizations = false, PublishWorkflows = false,
      CustomizationFile = E.base64(zip), ImportJobId = job or U.new_guid(),
    })
  end

  local function import(o, job) return import_zip(solution_zip(o), job) end

  local function solution_id(unique)
    local r = api.get("solutions?$select=solutionid&$filter=" .. api.enc("uniquename eq '" .. unique .. "'"))
    assert.equals(200, r.status, r.body)
    return r.json.value[1] and r.json.value[1].solutionid
  end

  local function uninstall(unique)
    local id = assert(solution_id(unique), unique .. " is not installed")
    local r = api.delete("solutions(" .. id .. ")")
    assert.equals(204, r.status, r.body)
  end

  local function columns(tbl)
    local r = api.get("EntityDefinitions(LogicalName='" .. tbl .. "')/Attributes")
    if r.status == 404 then return nil end
    assert.equals(200, r.status, r.body)
    local out = {}
    for _, a in ipairs(r.json.value) do out[a.LogicalName] = a end
    return out
  end

  local function keys(tbl)
    local r = api.get("EntityDefinitions(LogicalName='" .. tbl .. "')/Keys")
    assert.equals(200, r.status, r.body)
    local out = {}
    for _, k in ipairs(r.json.value) do out[k.LogicalName] = k end
    return out
  end

  describe("Microsoft's sample exports", function()
    it("imports UpsertSample: sample_product with its alternate key, usable by key", function()
      local r = import_zip(fixture(UPSERT))
      assert.equals(204, r.status, r.body)
      local d = api.get("EntityDefinitions(LogicalName='sample_product')").json
      assert.equals("sample_products", d.EntitySetName)
      assert.equals("sample_productid", d.PrimaryIdAttribute)
      assert.equals("sample_name", d.PrimaryNameAttribute)
      assert.is_false(d.ChangeTrackingEnabled)
      local cols = columns("sample_product")
      for _, c in ipairs { "sample_name", "sample_productcode", "sample_category", "sample_make",
                           "createdon", "ownerid", "owningbusinessunit" } do
        assert.truthy(cols[c], c)
      end
      -- a lookup's name companion (owneridname, listed by the 2015 export) is no property
      assert.equals(400, api.get("sample_products?$select=owneridname").status)
      assert.equals("Active", keys("sample_product").sample_productcode.EntityKeyIndexStatus)

      r = api.patch("sample_products(sample_productcode='1')", { sample_name = "Widget" })
      assert.equals(204, r.status, r.body)
      r = api.get("sample_products(sample_productcode='1')?$select=sample_name")
      assert.equals("Widget", r.json.sample_name)
      assert.equals(412, api.post("sample_products", { sample_name = "Dup", sample_productcode = "1" }).status)
      -- change tracking is off in this export
      r = api.get("sample_products", { headers = { Prefer = "odata.track-changes" } })
      assert.equals(400, r.status)

      uninstall("UpsertSample")
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_product')").status)
      assert.equals(404, api.get("sample_products").status)
    end)

    it("imports CodeInterpreterSample: a recent export with change tracking on", function()
      local r = import_zip(fixture(INTERPRETER))
      assert.equals(204, r.status, r.body)
      local d = api.get("EntityDefinitions(LogicalName='sample_example')").json
      assert.is_true(d.ChangeTrackingEnabled)
      assert.equals("sample_examples", d.EntitySetName)
      local cols = columns("sample_example")
      assert.equals("Money", cols.sample_creditlimit.AttributeType)
      assert.equals("Picklist", cols.sample_category.AttributeType)
      assert.equals("businessunit", cols.owningbusinessunit.Targets[1])

      local id = api.create("sample_examples", { sample_name = "first", sample_creditlimit = 12.5,
                                                 sample_category = 1 })
      r = api.get("sample_examples", { headers = { Prefer = "odata.track-changes" } })
      assert.equals(200, r.status, r.body)
      assert.equals(1, #r.json.value)
      local delta = r.json["@odata.deltaLink"]
      assert.truthy(delta)
      assert.equals(204, api.patch("sample_examples(" .. id .. ")", { sample_name = "second" }).status)
      r = api.get(delta)
      assert.equals(200, r.status, r.body)
      assert.equals("second", r.json.value[1].sample_name)
      r = api.get("sample_examples?$filter=" .. api.enc("sample_creditlimit gt 10") .. "&$select=sample_name")
      assert.equals(1, #r.json.value)

      uninstall("CodeInterpreterSample")
      assert.equals(404, api.get("sample_examples").status)
    end)

    it("imports SecondaryRecordSource, which customizes account, and leaves account on uninstall", function()
      local before = api.create("accounts", { name = "Contoso" })
      local r = import_zip(fixture(SECONDARY))
      assert.equals(204, r.status, r.body)
      assert.truthy(solution_id("SecondaryRecordSource_SampleSolution"))
      assert.equals("Contoso", api.get("accounts(" .. before .. ")").json.name)
      api.create("accounts", { name = "Fabrikam" })
      uninstall("SecondaryRecordSource_SampleSolution")
      assert.equals(200, api.get("EntityDefinitions(LogicalName='account')").status)
      assert.equals("2", api.get("accounts/$count").body)
      assert.is_not_nil(columns("account").name)
    end)

    it("imports all three into one organization and uninstalls them in any order", function()
      for _, path in ipairs { SECONDARY, UPSERT, INTERPRETER } do
        local r = import_zip(fixture(path))
        assert.equals(204, r.status, path .. ": " .. r.body)
      end
      local sets = {}
      for _, s in ipairs(api.get("").json.value) do sets[s.name] = true end
      assert.is_true(sets.sample_products and sets.sample_examples and sets.accounts)
      uninstall("CodeInterpreterSample")
      uninstall("SecondaryRecordSource_SampleSolution")
      assert.equals(200, api.get("sample_products").status)
      uninstall("UpsertSample")
      assert.equals(404, api.get("sample_products").status)
      assert.equals(200, api.get("accounts").status)
    end)

    it("imports the sample's own solution source with the requirement levels it declares", function()
      local zip = require("dataverse.solution").pack("scripts/solutions/ChangeTrackingSample")
      assert.equals(204, import_zip(zip).status)
      local cols = columns("sample_book")
      assert.equals("SystemRequired", cols.sample_bookid.RequiredLevel.Value)
      assert.equals("SystemRequired", cols.statecode.RequiredLevel.Value)
      assert.equals("ApplicationRequired", cols.sample_bookcode.RequiredLevel.Value)
      assert.equals("None", cols.sample_author.RequiredLevel.Value)
      assert.equals("systemuser", cols.createdby.Targets[1])
      assert.equals("Active", keys("sample_book").sample_bookcode.EntityKeyIndexStatus)
    end)

    it("imports them through the client's import_solution from the zip files", function()
      local org <close> = dataverse.connect { url = api.url, token = E.token }
      local job = org:import_solution(UPSERT)
      org:import_solution(SECONDARY)
      local j = org:retrieve("importjob", job, { columns = { "solutionname", "progress" } })
      assert.equals("UpsertSample", j.solutionname)
      assert.equals(100, j.progress)
      assert.equals("1.0.0.0", org:solution("UpsertSample").version)
      assert.equals("1.23091.1", org:solution("SecondaryRecordSource_SampleSolution").version)
      assert.is_true(org:uninstall_solution("UpsertSample"))
    end)
  end)

  describe("a solution that customizes existing tables", function()
    local crm = {
      unique = "AccountExtras",
      tables = {
        { name = "account", columns = {
            { name = "sample_region", maxlen = 40 },
            { name = "sample_partnerid", type = "lookup" },
          }, keys = { { name = "sample_region_key", columns = { "sample_region" } } } },
        { name = "contact", info = false },
      },
      relationships = { { name = "sample_account_partner", from = "account", attr = "sample_partnerid", to = "contact" } },
    }

    it("adds columns, a key and a relationship to account and keeps its rows", function()
      local old = api.create("accounts", { name = "Before" })
      local r = import(crm)
      assert.equals(204, r.status, r.body)
      local cols = columns("account")
      assert.equals(40, cols.sample_region.MaxLength)
      assert.equals("contact", cols.sample_partnerid.Targets[1])
      assert.equals("Before", api.get("accounts(" .. old .. ")").json.name)
      -- the new column and lookup are usable at once
      local c = api.create("contacts", { firstname = "Pat", lastname = "Lee" })
      assert.equals(204, api.patch("accounts(" .. old .. ")", {
        sample_region = "North", ["sample_partnerid@odata.bind"] = "/contacts(" .. c .. ")" }).status)
      r = api.get("accounts(sample_region='North')?$select=name,_sample_partnerid_value")
      assert.equals(200, r.status, r.body)
      assert.equals("Before", r.json.name)
      assert.equals(c, r.json._sample_partnerid_value)
      assert.equals(400, api.patch("accounts(" .. old .. ")", { sample_region = ("x"):rep(41) }).status)
      assert.equals(412, api.post("accounts", { name = "Again", sample_region = "North" }).status)
    end)

    it("indexes rows written before the key, and fails the key's index on duplicates", function()
      api.create("accounts", { name = "One" })
      local r = import({ unique = "Step1", tables = { { name = "account", columns = { { name = "sample_code" } } } } })
      assert.equals(204, r.status, r.body)
      local a = api.create("accounts", { name = "A", sample_code = "same" })
      api.create("accounts", { name = "B", sample_code = "same" })
      local u = api.create("accounts", { name = "U", sample_code = "unique" })
      r = import({ unique = "Step2", tables = { { name = "account", columns = { { name = "sample_code" } },
                   keys = { { name = "sample_code_key", columns = { "sample_code" } } } } } })
      assert.equals(204, r.status, r.body)
      assert.equals("Failed", keys("account").sample_code_key.EntityKeyIndexStatus)
      assert.equals(u, api.get("accounts(sample_code='unique')?$select=accountid").json.accountid)
      assert.is_string(a)
    end)

    it("removes what it added on uninstall, with the column's values, and keeps the rows", function()
      assert.equals(204, import(crm).status)
      local id = api.create("accounts", { name = "Kept", sample_region = "South" })
      uninstall("AccountExtras")
      local cols = columns("account")
      assert.is_nil(cols.sample_region)
      assert.is_nil(cols.sample_partnerid)
      assert.is_nil(keys("account").sample_region_key)
      local row = api.get("accounts(" .. id .. ")").json
      assert.equals("Kept", row.name)
      assert.is_nil(row.sample_region)
      assert.equals(400, api.get("accounts?$select=sample_region").status)
    end)

    it("refuses a column whose type differs from the table's, and changes nothing", function()
      local r = import({ unique = "Clash", tables = {
        { name = "sample_new", set = "sample_news", columns = { { name = "sample_name", primary = true } } },
        { name = "account", columns = { { name = "sample_x" }, { name = "numberofemployees", type = "nvarchar" } } },
      } })
      assert.equals(400, r.status)
      assert.equals("0x8004801e", r.json.error.code) -- ImportGenericError
      assert.matches("column 'numberofemployees' of table 'account' is of type Integer; the solution "
        .. "defines it as String", r.json.error.message)
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_new')").status)
      assert.is_nil(columns("account").sample_x)
      assert.is_nil(solution_id("Clash"))
    end)

    it("refuses a new table without a primary name, and one it neither defines nor finds", function()
      local r = import({ unique = "NoName", tables = { { name = "sample_thing", columns = { { name = "sample_code" } } } } })
      assert.equals(400, r.status)
      assert.matches("table 'sample_thing' is new and no column is marked PrimaryName", r.json.error.message)
      r = import({ unique = "Ghost", tables = { { name = "sample_ghost", info = false } } })
      assert.equals(400, r.status)
      assert.equals("0x8004801d", r.json.error.code) -- ImportMissingDependenciesError
      assert.matches("^The following solution cannot be imported: Ghost%. Some dependencies are missing%.",
        r.json.error.message)
      assert.matches("table 'sample_ghost' does not exist and the solution does not define it", r.json.error.message)
    end)
  end)

  describe("a solution file Dataverse refuses", function()
    local good = { unique = "Fine", tables = { { name = "sample_fine", set = "sample_fines",
      columns = { { name = "sample_name", primary = true } } } } }

    it("answers each with Dataverse's import error code and message", function()
      -- not a zip
      local r = api.post("ImportSolution", { CustomizationFile = E.base64("not a zip"), ImportJobId = U.new_guid() })
      assert.equals(400, r.status)
      assert.equals("0x80048060", r.json.error.code) -- ImportCustomizationsBadZipFileError
      assert.matches("^The solution file is invalid%. The compressed file must contain the following files at "
        .. "its root: solution%.xml, customizations%.xml, and %[Content_Types%]%.xml%.", r.json.error.message)
      -- a zip without the solution's files
      r = import_zip(E.zip { { name = "[Content_Types].xml", data = "<Types/>" } })
      assert.equals("0x80048060", r.json.error.code)
      assert.matches("%(solution%.xml missing%)$", r.json.error.message)
      -- not well formed
      local zip = solution_zip(good):gsub("</Entities>", "</Entitiez>")
      r = import_zip(zip)
      assert.equals("0x80048013", r.json.error.code) -- ImportNonWellFormedFileError
      assert.matches("^Invalid customization file%. This file is not well formed%. %(customizations%.xml: line %d+: "
        .. "mismatched tag%)$", r.json.error.message)
      -- well formed, not valid
      zip = solution_zip(good):gsub("<Type>nvarchar</Type>", "<Type>hologram</Type>")
      r = import_zip(zip)
      assert.equals("0x8004801a", r.json.error.code) -- ImportXsdValidationError
      assert.matches("^The import file is invalid%. XSD validation failed with the following error: "
        .. "'customizations%.xml: line %d+: attribute sample_name: unsupported type 'hologram''%.$", r.json.error.message)
      assert.equals(404, api.get("sample_fines").status)
      assert.equals(204, import(good).status)
    end)

    it("refuses to change a solution between managed and unmanaged", function()
      assert.equals(204, import(good).status)
      local r = import({ unique = "Fine", managed = false, tables = good.tables })
      assert.equals(400, r.status)
      assert.equals("0x80048038", r.json.error.code) -- ImportSolutionManagedError
      assert.equals("Solution 'Fine' already exists in this system as managed and cannot be upgraded.",
        r.json.error.message)
      assert.equals(204, import({ unique = "Loose", managed = false, tables = { { name = "sample_loose",
        set = "sample_looses", columns = { { name = "sample_name", primary = true } } } } }).status)
      r = import({ unique = "Loose", tables = { { name = "sample_loose", set = "sample_looses",
        columns = { { name = "sample_name", primary = true } } } } })
      assert.equals("0x80048040", r.json.error.code) -- ImportSolutionManagedToUnmanagedMismatch
      assert.matches("already installed on this system as an unmanaged solution", r.json.error.message)
    end)
  end)

  describe("a customer lookup", function()
    it("points to accounts or contacts, bound as <column>_<table>", function()
      local r = import({ unique = "Orders", tables = { { name = "sample_order", set = "sample_orders", columns = {
        { name = "sample_name", primary = true }, { name = "sample_customerid", type = "customer" } } } },
        relationships = {
          { name = "sample_order_customer_accounts", from = "sample_order", attr = "sample_customerid", to = "account" },
          { name = "sample_order_customer_contacts", from = "sample_order", attr = "sample_customerid", to = "contact" },
        } })
      assert.equals(204, r.status, r.body)
      -- a customer lookup's Targets are the tables it may point to
      assert.same({ "account", "contact" }, columns("sample_order").sample_customerid.Targets)
      assert.equals("Customer", columns("sample_order").sample_customerid.AttributeType)
      local acct = api.create("accounts", { name = "Buyer Ltd" })
      local person = api.create("contacts", { firstname = "Ana", lastname = "Buyer" })
      local o1 = api.create("sample_orders", { sample_name = "o1",
        ["sample_customerid_account@odata.bind"] = "/accounts(" .. acct .. ")" })
      local o2 = api.create("sample_orders", { sample_name = "o2",
        ["sample_customerid_contact@odata.bind"] = "/contacts(" .. person .. ")" })
      assert.equals(acct, api.get("sample_orders(" .. o1 .. ")?$select=_sample_customerid_value").json._sample_customerid_value)
      assert.equals(person, api.get("sample_orders(" .. o2 .. ")?$select=_sample_customerid_value").json._sample_customerid_value)
      -- $metadata has one navigation property per table, as Dataverse names them
      local csdl = api.get("$metadata").body
      for _, t in ipairs { "account", "contact" } do
        local single = '<NavigationProperty Name="sample_customerid_' .. t .. '" Type="mscrm.' .. t
          .. '" Partner="sample_order_customer_' .. t .. 's"><ReferentialConstraint '
          .. 'Property="_sample_customerid_value" ReferencedProperty="' .. t .. 'id" />'
        assert.truthy(csdl:find(single, 1, true), single)
        local many = '<NavigationProperty Name="sample_order_customer_' .. t .. 's" '
          .. 'Type="Collection(mscrm.sample_order)" Partner="sample_customerid_' .. t .. '" />'
        assert.truthy(csdl:find(many, 1, true), many)
      end
    end)
  end)

  describe("column types the emulator does not store", function()
    local media = {
      unique = "Media",
      tables = { { name = "sample_doc", set = "sample_docs", columns = {
        { name = "sample_name", primary = true },
        { name = "sample_file", type = "file" },
        { name = "sample_picture", type = "image" },
        { name = "sample_tags", type = "multiselectpicklist" },
        { name = "sample_namealias", type = "virtual" },
        { name = "sample_callers", type = "partylist" },
        { name = "sample_kind", type = "entityname" },
      } } },
    }

    it("lists them in Attributes with their documented types", function()
      assert.equals(204, import(media).status)
      local cols = columns("sample_doc")
      local function kind(c) return cols[c].AttributeType .. "/" .. cols[c].AttributeTypeName.Value end
      assert.equals("Virtual/FileType", kind("sample_file"))
      assert.equals("Virtual/ImageType", kind("sample_picture"))
      assert.equals("Virtual/MultiSelectPicklistType", kind("sample_tags"))
      assert.equals("Virtual/VirtualType", kind("sample_namealias"))
      assert.equals("PartyList/PartyListType", kind("sample_callers"))
      assert.equals("EntityName/EntityNameType", kind("sample_kind"))
      assert.equals("#Microsoft.Dynamics.CRM.FileAttributeMetadata", cols.sample_file["@odata.type"])
    end)

    it("keeps rows usable and refuses only reads and writes of their content", function()
      assert.equals(204, import(media).status)
      local id = api.create("sample_docs", { sample_name = "report" })
      local r = api.patch("sample_docs(" .. id .. ")", { sample_file = "aGVsbG8=" })
      assert.equals(400, r.status)
      assert.matches("file column 'sample_file' of table 'sample_doc' can't be set in a create or update",
        r.json.error.message)
      r = api.post("sample_docs", { sample_name = "pic", sample_picture = "aGVsbG8=" })
      assert.equals(501, r.status)
      assert.matches("does not store the content of column 'sample_picture' %(ImageType%)", r.json.error.message)
      assert.equals(501, api.patch("sample_docs(" .. id .. ")", { sample_tags = "1,2" }).status)
      -- columns that are no Web API property
      r = api.get("sample_docs?$select=sample_namealias")
      assert.equals(400, r.status)
      assert.equals(400, api.patch("sample_docs(" .. id .. ")", { sample_kind = "account" }).status)
      r = api.get("sample_docs(" .. id .. ")/sample_file/$value")
      assert.equals(501, r.status)
      -- reading: a file column's value is its file id (none here); image and choices content
      -- is refused; columns that are no property are not in the row
      r = api.get("sample_docs(" .. id .. ")?$select=sample_name,sample_file")
      assert.equals(200, r.status, r.body)
      assert.equals(cjson.null, r.json.sample_file)
      assert.equals(501, api.get("sample_docs(" .. id .. ")?$select=sample_picture").status)
      assert.equals(501, api.get("sample_docs?$select=sample_tags").status)
      local row = api.get("sample_docs(" .. id .. ")").json
      assert.equals("report", row.sample_name)
      for _, c in ipairs { "sample_namealias", "sample_callers", "sample_kind" } do
        assert.is_nil(row[c], c)
      end
      for _, c in ipairs { "sample_file", "sample_picture", "sample_tags" } do
        assert.equals(cjson.null, row[c], c)
      end
      -- nothing was written by the refused requests
      assert.equals("1", api.get("sample_docs/$count").body)
      assert.equals("report", api.get("sample_docs(" .. id .. ")?$select=sample_name").json.sample_name)
    end)
  end)

  describe("two managed solutions shipping the same table", function()
    local A = { unique = "LayerA", tables = { { name = "sample_shared", set = "sample_shareds", display = "Shared A",
      columns = { { name = "sample_name", primary = true, maxlen = 100 }, { name = "sample_a" } } } } }
    local B = { unique = "LayerB", tables = { { name = "sample_shared", set = "sample_shareds", display = "Shared B",
      columns = { { name = "sample_name", primary = true, maxlen = 50 }, { name = "sample_b" } },
      keys = { { name = "sample_name_key", columns = { "sample_name" } } } } } }

    local function display()
      return api.get("EntityDefinitions(LogicalName='sample_shared')").json.DisplayName.UserLocalizedLabel.Label
    end

    it("layers the later one on top and falls back when it is uninstalled", function()
      assert.equals(204, import(A).status)
      local id = api.create("sample_shareds", { sample_name = "row", sample_a = "a" })
      assert.equals(204, import(B).status)
      local cols = columns("sample_shared")
      assert.truthy(cols.sample_a and cols.sample_b)
      assert.equals(50, cols.sample_name.MaxLength)
      assert.equals("Shared B", display())
      assert.equals(400, api.post("sample_shareds", { sample_name = ("n"):rep(51) }).status)

      uninstall("LayerB")
      cols = columns("sample_shared")
      assert.is_nil(cols.sample_b)
      assert.is_nil(keys("sample_shared").sample_name_key)
      assert.equals(100, cols.sample_name.MaxLength)
      assert.equals("Shared A", display())
      assert.equals("a", api.get("sample_shareds(" .. id .. ")").json.sample_a)

      uninstall("LayerA")
      assert.equals(404, api.get("sample_shareds").status)
    end)

    it("keeps what the other still needs when the first one goes", function()
      assert.equals(204, import(A).status)
      assert.equals(204, import(B).status)
      local id = api.create("sample_shareds", { sample_name = "row", sample_a = "a", sample_b = "b" })
      uninstall("LayerA")
      local cols = columns("sample_shared")
      assert.is_nil(cols.sample_a)
      assert.truthy(cols.sample_b)
      assert.equals(50, cols.sample_name.MaxLength)
      local row = api.get("sample_shareds(" .. id .. ")").json
      assert.equals("b", row.sample_b)
      assert.is_nil(row.sample_a)
      assert.equals(id, api.get("sample_shareds(sample_name='row')?$select=sample_sharedid").json.sample_sharedid)
      uninstall("LayerB")
      assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_shared')").status)
    end)

    it("updates a solution imported again, keeping its place, its tables and their rows", function()
      assert.equals(204, import(A).status)
      assert.equals(204, import(B).status)
      local since = api.get("solutions?$select=installedon&$filter=" .. api.enc("uniquename eq 'LayerA'"))
        .json.value[1].installedon
      assert.is_string(since)
      local id = api.create("sample_shareds", { sample_name = "row", sample_a = "a" })
      local A2 = { unique = "LayerA", version = "1.1.0.0", tables = { { name = "sample_shared",
        set = "sample_shareds", display = "Shared A2", columns = { { name = "sample_name", primary = true,
        maxlen = 100 }, { name = "sample_a" }, { name = "sample_a2" } } } } }
      assert.equals(204, import(A2).status)
      local r = api.get("solutions?$select=version&$filter=" .. api.enc("uniquename eq 'LayerA'"))
      assert.equals(1, #r.json.value)
      assert.equals("1.1.0.0", r.json.value[1].version)
      assert.equals(since, api.get("solutions?$select=installedon&$filter=" .. api.enc("uniquename eq 'LayerA'"))
        .json.value[1].installedon)
      -- B stays on top: its length and display name win over the update of A
      assert.equals(50, columns("sample_shared").sample_name.MaxLength)
      assert.equals("Shared B", display())
      assert.truthy(columns("sample_shared").sample_a2)
      assert.equals("a", api.get("sample_shareds(" .. id .. ")").json.sample_a)
    end)

    it("keeps a column that a key of the remaining layer needs", function()
      local K = { unique = "KeyOnly", tables = { { name = "sample_shared", set = "sample_shareds",
        columns = { { name = "sample_name", primary = true } },
        keys = { { name = "sample_a_key", columns = { "sample_a" } } } } } }
      assert.equals(204, import(A).status)
      local rk = import(K)
      assert.equals(204, rk.status, rk.body)
      uninstall("LayerA")
      assert.truthy(columns("sample_shared").sample_a)
      assert.truthy(keys("sample_shared").sample_a_key)
    end)

    it("keeps an unmanaged solution's table when a managed one that shares it goes", function()
      local U = { unique = "Loose", managed = false, tables = A.tables }
      assert.equals(204, import(U).status)
      assert.equals(204, import(B).status)
      uninstall("LayerB")
      assert.equals(200, api.get("sample_shareds").status)
      assert.truthy(columns("sample_shared").sample_a)
    end)
  end)

  describe("import jobs", function()
    it("records each import under its ImportJobId", function()
      local job = U.new_guid()
      assert.equals(204, import({ unique = "Jobbed", tables = { { name = "sample_jobbed", set = "sample_jobbeds",
        columns = { { name = "sample_name", primary = true } } } } }, job).status)
      local r = api.get("importjobs(" .. job .. ")")
      assert.equals(200, r.status, r.body)
      local j = r.json
      assert.equals(job, j.importjobid)
      assert.equals("Jobbed", j.solutionname)
      assert.equals(100, j.progress)
      assert.equals(solution_id("Jobbed"), j.solutionid)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", j.startedon)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", j.completedon)
      assert.matches('<solutionManifest [^>]*id="Jobbed"', j.data)
      assert.matches('<result result="success"', j.data)
      assert.matches('<entity id="sample_jobbed"', j.data)
      r = api.get("importjobs(" .. job .. ")?$select=solutionname,progress")
      assert.same({ "Jobbed", 100 }, { r.json.solutionname, r.json.progress })
    end)

    it("records a failed import with its error", function()
      local job = U.new_guid()
      local r = import({ unique = "Broken", tables = { { name = "sample_broken", columns = { { name = "sample_code" } } } } }, job)
      assert.equals(400, r.status)
      local j = api.get("importjobs(" .. job .. ")").json
      assert.equals("Broken", j.solutionname)
      assert.equals(0, j.progress)
      assert.matches('result="failure"', j.data)
      assert.matches("no column is marked PrimaryName", j.data)
    end)

    it("answers 404 for an import job that does not exist", function()
      assert.equals(404, api.get("importjobs(" .. U.new_guid() .. ")").status)
    end)

    it("gives ImportSolutionAsync's ImportJobKey as the import job", function()
      local r = api.post("ImportSolutionAsync", { OverwriteUnmanagedCustomizations = false, PublishWorkflows = false,
        CustomizationFile = E.base64(fixture(UPSERT)) })
      assert.equals(200, r.status, r.body)
      local j = api.get("importjobs(" .. r.json.ImportJobKey .. ")").json
      assert.equals("UpsertSample", j.solutionname)
      assert.equals(100, j.progress)
      assert.equals(30, api.get("asyncoperations(" .. r.json.AsyncOperationId .. ")").json.statuscode)
    end)
  end)
end)
