-- Shared by the sync specs: an in-process emulator with fault injection, rows to play with,
-- the scripts run as child processes against it, and the comparison of a mirror with the
-- table (row for row, column for column, values normalised per column type).
local assert = require "luassert"
local dv = require "dv"
local dataverse = require "dataverse"
local sync = require "dataverse.sync"

local M = {}

local NULL = dataverse.json.null or require("cjson").null

function M.connect(emu, opts)
  local o = { url = emu.url, token = "spec" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return dataverse.connect(o)
end

function M.start()
  local emu = dataverse.emulator.start { db = ":memory:", faults = "" }
  return emu, M.connect(emu)
end

-- Environment for a child script talking to this emulator.
function M.env(emu, extra)
  local env = { DATAVERSE_URL = emu.url, DATAVERSE_TOKEN = "spec" }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- Lua run before the script (`dvlua -e PRELUDE script …`): SIGKILLs the process after the
-- given page (or row) of changes, with that page applied to the open transaction.
function M.kill_prelude(at_page, at_row)
  return string.format([[
local sync = require "dataverse.sync"
local real, pages, rows = sync.each_change, 0, 0
local function die()
  local f = io.open("/proc/self/stat"); local pid = f:read("n"); f:close()
  os.execute("kill -KILL " .. pid)
end
sync.each_change = function(org, o, on_change, on_page)
  return real(org, o, function(c) on_change(c); rows = rows + 1; if rows == %d then die() end end,
    function() on_page(); pages = pages + 1; if pages == %d then die() end end)
end]], at_row or -1, at_page or -1)
end

-- Runs scripts/<name> with args against the emulator; returns {status=, stdout=, stderr=}.
function M.script(emu, name, args, opts)
  opts = opts or {}
  local argv = {}
  if opts.prelude then
    argv[#argv + 1] = "-e"
    argv[#argv + 1] = opts.prelude
  end
  argv[#argv + 1] = "scripts/" .. name
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return dv.run(argv, { env = M.env(emu, opts.env) })
end

local counter = 0

-- Creates n accounts with a value in every kind of column the emulator's account has.
function M.seed(org, n, tag)
  local ids = {}
  for i = 1, n do
    counter = counter + 1
    ids[#ids + 1] = org:create("account", {
      name = string.format("%s %d O'Brien", tag or "Account", counter),
      accountnumber = "A-" .. counter,
      numberofemployees = counter * 3,
      revenue = counter * 1000.25,
      donotemail = counter % 2 == 0,
      industrycode = (counter % 5) + 1,
      description = (counter % 3 == 0) and NULL or ("line one\nline \"two\" " .. counter),
      address1_city = "Zürich",
    })
  end
  return ids
end

-- Creates, updates and deletes a few rows; returns the counts.
function M.churn(org, ids, opts)
  opts = opts or {}
  local created = M.seed(org, opts.create or 3, "New")
  local updated, deleted = 0, 0
  for i = 1, opts.update or 2 do
    org:update("account", ids[i], { name = "Updated " .. i, revenue = 1.5 * i, donotemail = true })
    updated = updated + 1
  end
  for _ = 1, opts.delete or 2 do
    org:delete("account", table.remove(ids))
    deleted = deleted + 1
  end
  for _, id in ipairs(created) do ids[#ids + 1] = id end
  return #created, updated, deleted
end

local is_null = sync.is_null

function M.norm(v, ty)
  if is_null(v) then return nil end
  if ty == "Boolean" then
    return (v == true or v == 1 or v == "1" or v == "t" or v == "true") and "true" or "false"
  end
  local kind = (sync.TYPES[ty] or sync.TYPES.String)[3]
  if kind == "int" then return string.format("%d", math.tointeger(tonumber(v))) end
  if kind == "num" then return string.format("%.4f", tonumber(v)) end
  -- A decimal read back as a number (LuaDBI) or as PostgreSQL's exact text (libpq): compared
  -- at the precision of the double the Web API's JSON gave.
  if kind == "dec" and tonumber(v) then return sync.decimal_text(tonumber(v) + 0.0) end
  if ty == "DateTime" then return (tostring(v):gsub("%D", ""):sub(1, 14)) end
  if ty == "Uniqueidentifier" or ty == "Lookup" or ty == "Owner" or ty == "Customer" then
    return tostring(v):lower()
  end
  return tostring(v)
end

-- The table as the Web API returns it: {id = {column = normalised value}}.
function M.table_rows(org, name, columns)
  local meta, cols = sync.plan(org, { table = name, columns = columns })
  local select = {}
  for i, c in ipairs(cols) do select[i] = sync.wire_name(c) end
  local out, n = {}, 0
  for row in org:query(name, { columns = select }) do
    local r = {}
    for _, c in ipairs(cols) do r[c.name] = M.norm(row[sync.wire_name(c)], c.type) end
    out[r[meta.id]] = r
    n = n + 1
  end
  return out, n, cols
end

-- Columns the mirror adds to the table's own (lookup targets, labels, version, deletion time).
function M.is_extra(name)
  return name:match("^_dv_") ~= nil or name:match("__table$") ~= nil or name:match("__label$") ~= nil
end

-- The mirror as stored: {id = {column = normalised value}}, and the set of its columns
-- (the table's own; see is_extra). opts.live: leave out soft-deleted rows.
function M.store_rows(store, name, cols, opts)
  local out, n = {}, 0
  local types = {}
  for _, c in ipairs(cols) do types[c.name] = c.type end
  local present = {}
  for k, v in pairs(store:columns_of(name) or {}) do
    if not M.is_extra(k) then present[k] = v and true end
  end
  local where = opts and opts.live and " WHERE _dv_deleted_at IS NULL" or ""
  for row in store:rows("SELECT * FROM " .. sync.ident(name) .. where) do
    local r = {}
    for k, v in pairs(row) do
      if not M.is_extra(k) then r[k] = M.norm(v, types[k]) end
    end
    out[r[cols[1].name]] = r
    n = n + 1
  end
  return out, n, present
end

-- Asserts that the mirror equals the table, row for row and column for column.
function M.assert_exact(org, store, name, columns, opts)
  local want, nwant, cols = M.table_rows(org, name, columns)
  local got, ngot, present = M.store_rows(store, name, cols, opts)
  local names = {}
  for _, c in ipairs(cols) do names[c.name] = true end
  assert.same(names, present)
  assert.equal(nwant, ngot)
  assert.same(want, got)
  if not (opts and opts.allow_empty) then assert.is_true(nwant > 0) end
end

function M.token(store, name)
  local row = store:first("SELECT token FROM sync_state WHERE table_name = ?", name)
  return row and row.token
end

function M.tmpdir()
  local p = io.popen("mktemp -d /tmp/dvlua-sync.XXXXXX")
  local dir = p:read("l")
  p:close()
  return dir
end

function M.rmdir(dir)
  if dir and dir:match("^/tmp/dvlua%-sync%.") then os.execute("rm -rf " .. dv.quote(dir)) end
end

return M
