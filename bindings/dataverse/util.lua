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

-- "source:line: " of the first caller outside this module's own files, or "".
function U.where()
  local level = 2
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return "" end
    if info.currentline > 0 and not info.source:find("^@dataverse/") then
      return ("%s:%d: "):format(info.short_src, info.currentline)
    end
    level = level + 1
  end
end

-- True for the interpreter's Ctrl-C error ("…interrupted!").
function U.is_interrupt(err)
  return type(err) == "string" and err:match("interrupted!$") ~= nil
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

-- Edit distance (insertions, deletions, substitutions, adjacent swaps) for "did you mean".
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do
    d[i] = { [0] = i }
  end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

-- The valid name closest to name, when it is close enough to be a likely typo.
function U.nearest(name, valid)
  local best, bd
  local lname = name:lower()
  for v in pairs(valid) do
    local dist = distance(lname, v:lower())
    if not bd or dist < bd or (dist == bd and v < best) then best, bd = v, dist end
  end
  if best and (bd <= 2 or bd <= #name // 3) then return best end
  return nil
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end
U.sorted_keys = sorted_keys

local KIND_NAMES = {
  list = "string or list of strings",
  headers = "table of header names to values",
  guid = "GUID string",
  ["boolean|string"] = "boolean or string",
  ["table|userdata"] = "table or emulator",
}

local function kind_ok(kind, v)
  if kind == "integer" then
    return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v))
  elseif kind == "list" then
    if type(v) == "string" then return true end
    if type(v) ~= "table" then return false end
    for _, c in ipairs(v) do
      if type(c) ~= "string" then return false end
    end
    return true
  elseif kind == "headers" then
    if type(v) ~= "table" then return false end
    for k, x in pairs(v) do
      if type(k) ~= "string" or (type(x) ~= "string" and type(x) ~= "number") then return false end
    end
    return true
  elseif kind == "guid" then
    return core.is_guid(v)
  elseif kind:find("|", 1, true) then
    for k in kind:gmatch("[^|]+") do
      if type(v) == k then return true end
    end
    return false
  end
  return type(v) == kind
end

-- Checks a whole options table against spec (name -> kind, see U.opt): every key must be a
-- known option of the right kind. An unknown key is an error naming it and the closest valid
-- option, so a misspelled `filter` never silently widens a query. Returns opts ({} for nil).
function U.check_options(opts, spec, fname, n)
  if opts == nil then return {} end
  if type(opts) ~= "table" then typeerror(n, fname, "table or nil", opts) end
  for k, v in pairs(opts) do
    if type(k) ~= "string" then
      fail(("%s: options are named, but the options table holds a value at [%s]")
        :format(fname, tostring(k)))
    end
    local kind = spec[k]
    if not kind then
      local near = U.nearest(k, spec)
      if near then
        fail(("%s: unknown option '%s' (did you mean '%s'?)"):format(fname, k, near))
      end
      fail(("%s: unknown option '%s' (valid options: %s)")
        :format(fname, k, table.concat(sorted_keys(spec), ", ")))
    end
    if not kind_ok(kind, v) then
      fail(("bad argument #%d to '%s' (option '%s': %s expected, got %s)")
        :format(n or 1, fname, k, KIND_NAMES[kind] or kind,
          kind == "guid" and type(v) == "string" and ("'" .. v .. "'") or type(v)))
    end
  end
  return opts
end

-- One option of opts checked on its own (kind as in check_options); prefer check_options,
-- which also refuses the keys it does not know.
function U.opt(opts, key, kind, fname, n)
  local v = opts[key]
  if v ~= nil and not kind_ok(kind, v) then
    fail(("bad argument #%d to '%s' (option '%s': %s expected, got %s)")
      :format(n or 1, fname, key, KIND_NAMES[kind] or kind, type(v)))
  end
  return v
end

local BYPASS = { CustomSync = true, CustomAsync = true }

-- The request headers a call's options ask for (headers=, caller_id=, caller_object_id=,
-- bypass_custom_logic=, annotations=, if_match=), merged over base, the operation's own.
-- Names compare case-insensitively and the caller's value wins, except Prefer, whose
-- preferences are combined.
function U.request_headers(opts, base, fname, n)
  local h, names, prefer = {}, {}, {}
  local function put(name, value)
    local lower = name:lower()
    if lower == "prefer" then
      prefer[#prefer + 1] = value
      return
    end
    if names[lower] then h[names[lower]] = nil end
    names[lower] = name
    h[name] = value
  end
  for k, v in pairs(base or {}) do put(k, v) end
  local a = opts.annotations
  if a then
    if a == true then a = "*" end
    if a:find('["\r\n]') then
      fail(("bad argument #%d to '%s' (option 'annotations': a pattern such as \"*\" or " ..
        "\"OData.Community.Display.V1.FormattedValue\" expected)"):format(n or 1, fname))
    end
    put("Prefer", 'odata.include-annotations="' .. a .. '"')
  end
  if opts.caller_id then put("MSCRMCallerID", opts.caller_id) end
  if opts.caller_object_id then put("CallerObjectId", opts.caller_object_id) end
  local b = opts.bypass_custom_logic
  if b then
    if b == true then b = "CustomSync,CustomAsync" end
    for part in b:gmatch("[^,]+") do
      if not BYPASS[part:match("^%s*(.-)%s*$")] then
        fail(("bad argument #%d to '%s' (option 'bypass_custom_logic': true, \"CustomSync\", " ..
          "\"CustomAsync\" or \"CustomSync,CustomAsync\" expected, got '%s')"):format(n or 1, fname, b))
      end
    end
    put("MSCRM.BypassBusinessLogicExecution", b)
  end
  if opts.if_match then put("If-Match", opts.if_match) end
  for k, v in pairs(opts.headers or {}) do put(k, tostring(v)) end
  if #prefer > 0 then h.Prefer = table.concat(prefer, ",") end
  return next(h) and h or nil
end

-- Hands a page event to the connection's on_page hook, if any.
function U.page_event(org, ev)
  local f = org:state().on_page
  if f then
    if not ev.url:match("^https?://") then ev.url = org:base() .. ev.url end
    f(ev)
  end
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

-- Records a table's names learnt elsewhere (a metadata read that already had them), so that
-- U.entity answers from the cache instead of asking again.
function U.remember_entity(org, logical, set, id)
  if type(org.state) ~= "function" or type(logical) ~= "string" or type(set) ~= "string" or type(id) ~= "string" then
    return
  end
  local st = org:state()
  st.entities = st.entities or {}
  if st.entities[logical] then return end
  local e = { logical = logical, set = set, id = id }
  st.entities[logical] = e
  st.entities[set] = st.entities[set] or e
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
