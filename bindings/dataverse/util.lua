-- Shared pieces of the operations: argument checks with luaL_argerror-style messages,
-- table name resolution (logical name -> entity set name, cached per connection), errors.
local core = require "dataverse.core"

local U = {}

-- Raises msg with the position of the first caller outside this module's own files, the
-- way luaL_argerror points at the script line that made the bad call.
local function fail(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or not info.source:find("^@dataverse/") then break end
    level = level + 1
  end
  error(msg, level)
end

-- Raises "bad argument #n to 'fname' (msg)".
function U.argerror(n, fname, msg)
  fail(("bad argument #%d to '%s' (%s)"):format(n, fname, msg))
end

local function typeerror(n, fname, expected, v)
  fail(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, expected, type(v)))
end

function U.check_string(v, n, fname)
  if type(v) ~= "string" or v == "" then typeerror(n, fname, "non-empty string", v) end
  return v
end

function U.check_table(v, n, fname)
  if type(v) ~= "table" then typeerror(n, fname, "table", v) end
  return v
end

function U.opt_table(v, n, fname)
  if v == nil then return {} end
  if type(v) ~= "table" then typeerror(n, fname, "table or nil", v) end
  return v
end

-- Checks an option table field; kind is "string", "number", "integer", "boolean", "table",
-- "function" or "list" (a table of strings).
function U.opt(opts, key, kind, fname, n)
  local v = opts[key]
  if v == nil then return nil end
  local ok
  if kind == "integer" then
    ok = math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v))
  elseif kind == "list" then
    ok = type(v) == "string" or type(v) == "table"
    if type(v) == "table" then
      for _, c in ipairs(v) do ok = ok and type(c) == "string" end
    end
  else
    ok = type(v) == kind
  end
  if not ok then
    fail(("bad argument #%d to '%s' (option '%s': %s expected, got %s)")
      :format(n or 1, fname, key, kind == "list" and "string or list of strings" or kind, type(v)))
  end
  return v
end

-- Builds an error table with the dataverse.error metatable.
function U.new_error(status, code, message)
  return core.error { status = status or 0, code = code or "", message = message }
end

function U.raise(status, code, message)
  error(U.new_error(status, code, message), 2)
end

local NON_ROW = { ["@odata.context"] = true }

-- Drops the response envelope fields a row carries (keeps @odata.etag and annotations).
function U.clean_row(row)
  for k in pairs(NON_ROW) do row[k] = nil end
  return row
end

-- {"a","b"} or "a,b" -> "a,b", checking each name.
function U.columns(v, fname, n)
  if type(v) == "string" then v = { v } end
  local out = {}
  for i, c in ipairs(v) do
    for name in c:gmatch("[^,%s]+") do
      if not core.is_identifier(name) then
        fail(("bad argument #%d to '%s' (columns[%d]: '%s' is not a column name)")
          :format(n or 1, fname, i, name))
      end
      out[#out + 1] = name
    end
  end
  return table.concat(out, ",")
end

local function metadata_list(org)
  local st = org:state()
  if not st.all_sets then
    local _, _, body = org:call("GET",
      "EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute")
    local by_set = {}
    for _, e in ipairs(body and body.value or {}) do
      if type(e.EntitySetName) == "string" then by_set[e.EntitySetName] = e end
    end
    st.all_sets = by_set
  end
  return st.all_sets
end

-- Resolves a table named by logical name (or entity set name) to its metadata:
-- {logical=, set=, id=primary id attribute}. Cached per connection.
function U.entity(org, name, fname, n)
  if type(name) ~= "string" or not core.is_identifier(name) then
    fail(("bad argument #%d to '%s' (table name expected, got %s)")
      :format(n or 1, fname, type(name) == "string" and ("'" .. name .. "'") or type(name)))
  end
  local st = org:state()
  st.entities = st.entities or {}
  local e = st.entities[name]
  if e then return e end
  local ok, err = pcall(function()
    local _, _, body = org:call("GET", "EntityDefinitions(LogicalName="
      .. core.pct(core.literal(name), "path") .. ")?$select=LogicalName,EntitySetName,PrimaryIdAttribute")
    e = body
  end)
  if not ok then
    if type(err) ~= "table" or err.status ~= 404 then error(err, 0) end
    e = metadata_list(org)[name]
    if not e then
      U.raise(404, "0x80040217", ("no table named '%s' (neither a logical name nor an entity set name)"):format(name))
    end
  end
  e = { logical = e.LogicalName, set = e.EntitySetName, id = e.PrimaryIdAttribute }
  st.entities[name] = e
  st.entities[e.logical] = e
  st.entities[e.set] = e
  return e
end

-- The "(…)" part of a row address, checking the argument.
function U.key(v, n, fname)
  local k, msg = core.key(v)
  if not k then fail(("bad argument #%d to '%s' (%s)"):format(n, fname, msg)) end
  return "(" .. k .. ")"
end

-- A query string from ordered {name, value} pairs (nil values skipped).
U.query = core.query

function U.new_guid()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(16)
  if f then f:close() end
  if not b or #b ~= 16 then
    local t = {}
    for i = 1, 16 do t[i] = string.char(math.random(0, 255)) end
    b = table.concat(t)
  end
  local x = { b:byte(1, 16) }
  x[7] = (x[7] & 0x0f) | 0x40
  x[9] = (x[9] & 0x3f) | 0x80
  return ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"):format(table.unpack(x))
end

return U
