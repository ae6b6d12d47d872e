#!/usr/bin/env dvlua
-- Mirror a Dataverse table into PostgreSQL, run after run, through change tracking.
--
--   dvlua sync_postgres.lua --table account [--dsn "host=… dbname=…"] [--columns name,revenue]
--                           [--page-size N] [--watch SECONDS]
--
-- Without --dsn the connection comes from the usual PG* variables (PGHOST, PGPORT,
-- PGDATABASE, PGUSER, PGPASSWORD or ~/.pgpass). The data token lives in the same database
-- (table sync_state) and is committed in the same transaction as the rows it covers, so a
-- run stopped at any point leaves the mirror as the last completed run left it, and the
-- next run completes it exactly. See docs/SYNC.md.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"

local USAGE = "usage: sync_postgres.lua --table NAME [--dsn DSN] [--columns a,b,c] [--page-size N] [--watch SECONDS] [--full]"

sync.main("sync_postgres", function()
  local o = sync.options(arg, { table = "value", dsn = "value", columns = "value", ["page-size"] = "number",
    watch = "number", full = "flag", help = "flag" }, USAGE)
  if o.help then return print(USAGE) end
  if not o.table then error(USAGE, 0) end

  local org = dataverse.connect()
  local job = { table = o.table, columns = sync.split(o.columns), page_size = o["page-size"], full = o.full }
  sync.plan(org, job) -- an unknown table or one without change tracking fails here, store untouched
  local store <close> = sync.postgres(o.dsn)
  sync.repeat_every(o.watch, function()
    local summary = sync.mirror(org, store, job)
    job.full = nil -- --full reloads once, not on every --watch round
    io.stderr:write(sync.stamped(sync.summary_line(summary), o.watch), "\n")
  end)
end)
