-- dataverse.sync_pg: the PostgreSQL store of dataverse.sync over libpq (the C module
-- dataverse_pg, src/pg/), writing pages with COPY. The same methods as the LuaDBI stores of
-- dataverse.sync_store (whose generic ones it inherits); chosen by sync_store.postgres when
-- the module loads.
--
--   local store = require("dataverse.sync_pg").connect(require "dataverse_pg", dsn)
--   store:exec("UPDATE t SET a = ? WHERE id = ?", a, id)   -- bound parameters, as elsewhere
--   store:insert_rows("t", {"id", "a"}, rows, "upsert")    -- COPY, then an upsert if needed
--
-- insert_rows COPYs a page straight into its table inside a savepoint. Only when a row of the
-- page is there already (a unique violation: a delta that changes a row twice across pages)
-- does it roll back to the savepoint and take the slower path: COPY into a temporary table,
-- then INSERT … SELECT … ON CONFLICT DO UPDATE. Either way the page is in the caller's
-- transaction, with its state row.
local S = require "dataverse.sync_store"
local ident = S.ident

local M = {}

local Pg = setmetatable({}, { __index = S.Store })
Pg.__index = Pg

local function fail(fmt, ...)
  error(string.format(fmt, ...), 0)
end

local function message(err)
  if type(err) == "table" then return tostring(err.message or err) end
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

-- "?" placeholders (as the LuaDBI stores take them) become libpq's $1, $2, … The engine's
-- statements are a few texts per table (values are bound, never part of them): cached.
local numbered = {}
local function dollars(sql)
  local s = numbered[sql]
  if not s then
    local n = 0
    s = sql:gsub("%?", function()
      n = n + 1
      return "$" .. n
    end)
    numbered[sql] = s
  end
  return s
end

function Pg:call(method, sql, ...)
  local conn = self.conn
  if not conn then fail("%s: the connection is closed", self.what) end
  local ok, res = pcall(conn[method], conn, sql, ...)
  if not ok then fail("%s: %s", self.what, message(res)) end
  return res
end

function Pg:exec(sql, ...)
  return self:call("exec", dollars(sql), ...)
end

function Pg:ddl(sql)
  return self:exec(sql)
end

function Pg:rows(sql, ...)
  local all, i = self:call("query", dollars(sql), ...), 0
  return function()
    i = i + 1
    return all[i]
  end
end

function Pg:first(sql, ...)
  return self:call("query", dollars(sql), ...)[1]
end

function Pg:forget() end

function Pg:rollback()
  local conn = self.conn
  if conn and (self.in_tx or conn:status() ~= "idle") then
    self.in_tx = false
    pcall(conn.exec, conn, "ROLLBACK")
  end
end

local function quoted(names)
  local q = {}
  for i, c in ipairs(names) do q[i] = ident(c) end
  return q
end

function Pg:upsert_via_temp(tbl, names, rows)
  local q = quoted(names)
  local list = table.concat(q, ", ")
  local sets = {}
  for i = 2, #q do sets[#sets + 1] = q[i] .. " = excluded." .. q[i] end
  self:exec("CREATE TEMP TABLE _dv_copy ON COMMIT DROP AS SELECT " .. list .. " FROM " .. ident(tbl) .. " WHERE false")
  self:call("copy", "COPY _dv_copy (" .. list .. ") FROM STDIN", rows, #names)
  self:exec("INSERT INTO " .. ident(tbl) .. " (" .. list .. ") SELECT " .. list .. " FROM _dv_copy ON CONFLICT (" ..
    q[1] .. ") DO " .. (#sets > 0 and ("UPDATE SET " .. table.concat(sets, ", ")) or "NOTHING"))
  self:exec("DROP TABLE _dv_copy")
end

-- Writes rows (arrays of values in `names` order, nil for NULL) into tbl. mode "upsert": a
-- row whose first column is already there takes the new values.
function Pg:insert_rows(tbl, names, rows, mode)
  local n = #rows
  if n == 0 then return 0 end
  if not self.in_tx then return self:atomic(self.insert_rows, self, tbl, names, rows, mode) end
  local key = tbl .. "\0" .. table.concat(names, ",")
  local sql = self.copies[key]
  if not sql then
    sql = "COPY " .. ident(tbl) .. " (" .. table.concat(quoted(names), ", ") .. ") FROM STDIN"
    self.copies[key] = sql
  end
  if mode ~= "upsert" then
    self:call("copy", sql, rows, #names)
    return n
  end
  local conn = self.conn
  -- The savepoint rides with the COPY (one round trip) and is not released: the page's
  -- COMMIT ends it, and each page is its own transaction.
  local ok, err = pcall(conn.copy, conn, "SAVEPOINT dv_page; " .. sql, rows, #names)
  if ok then return n end
  if self.conn:status() == "failed transaction" then self:exec("ROLLBACK TO SAVEPOINT dv_page") end
  if type(err) == "table" and err.sqlstate == "23505" then
    self:upsert_via_temp(tbl, names, rows)
    return n
  end
  if type(err) == "table" and err.row and names[err.column] then
    fail("%s: %s (table %s, row %d of the page, column %s)", self.what, message(err), tbl, err.row, names[err.column])
  end
  fail("%s: %s", self.what, message(err))
end

-- Gives a stage filled without its key (dataverse.sync: store.deferred_key) the primary key
-- on column `id`. Should the server have sent a row twice, the copy with the highest
-- `version` (then the one written last) stays, as an upsert would have left it.
function Pg:add_key(tbl, id, version)
  local T, I, V = ident(tbl), ident(id), ident(version)
  if self:first("SELECT 1 AS k FROM pg_constraint WHERE conrelid = to_regclass(?) AND contype = 'p'", T) then
    return -- a stage begun by an earlier version, keyed from the start
  end
  -- Building the index checks uniqueness: the duplicates are looked for only when it fails.
  local add = string.format("ALTER TABLE %s ADD PRIMARY KEY (%s)", T, I)
  self:exec("SAVEPOINT dv_key")
  local conn = self.conn
  local ok, err = pcall(conn.exec, conn, add)
  if ok then
    self:exec("RELEASE SAVEPOINT dv_key")
    return
  end
  self:exec("ROLLBACK TO SAVEPOINT dv_key")
  self:exec("RELEASE SAVEPOINT dv_key")
  if not (type(err) == "table" and err.sqlstate == "23505") then fail("%s: %s", self.what, message(err)) end
  self:exec(string.format("DELETE FROM %s a USING %s b WHERE a.%s = b.%s AND (COALESCE(a.%s, -1), a.ctid) < " ..
    "(COALESCE(b.%s, -1), b.ctid)", T, T, I, I, V, V))
  self:exec(add)
end

function Pg:close()
  if self.conn then
    self:rollback()
    self.conn:close()
    self.conn = nil
  end
end
Pg.__close = Pg.close
Pg.__gc = Pg.close

-- A libpq connection string or URI, or the PG* variables when dsn is nil or empty.
function M.connect(pg, dsn)
  local ok, conn = pcall(pg.connect, dsn or "")
  if not ok then fail("%s", message(conn)) end
  local self = setmetatable({ conn = conn, kind = "postgres", what = "PostgreSQL", writer = "libpq COPY", copies = {},
    exact_floats = true, deferred_key = true },
    Pg)
  self:exec("SET client_min_messages = warning")
  -- The store's statements are short; compiling them (for the large row estimates of a
  -- freshly loaded stage) costs more than it saves.
  self:exec("SET jit = off")
  return self
end

return M
