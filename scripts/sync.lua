#!/usr/bin/env dvlua
-- Keep many Dataverse tables in step with a SQLite file, a PostgreSQL database or JSON-lines
-- files, run after run, through change tracking.
--
--   dvlua sync.lua --to sqlite:mirror.sqlite|postgres:DSN|jsonl:DIR
--                  [--tables a,b,c | --all] [--columns table:a,b …] [--parallel N]
--                  [--watch SECONDS] [--dry-run] [--soft-delete] [--history] [--labels]
--                  [--page-size N] [--full] [--config FILE]
--
-- --all syncs every table whose metadata says ChangeTrackingEnabled. A config file is a Lua
-- file returning a table with the same settings (for cron):
--
--   return { to = "sqlite:/srv/mirror.sqlite", tables = { "account", "contact" },
--            columns = { account = { "name", "revenue" } }, parallel = 8, history = true }
--
-- Options on the command line win over the file. Tables are planned (metadata read, columns
-- checked) before the store is opened: an unknown table or column changes nothing. Each
-- table's first load is committed page by page into a staging table and resumed by the next
-- run; the mirror changes only when a load or a set of changes is complete. Progress on a
-- terminal, one summary line per table on stderr always. Exit status 1 when a table failed.
-- See docs/SYNC.md.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"

local USAGE = "usage: sync.lua --to sqlite:FILE|postgres:DSN|jsonl:DIR [--tables a,b,c | --all] " ..
  "[--columns table:a,b ...] [--parallel N] [--watch SECONDS] [--dry-run] [--soft-delete] [--history] " ..
  "[--labels] [--page-size N] [--full] [--config FILE]"

local SPEC = { to = "value", tables = "value", all = "flag", columns = "list", parallel = "number",
  watch = "number", ["dry-run"] = "flag", ["soft-delete"] = "flag", history = "flag", labels = "flag",
  ["page-size"] = "number", full = "flag", config = "value", help = "flag" }

-- The config file: a Lua chunk returning a table, run with no access to anything.
local function read_config(path)
  local f, err = io.open(path, "r")
  if not f then error("cannot read config file " .. path .. ": " .. tostring(err), 0) end
  local text = f:read("a")
  f:close()
  local chunk, perr = load(text, "@" .. path, "t", {})
  if not chunk then error("config file " .. path .. ": " .. perr, 0) end
  local ok, t = pcall(chunk)
  if not ok or type(t) ~= "table" then
    error("config file " .. path .. " must return a table" .. (ok and "" or (": " .. tostring(t))), 0)
  end
  -- A misspelt setting would otherwise be ignored in silence (soft_delet = true: no soft deletes).
  local known = { to = true, all = true, tables = true, columns = true, parallel = true, watch = true, dry_run = true,
    soft_delete = true, history = true, labels = true, page_size = true, full = true }
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("config file %s: unknown setting %q (known: %s)", path, tostring(k), table.concat(names, ", ")), 0)
    end
  end
  return t
end

local function settings(args)
  local o = sync.options(args, SPEC, USAGE)
  if o.help then return nil end
  local c = o.config and read_config(o.config) or {}
  local s = {
    to = o.to or c.to,
    all = o.all or c.all or false,
    tables = o.tables and sync.split(o.tables) or c.tables,
    columns = {},
    parallel = o.parallel or c.parallel or 4,
    watch = o.watch or c.watch,
    dry_run = o["dry-run"] or c.dry_run or false,
    soft_delete = o["soft-delete"] or c.soft_delete or false,
    history = o.history or c.history or false,
    labels = o.labels or c.labels or false,
    page_size = o["page-size"] or c.page_size,
    full = o.full or c.full or false,
  }
  if type(s.tables) == "string" then s.tables = sync.split(s.tables) end
  for t, cols in pairs(type(c.columns) == "table" and c.columns or {}) do
    s.columns[t] = type(cols) == "string" and sync.split(cols) or cols
  end
  for _, item in ipairs(o.columns or {}) do
    local t, cols = item:match("^([%w_]+):(.+)$")
    if not t then error(string.format("--columns needs TABLE:a,b,c, not %q", item), 0) end
    s.columns[t] = sync.split(cols)
  end
  if not s.to then error("--to is required\n" .. USAGE, 0) end
  if s.all and s.tables and #s.tables > 0 then error("--tables and --all exclude each other", 0) end
  if not s.all and not (s.tables and #s.tables > 0) then error("name the tables (--tables a,b,c) or --all\n" .. USAGE, 0) end
  s.parallel = math.max(1, math.min(52, math.floor(s.parallel)))
  -- Memory grows with the pages in flight (tables at once x page size): past 8 tables at once
  -- the default page shrinks, so that 20 tables stay under 100 MB (docs/SYNC.md).
  s.page_size = s.page_size or math.max(1000, math.min(5000, 40000 // s.parallel // 1000 * 1000))
  return s
end

-- "sqlite:FILE", "postgres:DSN" (empty: the PG* variables) or "jsonl:DIR".
local function target(to)
  local kind, where = to:match("^(%w+):(.*)$")
  if kind == "sqlite" and where ~= "" then return kind, where end
  if kind == "postgres" then return kind, where end
  if kind == "jsonl" and where ~= "" then return kind, where end
  error(string.format("--to must be sqlite:FILE, postgres:DSN or jsonl:DIR, not %q", to), 0)
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The plan, printed by --dry-run: nothing is written, nothing is created.
local function print_plan(store_kind, where, jobs, s)
  local store
  if store_kind == "sqlite" and file_exists(where) then
    store = sync.sqlite(where, { readonly = true })
  elseif store_kind == "postgres" then
    store = sync.postgres(where)
  end
  print(string.format("plan: %d tables into %s:%s%s", #jobs, store_kind,
    store_kind == "postgres" and "(dsn)" or where, s.parallel and (", " .. s.parallel .. " at a time") or ""))
  for _, job in ipairs(jobs) do
    local name = job.into or job.meta.name
    local how = "first load"
    if store then
      local st = sync.read_state(store, name)
      if st and st.cursor and st.phase == "load" then
        how = "first load, resumed from a saved page"
      elseif st and st.cursor and st.phase == "delta" then
        how = "delta, resumed from a saved page"
      elseif st and st.token and store:columns_of(name) then
        how = "delta from the saved token"
      end
    elseif store_kind == "jsonl" then
      local st = require("dataverse.sync_jsonl").read_state(where .. "/" .. name .. ".state")
      if st and st.cursor then how = "resumed from a saved page" elseif st and st.token then how = "delta from the saved token" end
    end
    if s.full then how = "full reload (asked)" end
    print(string.format("%s: %s, %d columns", name, how, #job.cols))
    for _, c in ipairs(job.cols) do
      local t = sync.TYPES[c.type] or sync.TYPES.String
      local st = store_kind == "postgres" and t[2] or (store_kind == "sqlite" and t[1] or "json")
      print(string.format("  %-40s %-18s %s", c.name, c.type, st))
    end
  end
  if store then store:close() end
end

local function main()
  local s = settings(arg)
  if not s then return print(USAGE) end
  local kind, where = target(s.to)
  local org = dataverse.connect()
  local names = s.all and sync.tracked_tables(org) or s.tables
  local jobs = {}
  for _, t in ipairs(names) do jobs[#jobs + 1] = { table = t, columns = s.columns[t] } end
  for t in pairs(s.columns) do
    local listed = false
    for _, n in ipairs(names) do listed = listed or n == t end
    if not listed then error(string.format("--columns names table %q, which is not among the tables synced", t), 0) end
  end
  -- Every table and column is checked before the store is touched.
  sync.plan_all(org, jobs)
  if s.dry_run then return print_plan(kind, where, jobs, s) end

  local store, jsonl
  if kind == "sqlite" then
    store = sync.sqlite(where)
  elseif kind == "postgres" then
    store = sync.postgres(where)
  else
    jsonl = require "dataverse.sync_jsonl"
    jsonl.check_dir(where)
  end
  local failed_any = false
  sync.repeat_every(s.watch, function()
    local prog = sync.progress(#jobs, nil, org)
    local o = { page_size = s.page_size, full = s.full, soft_delete = s.soft_delete, history = s.history,
      labels = s.labels, progress = prog, parallel = s.parallel }
    local results, failed
    if store then
      results, failed = sync.mirror_all(org, store, jobs, o)
    else
      results, failed = {}, 0
      local tasks = {}
      for i, job in ipairs(jobs) do
        results[i] = sync.new_stats(job.meta.name)
        prog:add(results[i])
        tasks[i] = function() return jsonl.sync_table(org, where, job, o, results[i]) end
      end
      for i, r in ipairs(sync.run_tasks(org, tasks, s.parallel)) do
        if not r.ok then
          if sync.is_interrupt(r.error) then error(r.error, 0) end
          failed = failed + 1
          results[i].error, results[i].state = r.error, "failed"
        end
      end
      prog:finish()
    end
    for _, r in ipairs(results) do io.stderr:write(sync.stamped(sync.summary_line(r), s.watch), "\n") end
    -- --all: a mirror whose table was deleted, or lost change tracking, is no longer among the
    -- tables; it is left as it was, and said so, rather than forgotten in silence.
    if s.all and store and store:columns_of("sync_state") then
      local synced = {}
      for _, job in ipairs(jobs) do synced[job.into or job.meta.name] = true end
      for row in store:rows("SELECT table_name FROM sync_state ORDER BY table_name") do
        if not synced[row.table_name] and store:columns_of(row.table_name) then
          io.stderr:write(sync.stamped(string.format("%s: not synced: no longer a table with change tracking; " ..
            "its mirror is left as it was", row.table_name), s.watch), "\n")
        end
      end
    end
    local st = type(org.stats) == "function" and org:stats() or nil
    if st then
      io.stderr:write(sync.stamped(string.format("sync: %d tables, %d requests, %d retried, %d throttled, %.1fs waited",
        #jobs, tonumber(st.requests) or 0, tonumber(st.retries) or 0, tonumber(st.throttled) or 0,
        tonumber(st.waited) or 0), s.watch), "\n")
    end
    if failed > 0 then
      io.stderr:write(string.format("sync: %d of %d tables failed; the others are in step\n", failed, #jobs))
      failed_any = true
    end
    s.full = false -- --full reloads once, not on every --watch round
  end)
  if store then store:close() end
  return not failed_any
end

sync.main("sync", main)
