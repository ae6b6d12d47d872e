-- Starts an in-process emulator for a spec file and talks to it over HTTP through curl.
local curl = require "curl"
local cjson = require "cjson"

local M = {}
M.token = "spec-token"

-- Starts an emulator; opts go to dataverse.emulator.start (db defaults to ":memory:").
function M.start(opts)
  local dataverse = require "dataverse"
  opts = opts or {}
  if opts.db == nil then opts.db = ":memory:" end
  local emu = dataverse.emulator.start(opts)
  local api = {}
  api.emu = emu
  api.url = emu.url
  api.base = emu.url .. "/api/data/v9.2/"
  -- api.call(method, path, {body=table|string, headers=, token=false|string})
  function api.call(method, path, o)
    o = o or {}
    local headers = { ["Accept"] = "application/json", ["OData-Version"] = "4.0", ["OData-MaxVersion"] = "4.0" }
    if o.token ~= false then headers["Authorization"] = "Bearer " .. (o.token or opts.token or M.token) end
    local body = o.body
    if type(body) == "table" then body = cjson.encode(body) end
    if body then headers["Content-Type"] = "application/json; charset=utf-8" end
    for k, v in pairs(o.headers or {}) do headers[k] = v end
    local url = path:match("^https?://") and path or api.base .. path
    return curl.request { method = method, url = url, headers = headers, body = body, curl_args = o.curl_args }
  end
  function api.get(path, o) return api.call("GET", path, o) end
  function api.post(path, body, o) o = o or {}; o.body = body; return api.call("POST", path, o) end
  function api.patch(path, body, o) o = o or {}; o.body = body; return api.call("PATCH", path, o) end
  function api.delete(path, o) return api.call("DELETE", path, o) end
  function api.stop() emu:stop() end
  -- Creates a row and returns its id (from OData-EntityId).
  function api.create(set, row)
    local r = api.post(set, row)
    assert(r.status == 204, "create " .. set .. " failed: " .. r.status .. " " .. r.body)
    return r.headers["odata-entityid"]:match("%(([%x%-]+)%)$")
  end
  -- URL-encodes a query string value.
  function api.enc(s)
    return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
  end
  return api
end

-- An in-memory emulator and a connection to it through the public API (dataverse.connect),
-- for specs of that API: `setup(function() emu, org = E.open() end)`.
function M.open()
  local dataverse = require "dataverse"
  local emu = dataverse.emulator.start { db = ":memory:" }
  return emu, dataverse.connect { emulator = emu }
end

-- Closes what M.open opened.
function M.close(emu, org)
  org:close()
  emu:stop()
end

-- ---- solution zips built in Lua (stored entries), for ImportSolution specs ----

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1)
  end
  crc_table[i] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8)
  end
  return c ~ 0xFFFFFFFF
end

-- A zip archive with the given {name=, data=} entries, uncompressed.
function M.zip(entries)
  local out, central, offset = {}, {}, 0
  for _, e in ipairs(entries) do
    local crc = crc32(e.data)
    local local_header = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 20, 0, 0, 0, 0,
      crc, #e.data, #e.data, #e.name, 0) .. e.name
    out[#out + 1] = local_header .. e.data
    central[#central + 1] = string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50, 20, 20,
      0, 0, 0, 0, crc, #e.data, #e.data, #e.name, 0, 0, 0, 0, 0, offset) .. e.name
    offset = offset + #local_header + #e.data
  end
  local cd = table.concat(central)
  return table.concat(out) .. cd .. string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0,
    #entries, #entries, #cd, offset, 0)
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chunk = {}
    for j = 3, 0, -1 do
      local idx = (n >> (j * 6)) & 63
      chunk[#chunk + 1] = b64chars:sub(idx + 1, idx + 1)
    end
    if not b then chunk[3], chunk[4] = "=", "=" elseif not c then chunk[4] = "=" end
    out[#out + 1] = table.concat(chunk)
  end
  return table.concat(out)
end

local function attribute_xml(c)
  local mask = c.primary_name and "PrimaryName|ValidForAdvancedFind|ValidForForm|ValidForGrid"
    or "ValidForAdvancedFind|ValidForForm|ValidForGrid"
  return ([[
            <attribute PhysicalName="%s">
              <Type>%s</Type>
              <Name>%s</Name>
              <LogicalName>%s</LogicalName>
              <RequiredLevel>%s</RequiredLevel>
              <DisplayMask>%s</DisplayMask>
              %s
              <displaynames><displayname description="%s" languagecode="1033" /></displaynames>
            </attribute>
]]):format(c.name, c.type, c.name, c.name, c.required and "required" or "none", mask,
    c.type == "nvarchar" and "<MaxLength>100</MaxLength>" or "", c.name)
end

-- solution.xml + customizations.xml for tables = {{name=, set=, ct=, columns={{name=, type=}},
-- keys={{name=, columns={...}}}}}; the first nvarchar column is the primary name.
function M.solution_files(o)
  local ents = {}
  for _, t in ipairs(o.tables or {}) do
    local attrs = { attribute_xml { name = t.name .. "id", type = "primarykey", required = true } }
    for i, c in ipairs(t.columns or {}) do
      attrs[#attrs + 1] = attribute_xml { name = c.name, type = c.type or "nvarchar", primary_name = i == 1 }
    end
    local keys = {}
    for _, k in ipairs(t.keys or {}) do
      local cols = {}
      for _, c in ipairs(k.columns) do cols[#cols + 1] = "<AttributeName>" .. c .. "</AttributeName>" end
      keys[#keys + 1] = ("<EntityKey><Name>%s</Name><LogicalName>%s</LogicalName><EntityKeyAttributes>%s</EntityKeyAttributes></EntityKey>")
        :format(k.name, k.name, table.concat(cols))
    end
    ents[#ents + 1] = ([[
    <Entity>
      <Name LocalizedName="%s" OriginalName="%s">%s</Name>
      <EntityInfo>
        <entity Name="%s">
          <LocalizedNames><LocalizedName description="%s" languagecode="1033" /></LocalizedNames>
          <attributes>
%s          </attributes>
          <EntityKeys>%s</EntityKeys>
          <EntitySetName>%s</EntitySetName>
          <ChangeTrackingEnabled>%s</ChangeTrackingEnabled>
        </entity>
      </EntityInfo>
    </Entity>
]]):format(t.name, t.name, t.name, t.name, t.name, table.concat(attrs), table.concat(keys), t.set,
      t.ct == false and "0" or "1")
  end
  local head = '<?xml version="1.0" encoding="utf-8"?>\n<ImportExportXml version="9.2" SolutionPackageVersion="9.2" languagecode="1033">\n'
  local solution = head .. ([[
  <SolutionManifest>
    <UniqueName>%s</UniqueName>
    <LocalizedNames><LocalizedName description="%s" languagecode="1033" /></LocalizedNames>
    <Version>%s</Version>
    <Managed>%s</Managed>
    <Publisher><UniqueName>specpublisher</UniqueName><CustomizationPrefix>sample</CustomizationPrefix></Publisher>
  </SolutionManifest>
</ImportExportXml>
]]):format(o.unique, o.unique, o.version or "1.0.0.0", o.managed == false and "0" or "1")
  local custom = head .. "  <Entities>\n" .. table.concat(ents) .. "  </Entities>\n</ImportExportXml>\n"
  return {
    { name = "[Content_Types].xml", data = '<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/octet-stream" /></Types>' },
    { name = "solution.xml", data = solution },
    { name = "customizations.xml", data = custom },
  }
end

-- The ImportSolution body for a solution description (see solution_files).
function M.import_body(o)
  return {
    OverwriteUnmanagedCustomizations = false,
    PublishWorkflows = false,
    CustomizationFile = M.base64(M.zip(M.solution_files(o))),
    ImportJobId = "00000000-0000-0000-0000-0000000000aa",
  }
end

-- The books table of the change tracking sample.
M.books = {
  unique = "ChangeTrackingSample",
  tables = { {
    name = "sample_book", set = "sample_books",
    columns = { { name = "sample_name" }, { name = "sample_bookcode" }, { name = "sample_author" },
      { name = "sample_pages", type = "int" }, { name = "sample_edition", type = "int" } },
    keys = { { name = "sample_bookcode", columns = { "sample_bookcode" } },
      { name = "sample_titleedition", columns = { "sample_author", "sample_edition" } } },
  } },
}

return M
