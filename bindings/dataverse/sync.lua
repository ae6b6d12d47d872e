-- dataverse.sync: keep SQL tables in step with Dataverse tables through change tracking, one
-- table or a whole organization at once. Used by scripts/sync.lua, sync_sqlite.lua,
-- sync_postgres.lua (and the plumbing by changes_jsonl.lua); docs/SYNC.md has the long form.
--
--   local sync = require "dataverse.sync"
--   local store = sync.sqlite("mirror.sqlite")        -- or sync.postgres(dsn)
--   local summary = sync.mirror(org, store, {table = "account", columns = {…}})
--   local summaries = sync.mirror_all(org, store, {{table = "account"}, {table = "contact"}}, {parallel = 4})
--
-- Exactness, in short: every page is committed in one transaction together with the link
-- to the next page (its continuation), into a staging table: `<t>__dvnew` for a first load
-- or reload, `<t>__dvdelta` for the changes since the saved token. The last page's
-- transaction also applies the staging table to the mirror (swap, or upsert and delete)
-- and saves the new token. A stopped run therefore leaves the mirror at the last completed
-- run, and its staging table and continuation let the next run go on from the last
-- committed page; when the server refuses the continuation, that stage starts again.
local S = require "dataverse.sync_store"

local M = {}

local unpack = table.unpack

local function json()
  return require("dataverse").json
end

-- Wall clock with sub-second resolution where Linux offers it (for rows per second).
local function now()
  local f = io.open("/proc/uptime", "r")
  if f then
    local s = f:read("n")
    f:close()
    if s then return s end
  end
  return os.time()
end
M.now = now

-- JSON null, once known. No pcall in per-row paths: a Ctrl-C arriving inside a pcall would
-- be swallowed instead of stopping the run.
local NULL
local function is_null(v)
  if v == nil then return true end
  if NULL == nil then NULL = json().null or require("cjson").null or false end
  return v == NULL
end
M.is_null = is_null

-- Errors from this module are plain strings: what was wrong, in words a user acts on.
local function fail(fmt, ...)
  error(string.format(fmt, ...), 0)
end

function M.is_interrupt(err)
  return type(err) == "string" and err:match("interrupted!$") ~= nil
end

local ident = S.ident
M.ident = ident

---------------------------------------------------------------------------------------------
-- Types. Dataverse AttributeType -> {sqlite type, postgres type, value kind}.
---------------------------------------------------------------------------------------------
local TYPES = {
  String = { "TEXT", "text", "text" },
  Memo = { "TEXT", "text", "text" },
  EntityName = { "TEXT", "text", "text" },
  Integer = { "INTEGER", "integer", "int" },
  Picklist = { "INTEGER", "integer", "int" },
  State = { "INTEGER", "integer", "int" },
  Status = { "INTEGER", "integer", "int" },
  BigInt = { "INTEGER", "bigint", "int" },
  Decimal = { "REAL", "numeric", "dec" },
  Money = { "REAL", "numeric", "dec" },
  Double = { "REAL", "double precision", "num" },
  Boolean = { "INTEGER", "boolean", "bool" },
  DateTime = { "TEXT", "timestamptz", "date" },
  Uniqueidentifier = { "TEXT", "uuid", "guid" },
  Lookup = { "TEXT", "uuid", "guid" },
  Customer = { "TEXT", "uuid", "guid" },
  Owner = { "TEXT", "uuid", "guid" },
}
M.TYPES = TYPES

local LOOKUPS = { Lookup = true, Customer = true, Owner = true }
local LABELLED = { Picklist = true, State = true, Status = true, Boolean = true }
M.LOOKUPS, M.LABELLED = LOOKUPS, LABELLED

local LOOKUP_ANN = "@Microsoft.Dynamics.CRM.lookuplogicalname"
local LABEL_ANN = "@OData.Community.Display.V1.FormattedValue"

-- The name a column has in Web API rows: lookups come back as _<name>_value.
local function wire_name(col)
  if LOOKUPS[col.type] then return "_" .. col.name .. "_value" end
  return col.name
end
M.wire_name = wire_name

-- The shortest decimal text that reads back as the same double: what the server sent, for
-- every value a double holds exactly enough (money has 4 decimals, decimals up to 10).
local function decimal_text(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return nil end
  for p = 15, 17 do
    local s = string.format("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end
M.decimal_text = decimal_text

-- Value converters, per kind and store: Lua value from the JSON row -> value to bind.
local function converters(kind)
  local function text(v)
    if is_null(v) then return nil end
    local t = type(v)
    if t == "string" then return v end
    if t == "table" then return json().encode(v) end
    return tostring(v)
  end
  local function int(v)
    if is_null(v) then return nil end
    if math.type(v) == "integer" then return v end
    local n = tonumber(v)
    return n and (math.tointeger(n) or n) or nil
  end
  local function num(v)
    if is_null(v) then return nil end
    local n = tonumber(v)
    if n and (n ~= n or n == math.huge or n == -math.huge) then return nil end
    return n
  end
  local function guid(v)
    if is_null(v) then return nil end
    return (tostring(v):lower():gsub("[{}]", ""))
  end
  local c = { text = text, int = int, num = num, guid = guid, date = text }
  if kind == "sqlite" then
    -- LuaDBI's SQLite driver binds integers as 32 bits: wider ones go as their decimal text,
    -- which an INTEGER column stores as the exact 64-bit integer.
    c.int = function(v)
      local n = int(v)
      if math.type(n) == "integer" and (n > 2147483647 or n < -2147483648) then return string.format("%d", n) end
      return n
    end
    c.dec = num
    c.bool = function(v)
      if is_null(v) then return nil end
      return v and 1 or 0
    end
  else
    -- libpq takes every parameter as text: floats go as their shortest exact decimal.
    c.num = function(v)
      local n = num(v)
      return n and decimal_text(n)
    end
    c.dec = function(v)
      if is_null(v) then return nil end
      if type(v) == "string" then return v end
      return decimal_text(v)
    end
    c.bool = function(v)
      if is_null(v) then return nil end
      return v and "true" or "false"
    end
  end
  return c
end

---------------------------------------------------------------------------------------------
-- Metadata.
---------------------------------------------------------------------------------------------
local function request_json(org, path)
  local ok, status, _, body = pcall(org.request, org, "GET", path)
  if not ok then
    local err = status
    if M.is_interrupt(err) then error(err, 0) end
    if type(err) == "table" and err.status == 404 then return 404 end
    error(err, 0)
  end
  if type(status) == "number" and status >= 400 then
    if status == 404 then return 404 end
    local msg = type(body) == "table" and type(body.error) == "table" and body.error.message
    fail("GET %s failed with status %d%s", path, status, msg and (": " .. msg) or "")
  end
  return status, body
end

-- Describes a table: {name=, set=, id=, change_tracking=, columns={name={name=,type=}}}.
function M.describe(org, name)
  ident(name)
  local path = "EntityDefinitions(LogicalName='" .. name .. "')?$expand=Attributes"
  local status, body = request_json(org, path)
  if status == 404 or type(body) ~= "table" then fail("unknown table %q", name) end
  local t = {
    name = body.LogicalName or name,
    set = body.EntitySetName,
    id = body.PrimaryIdAttribute,
    change_tracking = body.ChangeTrackingEnabled == true,
    columns = {},
  }
  for _, a in ipairs(body.Attributes or {}) do
    local ty = a.AttributeType
    -- Attributes that are a facet of another (a lookup's name, yomi names) are not columns.
    local derived = not is_null(a.AttributeOf) and a.AttributeOf ~= nil
    if type(a.LogicalName) == "string" and TYPES[ty] and not derived and a.IsValidForRead ~= false then
      t.columns[a.LogicalName] = { name = a.LogicalName, type = ty }
    end
  end
  if not t.id then fail("table %q has no primary id in its metadata", name) end
  if not t.columns[t.id] then t.columns[t.id] = { name = t.id, type = "Uniqueidentifier" } end
  -- The change reads that follow need the entity set name: one request per table fewer.
  require("dataverse.util").remember_entity(org, t.name, t.set, t.id)
  return t
end

-- Logical names of the tables whose metadata says ChangeTrackingEnabled, sorted.
function M.tracked_tables(org)
  local _, body = request_json(org, "EntityDefinitions?$select=LogicalName,ChangeTrackingEnabled")
  local names = {}
  for _, e in ipairs(type(body) == "table" and body.value or {}) do
    if e.ChangeTrackingEnabled == true and type(e.LogicalName) == "string" then names[#names + 1] = e.LogicalName end
  end
  table.sort(names)
  return names
end

-- The columns to mirror, primary id first: the requested ones, or every mappable column.
function M.select_columns(meta, wanted)
  local cols, seen = { meta.columns[meta.id] }, { [meta.id] = true }
  if wanted and #wanted > 0 then
    for _, name in ipairs(wanted) do
      local c = meta.columns[name]
      if not c then fail("table %q has no column %q that can be mirrored", meta.name, name) end
      if not seen[name] then
        cols[#cols + 1] = c
        seen[name] = true
      end
    end
  else
    local names = {}
    for name in pairs(meta.columns) do
      if not seen[name] then names[#names + 1] = name end
    end
    table.sort(names)
    for _, name in ipairs(names) do cols[#cols + 1] = meta.columns[name] end
  end
  return cols
end

-- Reads the table's metadata and picks the columns; raises on an unknown table or column and
-- on a table without change tracking, so scripts can check before touching their store.
local JOB = { table = "string", columns = "table", into = "string", full = "boolean",
  page_size = "integer", progress = "boolean", soft_delete = "boolean", history = "boolean", labels = "boolean" }

function M.plan(org, opts)
  assert(type(opts) == "table" and type(opts.table) == "string", "opts.table is required")
  require("dataverse.util").check_options(opts, JOB, "sync", 2)
  local meta = M.describe(org, opts.table)
  if not meta.change_tracking then
    fail("table %q does not have change tracking enabled (ChangeTrackingEnabled is false)", meta.name)
  end
  return meta, M.select_columns(meta, opts.columns)
end

---------------------------------------------------------------------------------------------
-- Stores.
---------------------------------------------------------------------------------------------
M.sqlite = S.sqlite
M.postgres = S.postgres

-- The mirror's columns: the Dataverse columns, then what the options add. Each is
-- {name=, type= (Dataverse type or a role), sql=, keys= (JSON members to read, in order),
-- conv=function(non-null value) -> bindable value, text= (strings pass as they are)}.
local function mirror_columns(store, cols, o)
  local conv = converters(store.kind)
  local out = {}
  local pg = store.kind == "postgres"
  local TEXT = pg and "text" or "TEXT"
  for _, c in ipairs(cols) do
    local t = TYPES[c.type] or TYPES.String
    local wire = wire_name(c)
    local keys = wire ~= c.name and { wire, c.name } or { wire }
    local fast = (t[3] == "text" or t[3] == "date") and "text" or t[3]
    -- A store that writes floats as their shortest exact decimal itself (COPY, src/pg/)
    -- takes them as they are; LuaDBI's PostgreSQL driver needs them as text.
    if fast == "num" or fast == "dec" then fast = (not pg or store.exact_floats) and "num" or nil end
    -- PostgreSQL takes 64-bit integers whole; LuaDBI's SQLite driver only 32 bits.
    if fast == "int" and pg then fast = "int64" end
    out[#out + 1] = { name = c.name, type = c.type, sql = pg and t[2] or t[1], keys = keys, conv = conv[t[3]], fast = fast }
    if LOOKUPS[c.type] then
      out[#out + 1] = { name = c.name .. "__table", type = "target", sql = TEXT, keys = { wire .. LOOKUP_ANN },
        conv = tostring, fast = "text" }
    end
    if o.labels and LABELLED[c.type] then
      out[#out + 1] = { name = c.name .. "__label", type = "label", sql = TEXT, keys = { c.name .. LABEL_ANN },
        conv = tostring, fast = "text" }
    end
  end
  -- The row's version number, from its ETag (W/"12345"): the history's order, and how a
  -- reload tells a changed row from an unchanged one.
  -- Bound as its digits: exact in an integer column of either store, whatever its size.
  out[#out + 1] = { name = "_dv_version", type = "version", sql = pg and "bigint" or "INTEGER", keys = { "@odata.etag" },
    conv = function(e)
      return type(e) == "string" and e:match("%d+") or nil
    end, fast = "etag" }
  if o.soft_delete then
    out[#out + 1] = { name = "_dv_deleted_at", type = "deleted", sql = pg and "timestamptz" or "TEXT", internal = true }
  end
  return out
end

-- One function that turns a JSON row into the array of values bound for `list`, generated
-- for the columns at hand: a page of 5000 rows calls it 5000 times, and straight-line code
-- without a closure per column is several times faster.
local function compile_row(list)
  is_null(false) -- learns JSON null
  local src, convs = { "local NULL, type, C, math_type, huge, find, lower, match = ...\n" ..
    -- The row's table sized once (a constructor of nils), not grown column by column.
    "return function(row)\nlocal r, v = {" .. string.rep("nil", #list + 1, ",") .. "}\n" }, {}
  for i, c in ipairs(list) do
    convs[i] = c.conv
    src[#src + 1] = string.format("v = row[%q]\n", c.keys[1])
    if c.keys[2] then src[#src + 1] = string.format("if v == nil then v = row[%q] end\n", c.keys[2]) end
    -- The common case of each kind inline; anything else through the converter.
    local fast = ({
      text = "if type(v) == 'string' then r[%d] = v",
      int = "if math_type(v) == 'integer' and v <= 2147483647 and v >= -2147483648 then r[%d] = v",
      int64 = "if math_type(v) == 'integer' then r[%d] = v",
      num = "if type(v) == 'number' and v == v and v ~= huge and v ~= -huge then r[%d] = v",
      guid = "if type(v) == 'string' and not find(v, '{', 1, true) then r[%d] = lower(v)",
      etag = "if type(v) == 'string' then r[%d] = match(v, '%%d+')",
    })[c.fast]
    if fast then
      src[#src + 1] = string.format(fast .. " elseif v ~= nil and v ~= NULL then r[%d] = C[%d](v) end\n", i, i, i)
    else
      src[#src + 1] = string.format("if v ~= nil and v ~= NULL then r[%d] = C[%d](v) end\n", i, i)
    end
  end
  src[#src + 1] = "return r\nend\n"
  local chunk = assert(load(table.concat(src), "=sync_row", "t", {}))
  return chunk(NULL, type, convs, math.type, math.huge, string.find, string.lower, string.match)
end
M.compile_row = compile_row

local STATE = "sync_state"
local STATE_COLUMNS = { "token", "columns", "updated", "phase", "cursor", "stage", "run_id", "kept" }

local function ensure_state(store)
  local cols = store:columns_of(STATE)
  if not cols then
    store:ddl("CREATE TABLE IF NOT EXISTS " .. ident(STATE) .. " (table_name TEXT PRIMARY KEY, " ..
      table.concat(STATE_COLUMNS, " TEXT, ") .. " TEXT)")
    return
  end
  -- Mirrors made by an earlier version: the state gains the columns resumable loads need.
  for _, c in ipairs(STATE_COLUMNS) do
    if not cols[c] then store:ddl("ALTER TABLE " .. ident(STATE) .. " ADD COLUMN " .. ident(c) .. " TEXT") end
  end
end
M.ensure_state = ensure_state

local function read_state(store, name)
  if not store:columns_of(STATE) then return nil end
  return store:first("SELECT * FROM " .. ident(STATE) .. " WHERE table_name = ?", name)
end
M.read_state = read_state

local function set_state(store, name, fields)
  local sets, vals, n = {}, {}, 0
  for _, k in ipairs(STATE_COLUMNS) do
    if fields[k] ~= nil then
      sets[#sets + 1] = ident(k) .. " = ?"
      local v = fields[k]
      if v == false then v = nil end
      n = n + 1
      vals[n] = v
    end
  end
  n = n + 1
  vals[n] = name
  local sql = "UPDATE " .. ident(STATE) .. " SET " .. table.concat(sets, ", ") .. " WHERE table_name = ?"
  if store:exec(sql, unpack(vals, 1, n)) == 0 then
    store:exec("INSERT INTO " .. ident(STATE) .. " (table_name) VALUES (?)", name)
    store:exec(sql, unpack(vals, 1, n))
  end
end

-- "name:Type,…" <-> {name = Type}; the first form written by earlier versions had no types.
local function spec_of(mcols)
  local parts = {}
  for i, c in ipairs(mcols) do parts[i] = c.name .. ":" .. (c.type or "") end
  return table.concat(parts, ",")
end

local function parse_spec(s)
  local t = {}
  for item in (s or ""):gmatch("[^,]+") do
    local n, ty = item:match("^([^:]+):?(.*)$")
    if n then t[n] = ty end
  end
  return t
end

local function create_table(store, name, mcols, extra, keyless)
  local defs = {}
  for i, c in ipairs(mcols) do
    defs[i] = ident(c.name) .. " " .. c.sql .. (i == 1 and not keyless and " PRIMARY KEY" or "")
  end
  for _, d in ipairs(extra or {}) do defs[#defs + 1] = d end
  store:ddl("CREATE TABLE " .. ident(name) .. " (" .. table.concat(defs, ", ") .. ")")
end

local function drop_table(store, name)
  store:ddl("DROP TABLE IF EXISTS " .. ident(name))
end

local function rename_table(store, from, to)
  store:ddl("ALTER TABLE " .. ident(from) .. " RENAME TO " .. ident(to))
  if store.kind == "postgres" then
    -- The key's index keeps the old name; give it the new one so the next stage can reuse it.
    store:ddl("ALTER INDEX IF EXISTS " .. ident(from .. "_pkey") .. " RENAME TO " .. ident(to .. "_pkey"))
  end
end

local function history_table(store, name, mcols)
  local hist = name .. "__history"
  local have = store:columns_of(hist)
  local pg = store.kind == "postgres"
  if not have then
    local defs = {
      pg and '"_dv_seq" bigserial PRIMARY KEY' or '"_dv_seq" INTEGER PRIMARY KEY AUTOINCREMENT',
      '"_dv_change" ' .. (pg and "text" or "TEXT") .. " NOT NULL",
      '"_dv_synced_at" ' .. (pg and "timestamptz" or "TEXT") .. " NOT NULL",
    }
    for _, c in ipairs(mcols) do
      if not c.internal then defs[#defs + 1] = ident(c.name) .. " " .. c.sql end
    end
    store:ddl("CREATE TABLE " .. ident(hist) .. " (" .. table.concat(defs, ", ") .. ")")
  else
    -- Append-only: a column new to the mirror is added; nothing is ever dropped.
    for _, c in ipairs(mcols) do
      if not c.internal and not have[c.name] then
        store:ddl("ALTER TABLE " .. ident(hist) .. " ADD COLUMN " .. ident(c.name) .. " " .. c.sql)
      end
    end
  end
  return hist
end

local function utc_now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

local function token_version(token)
  -- As text: bound into an integer column exactly, whatever its size.
  return token and tostring(token):match("^(%d+)") or nil
end
M.token_version = token_version

---------------------------------------------------------------------------------------------
-- Pages of changes.
---------------------------------------------------------------------------------------------

-- The annotations a mirror reads, asked for on every page: lookup targets, and labels only
-- when a column wants them (the service formats every date, number and choice of a row when
-- asked, which makes a page about a third larger to send and to decode).
local ANN_HEADERS = {
  target = { Prefer = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"' },
  label = { Prefer = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"' },
  both = {
    Prefer = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname,OData.Community.Display.V1.FormattedValue"',
  },
}

-- Walks change pages: on_change(change) for each change, then on_page() once the page is
-- delivered, with opts.next_link set to the page's continuation (nil on the last page) and
-- opts.token to the new data token (on the last page only). opts: entity, columns, since,
-- page_size, annotations ("target", "label", or "both" / true), resume (a saved continuation to start
-- from). Returns the token.
local function each_change(org, opts, on_change, on_page)
  local token
  require("dataverse.changes").each_page(org, {
    entity = opts.entity,
    columns = opts.columns,
    data_version = opts.since,
    page_size = opts.page_size,
    paging_cookie = opts.resume,
    headers = opts.annotations and (ANN_HEADERS[opts.annotations] or ANN_HEADERS.both) or nil,
  }, function(changes, next_link, data_token)
    -- Each change is dropped from the page once delivered: a task waiting for its next page
    -- must not keep the last one alive (a coroutine's stack holds on to dead locals), or
    -- every table in flight costs a whole decoded page.
    for i = 1, #changes do
      on_change(changes[i])
      changes[i] = nil
    end
    token = data_token
    opts.next_link = next_link
    if next_link == nil and (token == nil or is_null(token)) then
      fail("the last page of changes carried no data token")
    end
    opts.token = next_link == nil and token or nil
    on_page()
    -- What the page left behind goes now, so the heap is the same small size at every page
    -- boundary, whatever the table's size (a full collection of a heap of a few hundred KB).
    collectgarbage()
  end)
  return token
end
M.each_change = each_change

function M.is_expired(err)
  local dv = require "dataverse"
  if type(dv.is_expired_token) == "function" then return dv.is_expired_token(err) end
  return type(err) == "table" and err.code == "0x80044352"
end

-- A refusal of a saved continuation: the server answered 4xx (a link it no longer honours).
local function is_refusal(err)
  if type(err) ~= "table" then return false end
  local st = tonumber(err.status)
  return st ~= nil and st >= 400 and st < 500 and st ~= 401 and st ~= 403 and st ~= 429
end

---------------------------------------------------------------------------------------------
-- One table.
---------------------------------------------------------------------------------------------

local function column_list(mcols, filter)
  local q = {}
  for _, c in ipairs(mcols) do
    if not filter or filter(c) then q[#q + 1] = ident(c.name) end
  end
  return q
end

local function run_id()
  return string.format("%d-%d-%06d", os.time(), math.floor(now() * 1000) % 1000000, math.random(0, 999999))
end

-- Settles the mirror's columns against what this run wants (see "Schema drift" in
-- docs/SYNC.md). Returns the columns to write and the reason a reload is needed, if any.
local function reconcile(store, name, meta, mcols, state, stats)
  local live = store:columns_of(name)
  if not live then return mcols, "first" end
  local prev = parse_spec(state and state.columns)
  local kept = parse_spec(state and state.kept)
  local write, added, changed = {}, {}, {}
  local want = {}
  for _, c in ipairs(mcols) do
    want[c.name] = true
    local pt = prev[c.name]
    if not live[c.name] then
      added[#added + 1] = c.name
      write[#write + 1] = c
    elseif kept[c.name] or (pt and pt ~= "" and c.type and pt ~= c.type and TYPES[pt]) then
      -- The column's type changed in Dataverse: the mirror keeps the old column and its data.
      kept[c.name] = kept[c.name] or pt
      changed[#changed + 1] = c.name
      stats.warnings[#stats.warnings + 1] = string.format("column %s changed type (%s -> %s): kept as it was, " ..
        "not updated (reload with --full to take the new type)", c.name, kept[c.name], c.type)
    elseif pt == nil and next(prev) ~= nil and not c.name:match("^_dv_") then
      -- In the table but not known to the state: a fill that did not finish.
      added[#added + 1] = c.name
      write[#write + 1] = c
    else
      write[#write + 1] = c
    end
  end
  for col in pairs(live) do
    if not want[col] and not kept[col] then
      local base = col:match("^(.-)__table$") or col:match("^(.-)__label$")
      if meta.columns[col] or col:match("^_dv_") or (base and meta.columns[base]) then
        -- Left out by this run's options (--columns, --labels, --soft-delete): dropped, as asked.
        stats.dropped[#stats.dropped + 1] = col
      else
        -- Gone from Dataverse: the mirror keeps the column and its data.
        kept[col] = live[col]
        stats.warnings[#stats.warnings + 1] = string.format("column %s is no longer in the table: kept with its data", col)
      end
    elseif not want[col] and kept[col] and not meta.columns[col] then
      stats.warnings[#stats.warnings + 1] = string.format("column %s is no longer in the table: kept with its data", col)
    end
  end
  local k = {}
  for n, t in pairs(kept) do
    if live[n] then k[#k + 1] = n .. ":" .. (t or "") end
  end
  table.sort(k)
  stats.kept = table.concat(k, ",")
  if #added > 0 then return write, "columns added: " .. table.concat(added, ", ") end
  return write, nil
end

-- A delta, staged in <name>__dvdelta page by page, applied to the mirror with the last page.
local function apply_delta(store, name, stage, wcols, o, token, stats)
  local id = ident(wcols[1].name)
  local M_, D_ = ident(name), ident(stage)
  local soft = o.soft_delete
  local live_filter = soft and " AND m._dv_deleted_at IS NULL" or ""
  local c = store:first(string.format(
    "SELECT (SELECT count(*) FROM %s d WHERE d._dv_op = 'u' AND NOT EXISTS (SELECT 1 FROM %s m WHERE m.%s = d.%s)) AS ins, " ..
    "(SELECT count(*) FROM %s d WHERE d._dv_op = 'u') AS ups, " ..
    "(SELECT count(*) FROM %s d WHERE d._dv_op = 'd' AND EXISTS (SELECT 1 FROM %s m WHERE m.%s = d.%s%s)) AS del",
    D_, M_, id, id, D_, D_, M_, id, id, live_filter))
  local ins, ups, del = tonumber(c.ins) or 0, tonumber(c.ups) or 0, tonumber(c.del) or 0
  stats.inserted = stats.inserted + ins
  stats.updated = stats.updated + (ups - ins)
  stats.deleted = stats.deleted + del
  local stamp = utc_now()
  local cols = column_list(wcols, function(x) return not x.internal end)
  local list = table.concat(cols, ", ")
  if o.history then
    local hist = history_table(store, name, wcols)
    local sel = {}
    for i, q in ipairs(cols) do
      if i == 1 then
        sel[i] = "d." .. q
      elseif q == '"_dv_version"' then
        sel[i] = "CASE WHEN d._dv_op = 'u' THEN d._dv_version ELSE ? END"
      else
        sel[i] = "CASE WHEN d._dv_op = 'u' THEN d." .. q .. " END"
      end
    end
    -- One row per change, in version order: changed rows with their values, deletions with
    -- the id and the token's version (a deletion carries no version of its own).
    store:exec(string.format("INSERT INTO %s (_dv_change, _dv_synced_at, %s) SELECT CASE d._dv_op WHEN 'u' THEN " ..
      "'new_or_updated' ELSE 'removed_or_deleted' END, ?, %s FROM %s d ORDER BY d._dv_op DESC, d._dv_version, d.%s",
      ident(hist), list, table.concat(sel, ", "), D_, id), stamp, token_version(token))
  end
  local sets = {}
  for i = 2, #cols do sets[#sets + 1] = cols[i] .. " = excluded." .. cols[i] end
  if soft then sets[#sets + 1] = "_dv_deleted_at = NULL" end
  -- "WHERE true": SQLite's parser needs it between a SELECT and ON CONFLICT.
  store:exec(string.format("INSERT INTO %s (%s) SELECT %s FROM %s WHERE _dv_op = 'u' AND true ON CONFLICT (%s) DO %s",
    M_, list, list, D_, id, #sets > 0 and ("UPDATE SET " .. table.concat(sets, ", ")) or "NOTHING"))
  if soft then
    store:exec(string.format("UPDATE %s SET _dv_deleted_at = ? WHERE %s IN (SELECT %s FROM %s WHERE _dv_op = 'd') " ..
      "AND _dv_deleted_at IS NULL", M_, id, id, D_), stamp)
  else
    store:exec(string.format("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE _dv_op = 'd')", M_, id, id, D_))
  end
end

-- A load staged in <name>__dvnew, swapped in for the mirror with the last page.
local function finish_load(store, name, stage, mcols, o, token, stats, kept)
  local id = ident(mcols[1].name)
  local old = store:columns_of(name)
  local N_, M_ = ident(stage), ident(name)
  if store.deferred_key then store:add_key(stage, mcols[1].name, "_dv_version") end
  local stamp = utc_now()
  local n = store:first("SELECT count(*) AS n FROM " .. N_)
  stats.inserted = tonumber(n.n) or 0
  if old then
    local live_filter = old._dv_deleted_at and " AND m._dv_deleted_at IS NULL" or ""
    local gone = store:first(string.format("SELECT count(*) AS n FROM %s m WHERE NOT EXISTS (SELECT 1 FROM %s s " ..
      "WHERE s.%s = m.%s)%s", M_, N_, id, id, live_filter))
    stats.deleted = tonumber(gone.n) or 0
    if o.history then
      local hist = history_table(store, name, mcols)
      local cols = column_list(mcols, function(x) return not x.internal end)
      local sel = {}
      for i, q in ipairs(cols) do sel[i] = "s." .. q end
      -- What the reload changed: rows new or at another version, and rows gone.
      store:exec(string.format("INSERT INTO %s (_dv_change, _dv_synced_at, %s) SELECT 'new_or_updated', ?, %s FROM %s s " ..
        "WHERE NOT EXISTS (SELECT 1 FROM %s m WHERE m.%s = s.%s%s%s) ORDER BY s._dv_version",
        ident(hist), table.concat(cols, ", "), table.concat(sel, ", "), N_, M_, id, id,
        old._dv_version and " AND m._dv_version = s._dv_version" or "", live_filter), stamp)
      store:exec(string.format("INSERT INTO %s (_dv_change, _dv_synced_at, %s, _dv_version) SELECT 'removed_or_deleted', ?, " ..
        "m.%s, ? FROM %s m WHERE NOT EXISTS (SELECT 1 FROM %s s WHERE s.%s = m.%s)%s", ident(hist), id, id, M_, N_, id,
        id, live_filter), stamp, token_version(token))
    end
    -- Columns the mirror keeps (gone from Dataverse, or of a changed type) keep their data.
    for col, _ in pairs(kept or {}) do
      if old[col] then
        store:exec(string.format("UPDATE %s SET %s = (SELECT m.%s FROM %s m WHERE m.%s = %s.%s)", N_, ident(col),
          ident(col), M_, id, N_, id))
      end
    end
    if o.soft_delete then
      -- Rows deleted before (or found gone now) stay, marked: a deletion is never undone.
      local common = {}
      for _, c in ipairs(mcols) do
        if old[c.name] and c.name ~= "_dv_deleted_at" then common[#common + 1] = ident(c.name) end
      end
      local mcl = {}
      for i, q in ipairs(common) do mcl[i] = "m." .. q end
      local del = old._dv_deleted_at and "COALESCE(m._dv_deleted_at, ?)" or "?"
      store:exec(string.format("INSERT INTO %s (%s, _dv_deleted_at) SELECT %s, %s FROM %s m WHERE NOT EXISTS " ..
        "(SELECT 1 FROM %s s WHERE s.%s = m.%s)", N_, table.concat(common, ", "), table.concat(mcl, ", "), del, M_, N_,
        id, id), stamp)
    end
    drop_table(store, name)
  elseif o.history then
    local hist = history_table(store, name, mcols)
    local cols = table.concat(column_list(mcols, function(x) return not x.internal end), ", ")
    store:exec(string.format("INSERT INTO %s (_dv_change, _dv_synced_at, %s) SELECT 'new_or_updated', ?, %s FROM %s " ..
      "ORDER BY _dv_version", ident(hist), cols, cols, N_), stamp)
  end
  rename_table(store, stage, name)
end

-- PostgreSQL: transactions on one table's state wait for each other, as SQLite's BEGIN
-- IMMEDIATE makes every write transaction do. Without it two runs read a state the other is
-- changing, and create the same staging table at once (a duplicate-key error from the
-- catalog instead of the message below). The lock ends with the transaction.
local function serialize(store, key)
  if store.kind == "postgres" then store:exec("SELECT pg_advisory_xact_lock(hashtext(?))", "dvlua-sync:" .. key) end
end

-- Inside a page's (or a stage's) transaction: this run still owns the table. A stage may
-- also start on a table no run owns (this run finished one stage and starts the next).
local function check_claim(store, name, me, free_ok)
  local cur = store:first("SELECT run_id FROM " .. ident(STATE) .. " WHERE table_name = ?", name)
  if not (cur and (cur.run_id == me or (free_ok and cur.run_id == nil))) then
    fail("another sync took over table %s; this run stops (the other one goes on from the last page)", name)
  end
end

local function new_stats(name)
  return { table = name, inserted = 0, updated = 0, deleted = 0, rows = 0, pages = 0, requests = 0,
    warnings = {}, dropped = {}, started = now(), state = "waiting" }
end
M.new_stats = new_stats

-- Syncs one table (planned: job.meta, job.cols). o: page_size, full, soft_delete, history,
-- labels, progress (a reporter from M.progress). Returns its stats.
function M.sync_table(org, store, job, o, stats)
  local meta = job.meta
  local name = job.into or meta.name
  ident(name)
  local stage_new, stage_delta = name .. "__dvnew", name .. "__dvdelta"
  ident(stage_new)
  ident(stage_delta)
  stats = stats or new_stats(name)
  stats.state = "running"
  local prog = o.progress
  local mcols = mirror_columns(store, job.cols, o)
  local me = run_id()
  local state
  store:atomic(function()
    serialize(store, "sync_state")
    serialize(store, name)
    ensure_state(store)
    state = read_state(store, name)
    -- Claims the table: a concurrent run on it notices at its next page and stops.
    set_state(store, name, { run_id = me })
  end)
  if not state or is_null(state.columns) or state.columns == nil then
    -- A table of that name that no sync made (no state, or never completed): never replaced.
    if store:columns_of(name) and not (state and state.token and not is_null(state.token)) then
      fail("the store already has a table %s that this sync did not make; choose another name (into=) or drop it", name)
    end
  end
  local wcols, reason = reconcile(store, name, meta, mcols, state, stats)
  for _, col in ipairs(stats.dropped) do
    store:atomic(function()
      -- Without --soft-delete, rows marked deleted go with their mark.
      if col == "_dv_deleted_at" then store:exec("DELETE FROM " .. ident(name) .. " WHERE _dv_deleted_at IS NOT NULL") end
      store:ddl("ALTER TABLE " .. ident(name) .. " DROP COLUMN " .. ident(col))
    end)
  end
  local kept = parse_spec(stats.kept)
  local token = state and not is_null(state.token) and state.token or nil
  local full = o.full or job.full or reason ~= nil or token == nil
  -- A reload that an earlier run left half done (after an expired token, or --full) goes on
  -- from its last page, rather than a delta from the old token throwing it away.
  if not full and state and state.phase == "load" and not is_null(state.cursor) and state.cursor
    and state.stage == spec_of(mcols) and store:columns_of(stage_new) then
    full = true
    reason = "left unfinished by an earlier run"
  end
  if reason and reason ~= "first" then stats.reason = reason end
  if o.full and store:columns_of(name) then stats.reason = "asked" end

  local wanted = {}
  for _, c in ipairs(job.cols) do wanted[#wanted + 1] = wire_name(c) end
  local annotations = nil
  for _, c in ipairs(mcols) do
    if c.type == "target" or c.type == "label" then
      annotations = (annotations == nil or annotations == c.type) and c.type or "both"
    end
  end

  -- Writes pages; the last one finishes the stage. Returns the new token.
  local function run_stage(is_load)
    local stage = is_load and stage_new or stage_delta
    local stage_cols = is_load and mcols or wcols
    local spec = spec_of(stage_cols)
    if is_load then
      -- A reload writes every column with its current type; only columns gone from Dataverse
      -- are carried over from the old mirror.
      local inload, k = {}, {}
      for _, c in ipairs(mcols) do inload[c.name] = true end
      for n, t in pairs(kept) do
        if inload[n] then kept[n] = nil else k[#k + 1] = n .. ":" .. t end
      end
      table.sort(k)
      stats.kept = table.concat(k, ",")
    end
    local resume
    if state and state.phase == (is_load and "load" or "delta") and state.stage == spec and state.cursor
      and not is_null(state.cursor) and store:columns_of(stage) then
      resume = state.cursor
    end
    local function fresh()
      store:atomic(function()
        serialize(store, name)
        check_claim(store, name, me, true)
        drop_table(store, stage_new)
        drop_table(store, stage_delta)
        local defs = {}
        if not is_load then
          defs = { '"_dv_op" ' .. (store.kind == "sqlite" and "TEXT" or "text") }
        end
        local cs = {}
        for _, c in ipairs(stage_cols) do
          if is_load or not c.internal then cs[#cs + 1] = c end
        end
        -- A store that can add the key once a load is complete (store.deferred_key) fills
        -- the stage without it: one index build at the end instead of a B-tree insert per row.
        create_table(store, stage, cs, defs, is_load and store.deferred_key)
        -- Columns kept from an older schema travel with a reload.
        if is_load then
          local old = store:columns_of(name) or {}
          for col in pairs(kept) do
            if old[col] then
              store:ddl("ALTER TABLE " .. ident(stage) .. " ADD COLUMN " .. ident(col) .. " " .. old[col])
            end
          end
        end
        set_state(store, name, { phase = is_load and "load" or "delta", cursor = false, stage = spec, run_id = me })
      end)
    end
    if resume then
      stats.resumed = true
    else
      fresh()
    end
    local insert_cols = {}
    for _, c in ipairs(stage_cols) do
      if not c.internal then insert_cols[#insert_cols + 1] = c end
    end
    local names = {}
    for i, c in ipairs(insert_cols) do names[i] = c.name end
    local sqltypes = {}
    for i, c in ipairs(insert_cols) do sqltypes[i] = c.sql end
    if not is_load then
      names[#names + 1] = "_dv_op"
      sqltypes[#sqltypes + 1] = "text"
    end
    local ncol = #insert_cols
    local build = compile_row(insert_cols)
    local idcol = job.meta.id
    local buf, nbuf = {}, 0
    local req = { entity = meta.name, columns = wanted, since = (not is_load) and token or nil, page_size = o.page_size,
      annotations = annotations, resume = resume }
    local function on_change(change)
      local r
      if change.type == "removed_or_deleted" then
        r = { (tostring(change.id):lower():gsub("[{}]", "")) }
        r[ncol + 1] = "d"
      else
        local row = change.row or change
        if is_null(row[idcol]) then fail("a changed row of %s came without its primary id %q", name, idcol) end
        r = build(row)
        if not is_load then r[ncol + 1] = "u" end
      end
      nbuf = nbuf + 1
      buf[nbuf] = r
    end
    local new_token
    local function on_page()
      local rows = buf
      -- One id once per page (the last change wins), as one multi-row upsert needs; a load's
      -- pages hold each row once.
      if nbuf > 1 and not is_load then
        local seen, out = {}, {}
        for i = nbuf, 1, -1 do
          local id = rows[i][1]
          if not seen[id] then
            seen[id] = true
            out[#out + 1] = rows[i]
          end
        end
        if #out ~= nbuf then
          rows = {}
          for i = #out, 1, -1 do rows[#rows + 1] = out[i] end
        end
        for i = 1, #out do out[i] = nil end
      end
      local n, page = nbuf, buf
      buf, nbuf = {}, 0
      store:atomic(function()
        serialize(store, name)
        check_claim(store, name, me)
        store:insert_rows(stage, names, rows, "upsert", sqltypes)
        if req.next_link then
          set_state(store, name, { cursor = req.next_link })
        else
          new_token = req.token
          if is_load then
            finish_load(store, name, stage, mcols, o, new_token, stats, kept)
          else
            apply_delta(store, name, stage, wcols, o, new_token, stats)
            drop_table(store, stage)
          end
          set_state(store, name, { token = new_token, columns = spec, kept = stats.kept or false,
            updated = utc_now(), phase = false, cursor = false, stage = false, run_id = false })
        end
      end)
      -- Emptied, not only dropped: see each_change.
      for i = 1, n do page[i] = nil end
      for i = 1, #rows do rows[i] = nil end
      stats.pages = stats.pages + 1
      stats.rows = stats.rows + n
      if prog then prog:rows(stats, n) end
    end
    local ok, err = pcall(M.each_change, org, req, on_change, on_page)
    if not ok then
      store:rollback()
      if resume and stats.pages == 0 and is_refusal(err) and not M.is_interrupt(err) then
        -- The server no longer honours the saved continuation: this stage starts again.
        stats.restarted = true
        stats.resumed = false
        buf, nbuf = {}, 0
        fresh()
        req.resume, req.next_link, req.token = nil, nil, nil
        M.each_change(org, req, on_change, on_page)
        return new_token
      end
      error(err, 0)
    end
    return new_token
  end

  if full then
    stats.full = true
    stats.token = run_stage(true)
    if stats.reason == nil and state and state.token and not is_null(state.token) and not o.full and reason == nil then
      stats.reason = nil
    end
  else
    local ok, err = pcall(run_stage, false)
    if not ok then
      store:rollback()
      if stats.pages == 0 and M.is_expired(err) then
        -- The saved token is too old for the server: reload everything, swapped in at the end.
        stats.expired = true
        stats.full = true
        stats.resumed = false
        state = nil
        stats.token = run_stage(true)
      else
        error(err, 0)
      end
    else
      stats.token = err
    end
  end
  -- A resumed stage ends at the snapshot its first page pinned, before this run began: one
  -- more delta brings the mirror to the state of now.
  if stats.resumed and stats.token then
    state = read_state(store, name)
    token = stats.token
    stats.token = run_stage(false)
  end
  stats.state = "done"
  stats.elapsed = now() - stats.started
  return stats
end

-- One table, the way the one-table scripts use it: plans, syncs, returns the stats.
function M.mirror(org, store, opts)
  local meta, cols = M.plan(org, opts)
  local job = { meta = meta, cols = cols, into = opts.into }
  local prog = nil
  if opts.progress ~= false then prog = M.progress(1, opts.progress) end
  local o = { page_size = opts.page_size, full = opts.full, soft_delete = opts.soft_delete, history = opts.history,
    labels = opts.labels, progress = prog }
  local stats = new_stats(opts.into or meta.name)
  if prog then prog:add(stats) end
  local ok, err = pcall(M.sync_table, org, store, job, o, stats)
  if prog then prog:finish() end
  if not ok then error(err, 0) end
  return stats
end

---------------------------------------------------------------------------------------------
-- Many tables.
---------------------------------------------------------------------------------------------

-- Runs tasks (functions) at most n at a time: through org:parallel when the connection has
-- it (each task in a coroutine, requests through org yield, one concurrency budget), one
-- after the other otherwise. Returns {ok=true, value=} or {ok=false, error=} per task.
function M.run_tasks(org, tasks, n)
  if type(org.parallel) == "function" then
    return org:parallel(tasks, { concurrency = n })
  end
  local out = {}
  for i, t in ipairs(tasks) do
    local ok, v = pcall(t)
    if not ok and M.is_interrupt(v) then error(v, 0) end
    out[i] = ok and { ok = true, value = v } or { ok = false, error = v }
  end
  return out
end

-- Plans every job ({table=, columns=, into=}): raises on the first unknown table or column
-- (in the jobs' order) before anything is written. Returns the jobs with .meta and .cols. The
-- metadata reads overlap (run_tasks, at most `parallel` at a time, default all): one round
-- trip per table one after another would hold a large organization back before its first
-- page.
function M.plan_all(org, jobs, parallel)
  local tasks = {}
  for i, job in ipairs(jobs) do
    tasks[i] = function() return { M.plan(org, job) } end
  end
  local res = M.run_tasks(org, tasks, parallel)
  local seen = {}
  for i, job in ipairs(jobs) do
    local r = res[i]
    if not r.ok then error(r.error, 0) end
    local meta, cols = r.value[1], r.value[2]
    local into = job.into or meta.name
    if seen[into] then fail("table %q is named twice", into) end
    seen[into] = true
    job.meta, job.cols = meta, cols
  end
  return jobs
end

-- Syncs planned jobs, `parallel` at a time. Returns the list of stats (each with .error when
-- that table failed) and how many failed.
function M.mirror_all(org, store, jobs, o)
  o = o or {}
  local prog = o.progress
  local all, tasks = {}, {}
  for i, job in ipairs(jobs) do
    all[i] = new_stats(job.into or job.meta.name)
    if prog then prog:add(all[i]) end
    tasks[i] = function()
      all[i].started = now()
      return M.sync_table(org, store, job, o, all[i])
    end
  end
  local res = M.run_tasks(org, tasks, o.parallel or 4)
  local failed = 0
  for i, r in ipairs(res) do
    if not r.ok then
      if M.is_interrupt(r.error) then error(r.error, 0) end
      store:rollback()
      failed = failed + 1
      all[i].error = r.error
      all[i].state = "failed"
      all[i].elapsed = now() - all[i].started
    end
  end
  if prog then prog:finish() end
  return all, failed
end

function M.error_text(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then return tostring(err) end
    return tostring(err.message or err.code or err)
  end
  return tostring(err)
end

function M.summary_line(s)
  if s.error then
    return string.format("%s: failed: %s", s.table, M.error_text(s.error))
  end
  local how
  if s.expired then
    how = "full reload (token expired)"
  elseif s.full and s.reason then
    how = "full reload (" .. s.reason .. ")"
  elseif s.full then
    how = "full load"
  else
    how = "changes"
  end
  local line = string.format("%s: %s, %d inserted, %d updated, %d deleted, %d pages, %.1fs", s.table, how,
    s.inserted, s.updated, s.deleted, s.pages, s.elapsed or 0)
  if s.restarted then line = line .. ", continuation refused: started again" elseif s.resumed then line = line .. ", resumed" end
  for _, col in ipairs(s.dropped or {}) do line = line .. "; dropped column " .. col end
  for _, w in ipairs(s.warnings or {}) do line = line .. "; " .. w end
  return line
end

---------------------------------------------------------------------------------------------
-- Progress on a terminal: tables done / running / waiting, rows, rows/s, throttling waits.
---------------------------------------------------------------------------------------------
local Progress = {}
Progress.__index = Progress

function M.isatty_stderr()
  local ok = os.execute("test -t 2")
  return ok == true or ok == 0
end

-- A reporter for `total` tables; enabled: true/false, or nil for "when stderr is a terminal".
function M.progress(total, enabled, org)
  if enabled == nil then enabled = M.isatty_stderr() end
  return setmetatable({ enabled = enabled, list = {}, total = total, last = 0, t0 = now(), rows_total = 0, org = org },
    Progress)
end

function Progress:add(stats)
  self.list[#self.list + 1] = stats
end

function Progress:rows(_, n)
  self.rows_total = self.rows_total + n
  self:draw()
end

function Progress:line()
  local done, running, waiting, failed = 0, 0, 0, 0
  for _, s in ipairs(self.list) do
    if s.state == "done" then
      done = done + 1
    elseif s.state == "running" then
      running = running + 1
    elseif s.state == "failed" then
      failed = failed + 1
    else
      waiting = waiting + 1
    end
  end
  local dt = math.max(now() - self.t0, 1e-3)
  local line = string.format("%d/%d tables done, %d running, %d waiting%s, %d rows, %.0f rows/s", done, #self.list,
    running, waiting, failed > 0 and (", " .. failed .. " failed") or "", self.rows_total, self.rows_total / dt)
  local org = self.org
  if org and type(org.stats) == "function" then
    local ok, st = pcall(org.stats, org)
    if ok and type(st) == "table" then
      line = line .. string.format(", %d throttled, %.1fs waited", tonumber(st.throttled) or 0, tonumber(st.waited) or 0)
    end
  end
  return line
end

function Progress:draw(force)
  if not self.enabled then return end
  local t = now()
  if not force and t - self.last < 0.5 then return end
  self.last = t
  io.stderr:write("\r\27[K", self:line())
  io.stderr:flush()
end

function Progress:finish()
  if not self.enabled then return end
  io.stderr:write("\r\27[K")
  io.stderr:flush()
end

---------------------------------------------------------------------------------------------
-- Script plumbing: options, --watch, a main wrapper with clear errors and exit codes.
---------------------------------------------------------------------------------------------

-- Parses `--name value`, `--name=value` and `--flag` options.
-- spec: {name = "value"|"number"|"flag"|"list"}; numbers must be positive; "list" options
-- may be repeated (values collected in order).
function M.options(args, spec, usage)
  local o, i = {}, 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w_-]+)=(.*)$")
    name = name or a:match("^%-%-([%w_-]+)$")
    if not name or not spec[name] then fail("unknown argument %q\n%s", a, usage) end
    if spec[name] == "flag" then
      o[name] = true
      if inline then fail("--%s takes no value\n%s", name, usage) end
    else
      local v = inline
      if v == nil then
        i = i + 1
        v = args[i]
      end
      if v == nil then fail("--%s needs a value\n%s", name, usage) end
      if spec[name] == "number" then
        local n = tonumber(v)
        if not n or n <= 0 then fail("--%s needs a positive number, not %q", name, v) end
        v = n
      end
      if spec[name] == "list" then
        o[name] = o[name] or {}
        table.insert(o[name], v)
      else
        o[name] = v
      end
    end
    i = i + 1
  end
  return o
end

function M.split(list)
  local t = {}
  for item in (list or ""):gmatch("[^,%s]+") do t[#t + 1] = item end
  return t
end

-- Sleeps in short steps so that SIGINT is noticed promptly (os.execute would ignore it).
function M.sleep(seconds)
  local left = seconds
  while left > 0 do
    local step = math.min(left, 1)
    local p = io.popen("sleep " .. step)
    if p then p:close() end
    left = left - step
  end
end

-- Runs fn once, or every `every` seconds until interrupted.
-- A --watch run prints a summary every round: each line then starts with the UTC time, so
-- a log of many rounds says when each happened.
function M.stamped(line, watch)
  if not watch then return line end
  return os.date("!%Y-%m-%dT%H:%M:%SZ ") .. line
end

function M.repeat_every(every, fn)
  if not every then return fn() end
  while true do
    fn()
    M.sleep(every)
  end
end

-- Calls main(); on error prints "<prog>: <message>" on stderr and exits non-zero. An
-- interrupt (Ctrl-C) exits with 130 after the open transaction was rolled back.
function M.main(prog, main)
  -- A sync's heap is a little long-lived state and, per page, thousands of rows that die as
  -- soon as the page is written: the generational collector frees them young, where the
  -- incremental one lets the heap grow to twice its peak first (bench/sync_org.sh: peak RSS
  -- of 20 tables in parallel down by about a sixth).
  collectgarbage("generational")
  local ok, err = xpcall(main, function(e)
    if type(e) == "string" and not M.is_interrupt(e) and os.getenv("DVLUA_SYNC_TRACE") then
      return debug.traceback(e, 2)
    end
    return e
  end)
  if ok then os.exit(err == false and 1 or 0) end
  if M.is_interrupt(err) then
    io.stderr:write(prog, ": interrupted; the mirror holds the last completed page\n")
    os.exit(130)
  end
  io.stderr:write(prog, ": ", M.error_text(err), "\n")
  os.exit(1)
end

M.unpack = unpack
return M
