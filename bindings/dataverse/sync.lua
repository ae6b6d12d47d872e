-- dataverse.sync: keep a SQL table in step with a Dataverse table through change tracking.
-- Shared by scripts/sync_sqlite.lua, scripts/sync_postgres.lua and scripts/changes_jsonl.lua.
--
--   local sync = require "dataverse.sync"
--   local store = sync.sqlite("mirror.sqlite")        -- or sync.postgres(dsn)
--   local summary = sync.mirror(org, store, {table = "account", columns = {…}})
--   print(sync.summary_line(summary))
--
-- Exactness (docs/SYNC.md has the long form): one run is one database transaction. It
-- reads the saved token, applies every change page by page, and saves the new token, then
-- commits. The token therefore never covers a row the mirror does not hold, and rows are
-- never committed without the token that covers them: whenever the process stops, the
-- database holds either the state before the run or the state after it. Applying a change
-- twice is harmless (upsert by primary id; deleting an absent row is a no-op), so a rerun
-- from the saved token always ends exact.
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

-- JSON null, once known. No pcall here or in other per-row paths: a Ctrl-C arriving inside
-- a pcall would be swallowed instead of stopping the run.
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

-- Identifiers come from metadata and the command line and end up in SQL: only plain names
-- pass, and they are always double-quoted.
local function ident(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or #name > 63 then
    fail("not a valid table or column name: %q", tostring(name))
  end
  return '"' .. name .. '"'
end
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
  Decimal = { "REAL", "numeric", "num" },
  Money = { "REAL", "numeric", "num" },
  Double = { "REAL", "double precision", "num" },
  Boolean = { "INTEGER", "boolean", "bool" },
  DateTime = { "TEXT", "timestamptz", "text" },
  Uniqueidentifier = { "TEXT", "uuid", "guid" },
  Lookup = { "TEXT", "uuid", "guid" },
  Customer = { "TEXT", "uuid", "guid" },
  Owner = { "TEXT", "uuid", "guid" },
}
M.TYPES = TYPES

local LOOKUPS = { Lookup = true, Customer = true, Owner = true }

-- The name a column has in Web API rows: lookups come back as _<name>_value.
local function wire_name(col)
  if LOOKUPS[col.type] then return "_" .. col.name .. "_value" end
  return col.name
end
M.wire_name = wire_name

---------------------------------------------------------------------------------------------
-- Metadata.
---------------------------------------------------------------------------------------------
local function request_json(org, path)
  local ok, status, _, body = pcall(org.request, org, "GET", path)
  if not ok then
    local err = status
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
  return t
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

---------------------------------------------------------------------------------------------
-- Stores: SQLite and PostgreSQL behind one small interface.
---------------------------------------------------------------------------------------------
local Store = {}
Store.__index = Store

-- Runs a statement; returns its cursor (for a query) or the count of rows it touched.
function Store:raw(sql)
  local res, err = self.conn:execute(sql)
  if res == nil then fail("%s: %s", self.what, (tostring(err):gsub("^LuaSQL: ", ""))) end
  return res
end

-- Runs a statement whose rows, if any, do not matter; returns the count of rows it touched.
function Store:exec(sql)
  local res = self:raw(sql)
  if type(res) == "userdata" then
    res:close()
    return 0
  end
  return res
end

function Store:rows(sql)
  local cur = self:raw(sql)
  return function()
    local row = cur:fetch({}, "a")
    if row == nil then cur:close() end
    return row
  end
end

-- The first row of a query (or nil), with the cursor closed: SQLite refuses to commit while
-- a statement is still open.
function Store:first(sql)
  local cur = self:raw(sql)
  if type(cur) ~= "userdata" then return nil end
  local row = cur:fetch({}, "a")
  cur:close()
  return row
end

function Store:literal(v, kind)
  if is_null(v) then return "NULL" end
  if kind == "bool" then
    if self.kind == "sqlite" then return v and "1" or "0" end
    return v and "TRUE" or "FALSE"
  end
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "NULL" end
    if math.type(v) == "integer" then return string.format("%d", v) end
    if kind == "int" and v == math.floor(v) then return string.format("%d", math.tointeger(v)) end
    return string.format("%.17g", v)
  end
  if type(v) == "boolean" then return v and "1" or "0" end
  if type(v) == "table" then v = json().encode(v) end
  -- GUIDs compare as text in SQLite: one spelling, whatever the server sent.
  if kind == "guid" then v = tostring(v):lower():gsub("[{}]", "") end
  return "'" .. self.conn:escape(tostring(v)) .. "'"
end

function Store:sqltype(col)
  local t = TYPES[col.type] or TYPES.String
  return self.kind == "sqlite" and t[1] or t[2]
end

function Store:kind_of(col)
  return (TYPES[col.type] or TYPES.String)[3]
end

-- Existing column names of a table (a set), or nil when the table does not exist.
function Store:columns_of(name)
  local cols, any = {}, false
  local sql
  if self.kind == "sqlite" then
    sql = "PRAGMA table_info(" .. ident(name) .. ")"
  else
    sql = "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() " ..
      "AND table_name = " .. self:literal(name) .. " ORDER BY ordinal_position"
  end
  for row in self:rows(sql) do
    cols[row.name] = true
    any = true
  end
  return any and cols or nil
end

function Store:begin(lock_name)
  if self.kind == "sqlite" then
    -- IMMEDIATE takes the write lock now: two syncs into one file run one after the other.
    self:exec("BEGIN IMMEDIATE")
  else
    self:exec("BEGIN")
    self:exec("SELECT pg_advisory_xact_lock(hashtext(" .. self:literal("dvlua sync " .. lock_name) .. "))")
  end
  self.in_tx = true
end

function Store:commit()
  self:exec("COMMIT")
  self.in_tx = false
end

function Store:rollback()
  if self.in_tx then
    self.in_tx = false
    self.conn:execute("ROLLBACK")
  end
end

function Store:close()
  if self.conn then
    self:rollback()
    self.conn:close()
    self.conn = nil
  end
  if self.env then
    self.env:close()
    self.env = nil
  end
end
Store.__close = Store.close
Store.__gc = Store.close

-- Opens (creating when missing) a SQLite database. WAL lets readers query the mirror while
-- a run writes to it.
function M.sqlite(path)
  local driver = require "luasql.sqlite3"
  local env = driver.sqlite3()
  local conn, err = env:connect(path)
  if not conn then
    env:close()
    fail("cannot open database %s: %s", path, tostring(err):gsub("^LuaSQL: ", ""))
  end
  local self = setmetatable({ conn = conn, env = env, kind = "sqlite", what = "database " .. path }, Store)
  local ok, e = pcall(function()
    self:exec("PRAGMA busy_timeout = 30000")
    local mode = self:first("PRAGMA journal_mode = WAL")
    if not mode then fail("cannot open database %s", path) end
  end)
  if not ok then
    self:close()
    fail("cannot use database %s: %s", path, tostring(e):gsub("^database [^:]*: ", ""))
  end
  return self
end

-- Connects to PostgreSQL: a libpq connection string ("host=… dbname=…") or URI, or the PG*
-- environment variables when dsn is nil or empty.
function M.postgres(dsn)
  local driver = require "luasql.postgres"
  local env = driver.postgres()
  local conn, err = env:connect(dsn or "")
  if not conn then
    env:close()
    err = tostring(err):gsub("^LuaSQL: error connecting to database%. ", ""):gsub("%s+$", ""):gsub("%s*\n%s*", "; ")
    -- libpq may echo the connection string; never repeat a password.
    err = err:gsub("password=%S+", "password=***")
    fail("cannot connect to PostgreSQL: %s", err)
  end
  local self = setmetatable({ conn = conn, env = env, kind = "postgres", what = "PostgreSQL" }, Store)
  self:exec("SET client_min_messages = warning")
  return self
end

---------------------------------------------------------------------------------------------
-- The mirror.
---------------------------------------------------------------------------------------------
local STATE = "sync_state"

local function ensure_state(store)
  store:exec("CREATE TABLE IF NOT EXISTS " .. ident(STATE) ..
    " (table_name TEXT PRIMARY KEY, token TEXT, columns TEXT, updated TEXT)")
end

local function read_state(store, name)
  local sql = "SELECT token, columns FROM " .. ident(STATE) .. " WHERE table_name = " .. store:literal(name)
  return store:first(sql)
end

local function save_state(store, name, token, cols)
  local names = {}
  for i, c in ipairs(cols) do names[i] = c.name end
  local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ")
  store:exec("DELETE FROM " .. ident(STATE) .. " WHERE table_name = " .. store:literal(name))
  store:exec(string.format("INSERT INTO %s (table_name, token, columns, updated) VALUES (%s, %s, %s, %s)",
    ident(STATE), store:literal(name), store:literal(token), store:literal(table.concat(names, ",")),
    store:literal(stamp)))
end

local function create_table(store, name, cols)
  local defs = {}
  for i, c in ipairs(cols) do
    defs[i] = ident(c.name) .. " " .. store:sqltype(c) .. (i == 1 and " PRIMARY KEY" or "")
  end
  store:exec("CREATE TABLE " .. ident(name) .. " (" .. table.concat(defs, ", ") .. ")")
end

-- Writes one change into `into`; returns "inserted", "updated", "deleted" or nil.
local function apply(store, into, cols, change)
  local idcol = cols[1]
  if change.type == "removed_or_deleted" then
    local n = store:exec("DELETE FROM " .. ident(into) .. " WHERE " .. ident(idcol.name) .. " = " ..
      store:literal(change.id, "guid"))
    return (tonumber(n) or 0) > 0 and "deleted" or nil
  end
  local row = change.row or change
  local id = row[idcol.name]
  if is_null(id) then fail("a changed row came without its primary id %q", idcol.name) end
  local names, values, sets = {}, {}, {}
  for i, c in ipairs(cols) do
    local v = row[wire_name(c)]
    if v == nil then v = row[c.name] end
    names[i] = ident(c.name)
    values[i] = store:literal(v, store:kind_of(c))
    if i > 1 then sets[#sets + 1] = names[i] .. " = " .. values[i] end
  end
  local n = store:exec(string.format("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING",
    ident(into), table.concat(names, ", "), table.concat(values, ", ")))
  if (tonumber(n) or 0) > 0 then return "inserted" end
  if #sets > 0 then
    store:exec(string.format("UPDATE %s SET %s WHERE %s = %s", ident(into), table.concat(sets, ", "),
      names[1], values[1]))
  end
  return "updated"
end

-- Progress on stderr, only when stderr is a terminal.
local function progress_reporter(name, enabled)
  if enabled == nil then
    local ok = os.execute("test -t 2")
    enabled = ok == true or ok == 0
  end
  if not enabled then return function() end, function() end end
  local last = 0
  local function show(s, force)
    local t = now()
    if not force and t - last < 0.5 then return end
    last = t
    local dt = math.max(t - s.started, 1e-3)
    io.stderr:write(string.format("\r%s: %d rows, %.0f rows/s, %d pages ", name, s.rows, s.rows / dt, s.pages))
    io.stderr:flush()
  end
  local function done()
    io.stderr:write("\r\27[K")
    io.stderr:flush()
  end
  return show, done
end

-- Pages of changes: calls on_change(change) for each, returns the new data token.
-- retrieve_entity_changes hands over one page per call and the token with the last one.
local function each_change(org, opts, on_change, on_page)
  local cookie, token
  repeat
    local r = org:retrieve_entity_changes {
      entity = opts.entity,
      columns = opts.columns,
      data_version = opts.since,
      page_size = opts.page_size,
      paging_cookie = cookie,
    }
    for _, change in ipairs(r.changes or {}) do on_change(change) end
    on_page()
    cookie = r.paging_cookie
    token = r.data_token
  until not r.more_records
  if token == nil or is_null(token) then fail("the last page of changes carried no data token") end
  return token
end
M.each_change = each_change

function M.is_expired(err)
  local dv = require "dataverse"
  if type(dv.is_expired_token) == "function" then return dv.is_expired_token(err) end
  return type(err) == "table" and err.code == "0x80044352"
end

-- One run: see the top of this file. opts: table, columns (list), page_size, progress (bool
-- or nil for "when stderr is a terminal"), into (mirror table name, default the table's).
local function run_once(org, store, meta, cols, opts, full, stats)
  local name = opts.into or meta.name
  local target = name
  store:begin(name)
  ensure_state(store)
  local state = read_state(store, name)
  local existing = store:columns_of(name)
  local since = state and not is_null(state.token) and state.token or nil
  if full or not since or not existing then
    full = true
    since = nil
    -- A full load goes to a new table swapped in at commit: readers keep the old mirror.
    target = name .. "__dvnew"
    ident(target)
    store:exec("DROP TABLE IF EXISTS " .. ident(target))
    create_table(store, target, cols)
  else
    local keep = {}
    for _, c in ipairs(cols) do
      keep[c.name] = true
      if not existing[c.name] then
        store:exec("ALTER TABLE " .. ident(name) .. " ADD COLUMN " .. ident(c.name) .. " " .. store:sqltype(c))
        stats.added[#stats.added + 1] = c
      end
    end
    -- A column no longer mirrored (gone from the table, or from --columns) would go stale.
    for col in pairs(existing) do
      if not keep[col] then store:exec("ALTER TABLE " .. ident(name) .. " DROP COLUMN " .. ident(col)) end
    end
  end
  stats.full = full
  local wanted = {}
  for i, c in ipairs(cols) do wanted[i] = wire_name(c) end
  local show, done = progress_reporter(name, opts.progress)
  -- Looked up through the module table so that a caller can wrap it (to log, or to test).
  local token = M.each_change(org, { entity = meta.name, columns = wanted, since = since, page_size = opts.page_size },
    function(change)
      local what = apply(store, target, cols, change)
      if what then stats[what] = stats[what] + 1 end
      stats.rows = stats.rows + 1
      show(stats)
    end,
    function()
      stats.pages = stats.pages + 1
      show(stats)
    end)
  done()
  if #stats.added > 0 and not full then M.backfill(org, store, meta, name, stats.added, opts) end
  if full then
    local keep = store:columns_of(name)
    if keep then store:exec("DROP TABLE " .. ident(name)) end
    store:exec("ALTER TABLE " .. ident(target) .. " RENAME TO " .. ident(name))
    if store.kind == "postgres" then
      -- The key's index keeps the temporary name; give it back so the next reload can reuse it.
      store:exec("ALTER TABLE " .. ident(name) .. " RENAME CONSTRAINT " .. ident(target .. "_pkey") .. " TO " ..
        ident(name .. "_pkey"))
    end
  end
  save_state(store, name, token, cols)
  store:commit()
  stats.token = token
end

-- Columns added to a live mirror hold NULL for rows that did not change since the token;
-- fill them from the table's current values (any later change shows up in the next delta,
-- so the values can only be as new as or newer than the token, as delta values are too).
function M.backfill(org, store, meta, name, added, opts)
  local select_cols = { meta.id }
  for _, c in ipairs(added) do select_cols[#select_cols + 1] = wire_name(c) end
  local idcol = meta.columns[meta.id]
  for row in org:query(meta.name, { columns = select_cols, page_size = opts.page_size }) do
    local sets = {}
    for _, c in ipairs(added) do
      local v = row[wire_name(c)]
      if v == nil then v = row[c.name] end
      sets[#sets + 1] = ident(c.name) .. " = " .. store:literal(v, store:kind_of(c))
    end
    store:exec(string.format("UPDATE %s SET %s WHERE %s = %s", ident(name), table.concat(sets, ", "),
      ident(meta.id), store:literal(row[meta.id], store:kind_of(idcol))))
  end
end

-- Reads the table's metadata and picks the columns; raises on an unknown table or column and
-- on a table without change tracking, so scripts can check before touching their store.
local JOB = { table = "string", columns = "table", into = "string", full = "boolean",
  page_size = "integer", progress = "boolean" }

function M.plan(org, opts)
  assert(type(opts) == "table" and type(opts.table) == "string", "opts.table is required")
  require("dataverse.util").check_options(opts, JOB, "sync", 2)
  local meta = M.describe(org, opts.table)
  if not meta.change_tracking then
    fail("table %q does not have change tracking enabled (ChangeTrackingEnabled is false)", meta.name)
  end
  return meta, M.select_columns(meta, opts.columns)
end

function M.mirror(org, store, opts)
  local meta, cols = M.plan(org, opts)
  local stats = { inserted = 0, updated = 0, deleted = 0, rows = 0, pages = 0, added = {}, started = now(),
    table = opts.into or meta.name }
  local full = opts.full or false
  for attempt = 1, 2 do
    local ok, err = pcall(run_once, org, store, meta, cols, opts, full, stats)
    if ok then break end
    store:rollback()
    if attempt == 1 and not full and M.is_expired(err) then
      -- The saved token is too old for the server: reload everything, swapped in at commit.
      full = true
      stats.expired = true
      stats.inserted, stats.updated, stats.deleted, stats.rows, stats.pages, stats.added = 0, 0, 0, 0, 0, {}
    else
      error(err, 0)
    end
  end
  stats.elapsed = now() - stats.started
  return stats
end

function M.summary_line(s)
  local how = s.expired and "full reload (token expired)" or (s.full and "full load" or "changes")
  return string.format("%s: %s, %d inserted, %d updated, %d deleted, %d pages, %.1fs", s.table, how,
    s.inserted, s.updated, s.deleted, s.pages, s.elapsed or 0)
end

---------------------------------------------------------------------------------------------
-- Script plumbing: options, --watch, a main wrapper with clear errors and exit codes.
---------------------------------------------------------------------------------------------

-- Parses `--name value`, `--name=value` and `--flag` options.
-- spec: {name = "value"|"number"|"flag"}; numbers must be positive.
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
      o[name] = v
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

-- Runs fn once, or every `every` seconds until interrupted. An interrupt during a run rolls
-- its transaction back (the mirror stays at the last completed run) and stops.
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
  local ok, err = xpcall(main, function(e)
    if type(e) == "string" and not M.is_interrupt(e) and os.getenv("DVLUA_SYNC_TRACE") then
      return debug.traceback(e, 2)
    end
    return e
  end)
  if ok then os.exit(0) end
  if M.is_interrupt(err) then
    io.stderr:write(prog, ": interrupted; the mirror holds the last completed run\n")
    os.exit(130)
  end
  io.stderr:write(prog, ": ", tostring(err), "\n")
  os.exit(1)
end

M.unpack = unpack
return M
