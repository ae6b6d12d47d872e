-- A table, its columns, an alternate key and a relationship created over the Web API (as
-- "Create and update table definitions using the Web API" shows), then used by the
-- shipped scripts exactly as they use an imported table: the change tracking sample and
-- the SQLite mirror, each a child dvlua process talking to the emulator over HTTP.
local E = require "emulator"
local dv = require "dv"

local TOKEN = "definitions-scripts-token"

local function label(text)
  return { LocalizedLabels = { { Label = text, LanguageCode = 1033 } } }
end

local function column(schema, len)
  return { ["@odata.type"] = "Microsoft.Dynamics.CRM.StringAttributeMetadata", SchemaName = schema,
    DisplayName = label(schema), RequiredLevel = { Value = "None" }, MaxLength = len or 100 }
end

-- The sample's books table, built over the Web API inside an unmanaged solution of the
-- sample's name (so the sample finds its solution installed and skips the import).
local function build_books(api)
  local function ok(r) assert(r.status == 204, r.status .. " " .. r.body) return r end
  api.create("solutions", { uniquename = "ChangeTrackingSample", friendlyname = "Change tracking sample",
    version = "1.0.0.0", ismanaged = false })
  local in_solution = { headers = { ["MSCRM.SolutionUniqueName"] = "ChangeTrackingSample" } }
  ok(api.post("EntityDefinitions", {
    ["@odata.type"] = "Microsoft.Dynamics.CRM.EntityMetadata",
    SchemaName = "sample_Book", DisplayName = label("Book"), DisplayCollectionName = label("Books"),
    OwnershipType = "UserOwned", IsActivity = false, HasNotes = false, HasActivities = false,
    ChangeTrackingEnabled = true,
    Attributes = { { ["@odata.type"] = "Microsoft.Dynamics.CRM.StringAttributeMetadata",
      SchemaName = "sample_Name", IsPrimaryName = true, MaxLength = 100, DisplayName = label("Name"),
      RequiredLevel = { Value = "None" } } },
  }, in_solution))
  local attrs = "EntityDefinitions(LogicalName='sample_book')/Attributes"
  ok(api.post(attrs, column("sample_BookCode", 20), in_solution))
  ok(api.post(attrs, column("sample_Author"), in_solution))
  ok(api.post("EntityDefinitions(LogicalName='sample_book')/Keys",
    { SchemaName = "sample_bookcode", DisplayName = label("Book code"), KeyAttributes = { "sample_bookcode" } }, in_solution))
  ok(api.post("RelationshipDefinitions", {
    ["@odata.type"] = "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
    SchemaName = "sample_contact_sample_book", ReferencedEntity = "contact", ReferencedAttribute = "contactid",
    ReferencingEntity = "sample_book",
    Lookup = { ["@odata.type"] = "Microsoft.Dynamics.CRM.LookupAttributeMetadata", SchemaName = "sample_ReaderId",
      DisplayName = label("Reader") },
  }, in_solution))
end

describe("scripts on a table created over the Web API", function()
  local api

  before_each(function() api = E.start { token = TOKEN, key_delay = 0.2 } end)
  after_each(function() api.stop() end)

  local function run(args)
    return dv.run(args, { env = { DATAVERSE_URL = api.url, DATAVERSE_TOKEN = TOKEN } })
  end

  it("runs the change tracking sample: rows, key upserts and deletes, change tracking", function()
    build_books(api)
    local r = run { "scripts/change_tracking_sample.lua", "--keep" }
    assert.equals(0, r.status, r.stderr .. r.stdout)
    assert.matches("Solution ChangeTrackingSample 1%.0%.0%.0 is already installed", r.stdout)
    assert.matches("Alternate key sample_bookcode:.* Active", r.stdout)
    assert.matches("Books BookCode0%-BookCode9: 10 created, 0 skipped", r.stdout)
    assert.matches("Initial synchronization: 10 rows", r.stdout)
    assert.matches("11 new or updated, 1 deleted", r.stdout)
    assert.matches("Updated BookCode0 by its alternate key", r.stdout)
    -- what the sample left behind, read over the Web API
    local q = api.get("sample_books?$select=sample_bookcode&$count=true")
    assert.equals(19, q.json["@odata.count"])
    assert.equals(404, api.get("sample_books(sample_bookcode='BookCode1')").status)
    assert.equals("Demo Book 0 updated", api.get("sample_books(sample_bookcode='BookCode0')").json.sample_name)
    -- the lookup made by the relationship takes a reader
    local c = api.create("contacts", { firstname = "Rae", lastname = "Reader" })
    assert.equals(204, api.patch("sample_books(sample_bookcode='BookCode2')",
      { ["sample_readerid@odata.bind"] = "/contacts(" .. c .. ")" }).status)
    assert.equals(c, api.get("sample_books(sample_bookcode='BookCode2')?$select=_sample_readerid_value").json._sample_readerid_value)
    -- ... and under its SchemaName, the navigation property name Dataverse gives a custom lookup
    local c2 = api.create("contacts", { firstname = "Sam", lastname = "Schema" })
    local r2 = api.patch("sample_books(sample_bookcode='BookCode2')",
      { ["sample_ReaderId@odata.bind"] = "/contacts(" .. c2 .. ")" })
    assert.equals(204, r2.status, r2.body)
    assert.equals(c2, api.get("sample_books(sample_bookcode='BookCode2')?$select=_sample_readerid_value").json._sample_readerid_value)
    -- a system lookup stays case-sensitive, as in Dataverse
    assert.equals(400, api.post("accounts", { name = "Case", ["PrimaryContactId@odata.bind"] = "/contacts(" .. c .. ")" }).status)
  end)

  it("mirrors the table into SQLite with sync_sqlite.lua, then only what changed", function()
    build_books(api)
    for i = 1, 5 do api.create("sample_books", { sample_name = "Book " .. i, sample_bookcode = "C" .. i, sample_author = "A" }) end
    local db = os.tmpname()
    os.remove(db)
    local args = { "scripts/sync_sqlite.lua", "--table", "sample_book", "--db", db,
      "--columns", "sample_name,sample_bookcode,sample_author" }
    local r = run(args)
    assert.equals(0, r.status, r.stderr .. r.stdout)
    local sqlite = function(sql)
      local p = io.popen("sqlite3 " .. dv.quote(db) .. " " .. dv.quote(sql))
      local out = p:read("a")
      p:close()
      return (out:gsub("%s+$", ""))
    end
    local mirror_table = sqlite("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%book%'")
    assert.truthy(mirror_table ~= "", "no mirror table: " .. sqlite("SELECT name FROM sqlite_master"))
    assert.equals("5", sqlite("SELECT count(*) FROM " .. mirror_table))
    -- change the table over the Web API (by key), run again: the mirror follows
    assert.equals(204, api.patch("sample_books(sample_bookcode='C1')", { sample_name = "Renamed" }).status)
    assert.equals(204, api.delete("sample_books(sample_bookcode='C2')").status)
    r = run(args)
    assert.equals(0, r.status, r.stderr .. r.stdout)
    assert.equals("4", sqlite("SELECT count(*) FROM " .. mirror_table))
    assert.equals("1", sqlite("SELECT count(*) FROM " .. mirror_table .. " WHERE sample_name = 'Renamed'"))
    os.remove(db)
  end)
end)
