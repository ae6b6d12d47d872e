-- The sample's solution source (scripts/solutions/ChangeTrackingSample/) is what an
-- organization could import: shaped like a current export and valid against Microsoft's
-- published customization schema (../shared/schemas/, read in place), checked with xmllint
-- after removing the elements newer than that schema (the schema README's procedure).
local solution = require "dataverse.solution"
local dv = require "dv"

local SAMPLE = "scripts/solutions/ChangeTrackingSample"
local SCHEMAS = "../shared/schemas/"
local FIXTURES = "../shared/fixtures/solutions/"

local exec = dv.exec

-- The text without the elements post-9.0-elements.txt lists (with their content).
local function strip_post_90(text)
  for name in dv.read_file(SCHEMAS .. "post-9.0-elements.txt"):gmatch("[^\r\n]+") do
    local out, pos = {}, 1
    while true do
      local s, e, after = text:find("<" .. name .. "([%s/>])", pos)
      if not s then break end
      out[#out + 1] = text:sub(pos, s - 1)
      local tag_end = assert(text:find(">", e, true), name)
      if after == "/" or text:sub(tag_end - 1, tag_end) == "/>" then
        pos = tag_end + 1
      else
        local _, close = text:find("</" .. name .. ">", tag_end, true)
        pos = assert(close, "unclosed " .. name) + 1
      end
    end
    out[#out + 1] = text:sub(pos)
    text = table.concat(out)
  end
  return text
end

-- xmllint's verdict on a customizations.xml text, after the procedure.
local function validate(text)
  local path = os.tmpname()
  dv.write_file(path, strip_post_90(text))
  local r = exec { "xmllint", "--noout", "--schema", SCHEMAS .. "CustomizationsSolution.xsd", path }
  os.remove(path)
  return r
end

local function unzip_entry(zip, entry)
  local r = exec { "unzip", "-p", zip, entry }
  assert(r.status == 0, r.stderr)
  return r.stdout
end

describe("the ChangeTrackingSample solution source", function()
  local custom = dv.read_file(SAMPLE .. "/customizations.xml")
  local manifest = dv.read_file(SAMPLE .. "/solution.xml")

  it("validates against Microsoft's customization schema", function()
    local r = validate(custom)
    assert.equals(0, r.status, r.stderr)
    assert.matches("validates", r.stderr)
  end)

  it("is checked by a procedure that catches a defect and passes a real export", function()
    local broken = custom:gsub("<IsSolutionAware>", "<IsSolutionAwre>", 1):gsub("</IsSolutionAware>", "</IsSolutionAwre>", 1)
    -- IsSolutionAware is a post-9.0 element: stripped, so the misspelt one must fail
    local r = validate(broken)
    assert.is_not.equals(0, r.status)
    assert.matches("IsSolutionAwre", r.stderr)
    r = validate((custom:gsub("<Type>nvarchar</Type>", "<Type>hologram</Type>", 1)))
    assert.is_not.equals(0, r.status)
    -- Microsoft's 2015 export passes the same procedure
    r = validate(unzip_entry(FIXTURES .. "UpsertSample_1_0_0_0_managed.zip", "customizations.xml"))
    assert.equals(0, r.status, r.stderr)
  end)

  it("keeps the manifest in solution.xml and the table in customizations.xml", function()
    assert.falsy(custom:find("<SolutionManifest", 1, true))
    assert.truthy(manifest:find("<SolutionManifest>", 1, true))
    assert.falsy(manifest:find("<Entities", 1, true))
    assert.matches('<RootComponent type="1" schemaName="sample_book" behavior="0" />', manifest, 1, true)
    assert.matches("<Publisher>.*<CustomizationPrefix>sample</CustomizationPrefix>.*<Addresses>.*"
      .. "<AddressNumber>1</AddressNumber>.*<AddressNumber>2</AddressNumber>.*</Publisher>", manifest)
    assert.matches('^<%?xml[^>]*>%s*<ImportExportXml xmlns:xsi="http://www.w3.org/2001/XMLSchema%-instance">', custom)
  end)

  it("carries what an export carries for a custom table", function()
    -- forms, views, the ribbon, and the organization-level sections
    for _, element in ipairs { "<FormXml>", '<forms type="main">', "<SavedQueries>", "<savedquery>",
                                "<RibbonDiffXml>", "<EntityKeys>", "<EntityRelationships>", "<Languages>" } do
      assert.truthy(custom:find(element, 1, true), element)
    end
    local s = solution.parse(solution.pack(SAMPLE))
    local book = s.entities[1]
    local names = {}
    for _, a in ipairs(book.attributes) do names[a.logical_name] = true end
    for _, c in ipairs { "createdby", "createdon", "modifiedby", "modifiedon", "ownerid", "owningbusinessunit",
                         "owninguser", "owningteam", "statecode", "statuscode", "sample_bookid",
                         "sample_name", "sample_bookcode", "sample_author" } do
      assert.is_true(names[c] == true, c)
    end
    assert.equals("sample_bookcode", book.keys[1].logical_name)
    local rels = {}
    for _, r in ipairs(s.relationships) do rels[r.name] = r.referenced_entity end
    assert.same({ business_unit_sample_book = "businessunit", lk_sample_book_createdby = "systemuser",
                  lk_sample_book_modifiedby = "systemuser", owner_sample_book = "owner",
                  team_sample_book = "team", user_sample_book = "systemuser" }, rels)
  end)
end)
