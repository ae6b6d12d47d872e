-- Solution files offline: the sample's source folder packed with libzip and read back by the
-- same parser the emulator's ImportSolution uses (dataverse.solution).
local solution = require "dataverse.solution"
local dv = require "dv"

local SAMPLE = "scripts/solutions/ChangeTrackingSample"
local FILES = { "solution.xml", "customizations.xml", "[Content_Types].xml" }

local function q(s) return dv.quote(s) end

-- A copy of the sample folder in a fresh temporary directory; `changes` maps a file name to
-- a function(text) -> new text, or to false to leave the file out.
local temp_dirs = {}
local function sample_copy(changes)
  changes = changes or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  temp_dirs[#temp_dirs + 1] = dir
  for _, name in ipairs(FILES) do
    local change = changes[name]
    if change ~= false then
      local text = dv.read_file(SAMPLE .. "/" .. name)
      assert(#text > 0, "cannot read " .. name)
      if change then text = change(text) end
      dv.write_file(dir .. "/" .. name, text)
    end
  end
  return dir
end

-- Replaces exactly one occurrence of a plain string, so that a spec cannot pass because its
-- edit silently matched nothing.
local function replace(text, old, new)
  local i, j = text:find(old, 1, true)
  assert(i, "not found: " .. old)
  assert(not text:find(old, j + 1, true), "found twice: " .. old)
  return text:sub(1, i - 1) .. new .. text:sub(j + 1)
end

local function customizations(old, new)
  return sample_copy { ["customizations.xml"] = function(t) return replace(t, old, new) end }
end

local function parse_error(dir)
  local ok, err = pcall(solution.parse, solution.pack(dir))
  assert.is_false(ok, "the solution was accepted")
  return err
end

local function line_of(text, needle)
  local i = assert(text:find(needle, 1, true), needle)
  local _, n = text:sub(1, i):gsub("\n", "")
  return n + 1
end

teardown(function()
  for _, dir in ipairs(temp_dirs) do os.execute("rm -rf " .. q(dir)) end
end)

describe("solution.pack", function()
  it("packs the sample folder into a zip holding the three solution files", function()
    local zip = solution.pack(SAMPLE)
    assert.equals("PK\3\4", zip:sub(1, 4))
    for _, name in ipairs(FILES) do
      assert.truthy(zip:find(name, 1, true), name .. " not in the zip")
    end
  end)

  it("packs the same bytes twice from unchanged files", function()
    assert.equals(solution.pack(SAMPLE), solution.pack(SAMPLE))
  end)

  it("packs files in subfolders and leaves out hidden files", function()
    local dir = sample_copy()
    assert(os.execute("mkdir -p " .. q(dir .. "/WebResources")))
    dv.write_file(dir .. "/WebResources/sample_logo.svg", "<svg/>")
    dv.write_file(dir .. "/.DS_Store", "junk")
    local zip = solution.pack(dir)
    assert.truthy(zip:find("WebResources/sample_logo.svg", 1, true))
    assert.falsy(zip:find(".DS_Store", 1, true))
    assert.equals("ChangeTrackingSample", solution.parse(zip).unique_name)
  end)

  it("names the missing file", function()
    for _, name in ipairs(FILES) do
      local dir = sample_copy { [name] = false }
      local ok, err = pcall(solution.pack, dir)
      assert.is_false(ok)
      assert.equals(dir .. ": " .. name .. " missing", err)
    end
  end)

  it("names a folder that does not exist", function()
    local ok, err = pcall(solution.pack, SAMPLE .. "-nowhere")
    assert.is_false(ok)
    assert.equals("solution folder " .. SAMPLE .. "-nowhere: No such file or directory", err)
  end)

  it("refuses a file where a folder is expected", function()
    local ok, err = pcall(solution.pack, SAMPLE .. "/solution.xml")
    assert.is_false(ok)
    assert.equals(SAMPLE .. "/solution.xml: not a folder", err)
  end)
end)

describe("solution.read", function()
  it("reads a folder or a zip file to the same solution", function()
    local zip = solution.pack(SAMPLE)
    local path = dv.write_file(os.tmpname(), zip)
    finally(function() os.remove(path) end)
    assert.equals(zip, solution.read(path))
    assert.same(solution.parse(zip), solution.parse(solution.read(SAMPLE)))
  end)

  it("refuses a file that is not a zip archive", function()
    local ok, err = pcall(solution.read, SAMPLE .. "/solution.xml")
    assert.is_false(ok)
    assert.equals(SAMPLE .. "/solution.xml: not a zip archive", err)
  end)
end)

describe("solution.parse of the ChangeTrackingSample solution", function()
  local s = solution.parse(solution.pack(SAMPLE))

  it("reads the manifest", function()
    assert.equals("ChangeTrackingSample", s.unique_name)
    assert.equals("Change Tracking Sample", s.friendly_name)
    assert.equals("1.0.0.0", s.version)
    assert.is_true(s.managed)
    assert.equals("sample", s.publisher_prefix)
  end)

  it("reads the Book table", function()
    assert.equals(1, #s.entities)
    local book = s.entities[1]
    assert.equals("sample_book", book.logical_name)
    assert.equals("sample_books", book.entity_set_name)
    assert.equals("Book", book.display_name)
    assert.equals("sample_bookid", book.primary_id)
    assert.equals("sample_name", book.primary_name)
    assert.is_true(book.change_tracking)
  end)

  it("reads every column with its type, length and requirement", function()
    local columns = {}
    for _, a in ipairs(s.entities[1].attributes) do columns[a.logical_name] = a end
    assert.same({
      sample_author = { logical_name = "sample_author", display_name = "Author", type = "String",
                        max_length = 100, required = false },
      sample_bookcode = { logical_name = "sample_bookcode", display_name = "Book Code",
                          type = "String", max_length = 100, required = true },
      sample_bookid = { logical_name = "sample_bookid", display_name = "Book",
                        type = "Uniqueidentifier", required = true },
      sample_name = { logical_name = "sample_name", display_name = "Name", type = "String",
                      max_length = 100, required = true },
    }, { sample_author = columns.sample_author, sample_bookcode = columns.sample_bookcode,
         sample_bookid = columns.sample_bookid, sample_name = columns.sample_name })
  end)

  it("reads the system columns an export carries, with their lookups' targets", function()
    local columns = {}
    for _, a in ipairs(s.entities[1].attributes) do columns[a.logical_name] = a end
    local expected = {
      createdby = "Lookup", createdon = "DateTime", createdonbehalfby = "Lookup",
      importsequencenumber = "Integer", modifiedby = "Lookup", modifiedon = "DateTime",
      modifiedonbehalfby = "Lookup", overriddencreatedon = "DateTime", ownerid = "Owner",
      owningbusinessunit = "Lookup", owningteam = "Lookup", owninguser = "Lookup",
      statecode = "State", statuscode = "Status", timezoneruleversionnumber = "Integer",
      utcconversiontimezonecode = "Integer",
      sample_author = "String", sample_bookcode = "String", sample_bookid = "Uniqueidentifier",
      sample_name = "String",
    }
    local types = {}
    for name, a in pairs(columns) do types[name] = a.type end
    assert.same(expected, types)
    assert.equals("systemuser", columns.createdby.target)
    assert.equals("businessunit", columns.owningbusinessunit.target)
    assert.equals("team", columns.owningteam.target)
  end)

  it("reads the relationships of the table's lookups", function()
    local names = {}
    for _, r in ipairs(s.relationships) do
      names[r.name] = r.referencing_entity .. "." .. r.referencing_attribute .. " -> " .. r.referenced_entity
    end
    assert.equals("sample_book.createdby -> systemuser", names.lk_sample_book_createdby)
    assert.equals("sample_book.owningbusinessunit -> businessunit", names.business_unit_sample_book)
  end)

  it("reads the alternate key", function()
    assert.same({ { logical_name = "sample_bookcode", display_name = "Book Code",
                    attributes = { "sample_bookcode" } } }, s.entities[1].keys)
  end)
end)

describe("solution.parse", function()
  it("reads an unmanaged solution", function()
    local dir = sample_copy { ["solution.xml"] = function(t)
      return replace(t, "<Managed>1</Managed>", "<Managed>0</Managed>")
    end }
    assert.is_false(solution.parse(solution.pack(dir)).managed)
  end)

  it("derives the entity set name when EntitySetName is absent", function()
    local dir = sample_copy { ["customizations.xml"] = function(t)
      t = replace(t, "<EntitySetName>sample_books</EntitySetName>", "")
      t = replace(t, ">sample_Book</Name>", ">sample_Category</Name>")
      return replace(t, '<entity Name="sample_Book">', '<entity Name="sample_Category">')
    end }
    local e = solution.parse(solution.pack(dir)).entities[1]
    assert.equals("sample_category", e.logical_name)
    assert.equals("sample_categories", e.entity_set_name)
  end)

  it("adds the primary key column when the table does not list it", function()
    local dir = customizations("<Type>primarykey</Type>\n              <Name>sample_bookid</Name>\n"
      .. "              <LogicalName>sample_bookid</LogicalName>",
      "<Type>virtual</Type>\n              <Name>sample_bookguid</Name>\n"
      .. "              <LogicalName>sample_bookguid</LogicalName>")
    local e = solution.parse(solution.pack(dir)).entities[1]
    assert.equals("sample_bookid", e.primary_id)
    local types = {}
    for _, a in ipairs(e.attributes) do types[a.logical_name] = a.type end
    assert.equals("Uniqueidentifier", types.sample_bookid)
  end)

  it("gives a lookup the target named by its relationship", function()
    local lookup = [[
            <attribute PhysicalName="sample_PublisherId">
              <Type>lookup</Type>
              <Name>sample_publisherid</Name>
              <LogicalName>sample_publisherid</LogicalName>
              <RequiredLevel>none</RequiredLevel>
              <displaynames><displayname description="Publisher" languagecode="1033" /></displaynames>
            </attribute>
          </attributes>]]
    local relationship = [[
  <EntityRelationships>
    <EntityRelationship Name="sample_account_sample_book">
      <EntityRelationshipType>OneToMany</EntityRelationshipType>
      <ReferencingEntityName>sample_Book</ReferencingEntityName>
      <ReferencedEntityName>Account</ReferencedEntityName>
      <ReferencingAttributeName>sample_PublisherId</ReferencingAttributeName>
    </EntityRelationship>]]
    local dir = sample_copy { ["customizations.xml"] = function(t)
      t = replace(t, "          </attributes>", lookup)
      return replace(t, "  <EntityRelationships>", relationship)
    end }
    local found
    for _, a in ipairs(solution.parse(solution.pack(dir)).entities[1].attributes) do
      if a.logical_name == "sample_publisherid" then found = a end
    end
    assert.same({ logical_name = "sample_publisherid", display_name = "Publisher",
                  type = "Lookup", required = false, target = "account" }, found)
  end)

  it("says when the bytes are not a zip archive", function()
    local ok, err = pcall(solution.parse, "this is not a zip")
    assert.is_false(ok)
    assert.equals("not a zip archive", err)
  end)

  it("says when the archive is damaged", function()
    local zip = solution.pack(SAMPLE)
    local ok, err = pcall(solution.parse, zip:sub(1, #zip - 30))
    assert.is_false(ok)
    assert.matches("^damaged zip archive: ", err)
  end)

  it("says when an entry's data is corrupt", function()
    local zip = solution.pack(SAMPLE)
    -- the first entry is [Content_Types].xml; customizations.xml's data follows its header
    local at = select(2, zip:find("customizations.xml", 1, true)) + 200
    local byte = zip:byte(at)
    zip = zip:sub(1, at - 1) .. string.char((byte + 1) % 256) .. zip:sub(at + 1)
    local ok, err = pcall(solution.parse, zip)
    assert.is_false(ok)
    assert.matches("^customizations%.xml: ", err)
  end)

  it("says when solution.xml is missing", function()
    -- Renaming the entry in both zip headers keeps the archive valid without solution.xml.
    local zip, n = solution.pack(SAMPLE):gsub("solution%.xml", "solutiox.xml")
    assert.equals(2, n)
    local ok, err = pcall(solution.parse, zip)
    assert.is_false(ok)
    assert.equals("solution.xml missing", err)
  end)

  it("says when customizations.xml is missing", function()
    local zip, n = solution.pack(SAMPLE):gsub("customizations%.xml", "customizationz.xml")
    assert.equals(2, n)
    local ok, err = pcall(solution.parse, zip)
    assert.is_false(ok)
    assert.equals("customizations.xml missing", err)
  end)

  it("gives the file and line of broken XML", function()
    local broken = "<ChangeTrackingEnabled>1</ChangeTrackingEnable>"
    local dir = customizations("<ChangeTrackingEnabled>1</ChangeTrackingEnabled>", broken)
    local line = line_of(dv.read_file(dir .. "/customizations.xml"), broken)
    assert.equals("customizations.xml: line " .. line .. ": mismatched tag", parse_error(dir))
  end)

  it("says which key names an unknown column", function()
    local dir = customizations("<AttributeName>sample_bookcode</AttributeName>",
                               "<AttributeName>sample_isbn</AttributeName>")
    assert.equals("customizations.xml: entity sample_book: key sample_bookcode names unknown "
                  .. "column sample_isbn", parse_error(dir))
  end)

  it("refuses a document type declaration, so no entity can expand", function()
    local laughs = '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
      .. '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    local dir = customizations('<?xml version="1.0" encoding="utf-8"?>', laughs)
    assert.equals("customizations.xml: line 2: a DOCTYPE is not allowed", parse_error(dir))
  end)

  it("refuses a solution without a unique name or version", function()
    local dir = sample_copy { ["solution.xml"] = function(t)
      return replace(t, "<UniqueName>ChangeTrackingSample</UniqueName>", "")
    end }
    assert.equals("solution.xml: SolutionManifest has no UniqueName", parse_error(dir))
    dir = sample_copy { ["solution.xml"] = function(t)
      return replace(t, "<Version>1.0.0.0</Version>", "<Version>one</Version>")
    end }
    assert.matches("^solution%.xml: line %d+: Version 'one' is not a version number", parse_error(dir))
  end)

  it("refuses an unexpected root element", function()
    local dir = sample_copy { ["solution.xml"] = function(t)
      t = replace(t, "<ImportExportXml ", "<Solution ")
      return replace(t, "</ImportExportXml>", "</Solution>")
    end }
    assert.equals("solution.xml: line 2: root element is <Solution>, expected <ImportExportXml>",
                  parse_error(dir))
  end)

  it("refuses a column type it does not know", function()
    local dir = customizations("<Type>nvarchar</Type>\n              <Name>sample_author</Name>",
                               "<Type>hologram</Type>\n              <Name>sample_author</Name>")
    assert.matches("^customizations%.xml: line %d+: attribute sample_author: unsupported type "
                   .. "'hologram'$", parse_error(dir))
  end)

  it("reads a table without a primary name column (the import decides)", function()
    local dir = customizations("<DisplayMask>PrimaryName|", "<DisplayMask>")
    local e = solution.parse(solution.pack(dir)).entities[1]
    assert.is_nil(e.primary_name)
    assert.is_true(e.defines_table)
  end)

  it("refuses names that could not be SQL identifiers", function()
    local dir = customizations("<LogicalName>sample_author</LogicalName>",
                               "<LogicalName>sample_author\"; drop</LogicalName>")
    assert.matches("attribute 'sample_author\"; drop' is not a valid logical name",
                   parse_error(dir))
  end)

  it("refuses a column defined twice", function()
    local dir = customizations("<LogicalName>sample_author</LogicalName>",
                               "<LogicalName>sample_name</LogicalName>")
    assert.matches("entity sample_book: attribute sample_name is defined twice", parse_error(dir))
  end)

  it("stops reading an entry past 64 MiB uncompressed", function()
    local dir = sample_copy()
    local text = dv.read_file(dir .. "/customizations.xml")
    local at = assert(text:find("<Roles />", 1, true))
    local f = assert(io.open(dir .. "/customizations.xml", "wb"))
    f:write(text:sub(1, at - 1), "<Roles>")
    local mib = string.rep(" ", 1024 * 1024)
    for _ = 1, 65 do f:write(mib) end
    f:write("</Roles>", text:sub(at + #"<Roles />"))
    f:close()
    assert.equals("customizations.xml: larger than 64 MiB uncompressed", parse_error(dir))
  end)
end)
