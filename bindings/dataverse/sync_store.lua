-- dataverse.sync_store: the SQL stores behind dataverse.sync (SQLite and PostgreSQL), through
-- LuaDBI (Debian's lua-dbi-sqlite3 and lua-dbi-postgresql). postgres() hands PostgreSQL to
-- dataverse.sync_pg (libpq and COPY, the module dataverse_pg) when that module loads.
--
--   local S = require "dataverse.sync_store"
--   local store = S.sqlite("mirror.sqlite")            -- or S.postgres(dsn_or_nil)
--   store:exec("UPDATE t SET a = ? WHERE id = ?", a, id)  -- values are always bound, never spliced
--   for row in store:rows("SELECT * FROM t WHERE b > ?", 3) do … end
--   store:insert_rows("t", {"id", "a"}, rows, "upsert")  -- multi-row prepared INSERTs
--
-- Identifiers (table and column names) cannot be bound: they come from metadata and the
-- command line, pass ident() (plain names only) and are always double-quoted. Every value
-- goes through a placeholder. Statements that write are prepared once and kept per
-- connection; a schema change (DDL) drops them all.
local M = {}

local function fail(fmt, ...)
  error(string.format(fmt, ...), 0)
end

local function ident(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or #name > 63 then
    fail("not a valid table or column name: %q", tostring(name))
  end
  return '"' .. name .. '"'
end
M.ident = ident

local Store = {}
Store.__index = Store
M.Store = Store

local function clean(err)
  err = tostring(err or "unknown error")
  err = err:gsub("^[^:]*:%d+: ", ""):gsub("^Error %w+ statement handle: ", ""):gsub("%s+$", "")
  return err
end

-- A statement, prepared once per SQL text for writes (reused for every row and page).
function Store:stmt(sql, keep)
  local st = keep and self.stmts[sql]
  if st then return st end
  local err
  st, err = self.conn:prepare(sql)
  if not st then fail("%s: %s", self.what, clean(err)) end
  if keep then self.stmts[sql] = st end
  return st
end

function Store:forget()
  for _, st in pairs(self.stmts) do st:close() end
  self.stmts = {}
end

-- Runs a statement with bound values; returns how many rows it touched.
function Store:exec(sql, ...)
  local keep = not sql:match("^%s*[Ss][Ee][Ll][Ee][Cc][Tt]") and not sql:match("^%s*PRAGMA")
  local st = self:stmt(sql, keep)
  local ok, err = st:execute(...)
  if not ok then
    if not keep then st:close() end
    fail("%s: %s", self.what, clean(err))
  end
  local n = st:affected() or 0
  if not keep then st:close() end
  return n
end

-- Runs a schema change; prepared statements may refer to what it changes.
function Store:ddl(sql)
  self:forget()
  return self:exec(sql)
end

-- A query's statement, executed (closed and raised on failure).
local function query(self, sql, ...)
  local st = self:stmt(sql, false)
  local ok, err = st:execute(...)
  if not ok then
    st:close()
    fail("%s: %s", self.what, clean(err))
  end
  return st
end

-- Rows of a query, as tables keyed by column name (SQL NULL is absent).
function Store:rows(sql, ...)
  local st = query(self, sql, ...)
  local it = st:rows(true)
  return function()
    local row = it()
    if row == nil then st:close() end
    return row
  end
end

-- The first row of a query (or nil), with the statement closed: SQLite refuses to commit
-- while a statement is still open.
function Store:first(sql, ...)
  local st = query(self, sql, ...)
  local row = st:fetch(true)
  st:close()
  return row
end

-- Existing columns of a table: a set {name = declared type}, or nil when there is no table.
function Store:columns_of(name)
  local cols, any = {}, false
  if self.kind == "sqlite" then
    for row in self:rows("SELECT name, type FROM pragma_table_info(?)", name) do
      cols[row.name] = row.type or ""
      any = true
    end
  else
    for row in self:rows("SELECT column_name AS name, data_type AS type FROM information_schema.columns " ..
      "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position", name) do
      cols[row.name] = row.type
      any = true
    end
  end
  return any and cols or nil
end

function Store:begin()
  -- SQLite: IMMEDIATE takes the write lock now (waiting up to busy_timeout for another run).
  self:exec(self.kind == "sqlite" and "BEGIN IMMEDIATE" or "BEGIN")
  self.in_tx = true
end

function Store:commit()
  self:exec("COMMIT")
  self.in_tx = false
end

function Store:rollback()
  if self.in_tx then
    self.in_tx = false
    local st = self.conn:prepare("ROLLBACK")
    if st then
      st:execute()
      st:close()
    end
  end
end

-- Runs fn inside one transaction: committed when it returns, rolled back when it raises.
function Store:atomic(fn, ...)
  self:begin()
  local ok, err = pcall(fn, ...)
  if not ok then
    self:rollback()
    error(err, 0)
  end
  self:commit()
  return err
end

-- Largest number of bound values in one statement: SQLite's limit; for PostgreSQL, LuaDBI
-- rewrites ? into $n in a buffer sized for at most three digits per placeholder.
local MAX_PARAMS = { sqlite = 32766, postgres = 999 }
local MAX_ROWS = 256

-- Inserts rows (arrays of bindable values, in `names` order) into `tbl` with multi-row
-- prepared INSERTs. mode: nil (plain insert) or "upsert" (on a conflict of the first column,
-- every other column takes the new value).
function Store:insert_rows(tbl, names, rows, mode, types)
  local n = #rows
  if n == 0 then return 0 end
  local ncol = #names
  if self.kind == "postgres" and types and self.json_batches then return self:insert_json(tbl, names, rows, mode, types) end
  local per = math.max(1, math.min(MAX_ROWS, MAX_PARAMS[self.kind] // ncol))
  local qcols = {}
  for i, c in ipairs(names) do qcols[i] = ident(c) end
  local tuple = "(" .. string.rep("?", ncol, ",") .. ")"
  local suffix = ""
  if mode == "upsert" then
    local sets = {}
    for i = 2, ncol do sets[#sets + 1] = qcols[i] .. " = excluded." .. qcols[i] end
    suffix = " ON CONFLICT (" .. qcols[1] .. ") DO " .. (#sets > 0 and ("UPDATE SET " .. table.concat(sets, ", ")) or "NOTHING")
  end
  local head = "INSERT INTO " .. ident(tbl) .. " (" .. table.concat(qcols, ", ") .. ") VALUES "
  local cache = self.batches
  local function stmt_for(k)
    local key = head .. k .. suffix
    local st = cache[key]
    if not st then
      st = self:stmt(head .. string.rep(tuple, k, ",") .. suffix, true)
      cache[key] = st
    end
    return st
  end
  local args, i = {}, 1
  while i <= n do
    local k = math.min(per, n - i + 1)
    -- Full batches share one statement; the tail goes in batches of powers of two, so that
    -- a handful of statements serves every page size.
    if k < per then
      local p = 1
      while p * 2 <= k do p = p * 2 end
      k = p
    end
    local st = stmt_for(k)
    local a = 0
    for r = i, i + k - 1 do
      local row = rows[r]
      for c = 1, ncol do args[a + c] = row[c] end
      a = a + ncol
    end
    local ok, err = st:execute(table.unpack(args, 1, a))
    if not ok then fail("%s: %s", self.what, clean(err)) end
    i = i + k
  end
  return n
end

-- PostgreSQL, when store.json_batches is set: the whole batch as one JSON parameter,
-- unpacked by the server (jsonb_array_elements) and cast to each column's type, one
-- statement per page instead of one per 999 values. Not the default: it measured slower
-- (bench/sync_store_write.lua, docs/SYNC.md). types: the SQL type of each column.
function Store:insert_json(tbl, names, rows, mode, types)
  local json = require("dataverse").json
  local NULL = json.null
  local ncol = #names
  for r = 1, #rows do
    local row = rows[r]
    for c = 1, ncol do
      if row[c] == nil then row[c] = NULL end
    end
  end
  local key = "json " .. tbl .. " " .. table.concat(names, ",") .. " " .. (mode or "")
  local st = self.batches[key]
  if not st then
    local qcols, sel = {}, {}
    for i, c in ipairs(names) do
      qcols[i] = ident(c)
      sel[i] = string.format("(e->>%d)::%s", i - 1, types[i])
    end
    local sql = "INSERT INTO " .. ident(tbl) .. " (" .. table.concat(qcols, ", ") .. ") SELECT " .. table.concat(sel, ", ") ..
      " FROM jsonb_array_elements(?::jsonb) AS e"
    if mode == "upsert" then
      local sets = {}
      for i = 2, ncol do sets[#sets + 1] = qcols[i] .. " = excluded." .. qcols[i] end
      sql = sql .. " ON CONFLICT (" .. qcols[1] .. ") DO " ..
        (#sets > 0 and ("UPDATE SET " .. table.concat(sets, ", ")) or "NOTHING")
    end
    st = self:stmt(sql, true)
    self.batches[key] = st
  end
  local ok, err = st:execute(json.encode(rows))
  if not ok then fail("%s: %s", self.what, clean(err)) end
  return #rows
end

function Store:close()
  if self.conn then
    self:rollback()
    self:forget()
    self.batches = {}
    self.conn:close()
    self.conn = nil
  end
end
Store.__close = Store.close
Store.__gc = Store.close

local function new(conn, kind, what)
  local self = setmetatable({ conn = conn, kind = kind, what = what, stmts = {}, batches = {} }, Store)
  -- Statements are committed by the explicit BEGIN … COMMIT of each page.
  conn:autocommit(true)
  return self
end

-- Batches share the statement cache; forget() closes them with the rest.
local forget = Store.forget
function Store:forget()
  forget(self)
  self.batches = {}
end

local function load(driver, pkg)
  local ok, DBI = pcall(require, "DBI")
  if ok then ok = pcall(require, "dbd." .. driver) end
  if not ok then
    fail("the LuaDBI driver for %s is not installed (Debian package %s)", driver, pkg)
  end
  return DBI
end

-- Opens (creating when missing) a SQLite database. WAL lets readers query the mirror while
-- a run writes to it. opts.readonly: only reads follow (nothing is set or written).
function M.sqlite(path, opts)
  local DBI = load("sqlite3", "lua-dbi-sqlite3")
  local conn, err = DBI.Connect("SQLite3", path)
  if not conn then fail("cannot open database %s: %s", path, clean(err):gsub("^Failed to connect to database: ", "")) end
  local self = new(conn, "sqlite", "database " .. path)
  if opts and opts.readonly then
    self:exec("PRAGMA busy_timeout = 30000")
    self:exec("PRAGMA query_only = ON")
    return self
  end
  local ok, e = pcall(function()
    self:exec("PRAGMA busy_timeout = 30000")
    -- Turning a new file to WAL needs it alone, and SQLite answers "locked" at once rather
    -- than waiting when another run is doing the same: wait here (up to the busy timeout).
    local mode
    for try = 1, 300 do
      local okm, m = pcall(self.first, self, "PRAGMA journal_mode = WAL")
      if okm then
        mode = m
        break
      end
      if try == 300 or not tostring(m):find("locked", 1, true) then error(m, 0) end
      require("dataverse.core").sleep(0.1)
    end
    if not mode then fail("cannot open database %s", path) end
    -- A committed page is durable against a process kill at once, and against a power cut
    -- as soon as the WAL is synced: NORMAL is the documented setting for WAL.
    self:exec("PRAGMA synchronous = NORMAL")
    -- A fixed page cache of 1 MiB (SQLite's default is 2 MB): it fills within the first
    -- page of a load, so a run's memory is the same at ten thousand rows as at a million,
    -- and the mirror's index pages beyond it come from the operating system's file cache.
    self:exec("PRAGMA cache_size = -1024")
    -- Writing proves the file can be written (a read-only file opens fine). Inside a write
    -- transaction that is rolled back: another run opening the same file at the same moment
    -- neither sees the probe nor trips over it.
    self:begin()
    self:exec("CREATE TABLE IF NOT EXISTS sync_probe (x INTEGER)")
    self:exec("INSERT INTO sync_probe VALUES (1)")
    self:rollback()
  end)
  if not ok then
    self:close()
    fail("cannot use database %s: %s", path, tostring(e):gsub("^database [^:]*: ", ""))
  end
  return self
end

-- A connection error without secrets: libpq may echo the connection string.
local function connect_error(err)
  err = clean(err):gsub("^Failed to connect to database: ", ""):gsub("%s*\n%s*", "; "):gsub(";%s*$", "")
  err = err:gsub("password%s*=%s*'[^']*'", "password=***"):gsub("password%s*=%s*%S+", "password=***")
    :gsub("(://[^:/@]*:)[^@]*@", "%1***@")
  fail("cannot connect to PostgreSQL: %s", err)
end

-- The writer for PostgreSQL: "libpq" (the module dataverse_pg, COPY) when it loads, else
-- "luadbi"; DVLUA_PG_WRITER=libpq or luadbi (or opts.writer) insists on one.
local fallback_said = false
local function pg_module(writer)
  if writer == "luadbi" then return nil end
  local ok, mod = pcall(require, "dataverse_pg")
  if ok then return mod end
  local msg = tostring(mod)
  -- Not found, or found but not loadable (libpq5 missing: the loader's second line says so).
  local why = msg:match("^module '[^']*' not found") and "not found" or msg:match("\n%s*([^\n]+)") or msg
  if writer == "libpq" then
    fail("the PostgreSQL module dataverse_pg (libpq, COPY) cannot be loaded: %s", why)
  end
  if not fallback_said then
    fallback_said = true
    io.stderr:write("sync: the module dataverse_pg (libpq, COPY) is not installed; writing to PostgreSQL ",
      "through LuaDBI, several times slower (", why, ")\n")
  end
  return nil
end

-- Connects to PostgreSQL: a libpq connection string ("host=… dbname=…") or URI, or the PG*
-- environment variables when dsn is nil or empty. opts.writer: "libpq" or "luadbi".
function M.postgres(dsn, opts)
  local writer = opts and opts.writer or os.getenv("DVLUA_PG_WRITER")
  if writer == "" then writer = nil end
  if writer ~= nil and writer ~= "libpq" and writer ~= "luadbi" then
    fail("unknown PostgreSQL writer %q (DVLUA_PG_WRITER: libpq or luadbi)", writer)
  end
  local mod = pg_module(writer)
  if mod then
    local ok, store = pcall(require("dataverse.sync_pg").connect, mod, dsn)
    if not ok then connect_error(store) end
    return store
  end
  local DBI = load("postgresql", "lua-dbi-postgresql")
  -- PQsetdbLogin takes a whole connection string or URI in its database name argument; an
  -- empty one leaves everything to the PG* variables.
  local conn, err = DBI.Connect("PostgreSQL", dsn or "")
  if not conn then connect_error(err) end
  local self = new(conn, "postgres", "PostgreSQL")
  self.writer = "LuaDBI"
  self:exec("SET client_min_messages = warning")
  return self
end

return M
