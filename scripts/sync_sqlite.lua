#!/usr/bin/env dvlua
-- Mirror a Dataverse table into a SQLite database, run after run, through change tracking.
--
--   dvlua sync_sqlite.lua --table account --db mirror.sqlite [--columns name,revenue]
--                         [--page-size N] [--watch SECONDS]
--
-- The one-table form of scripts/sync.lua (which syncs many tables at once): the first run
-- loads every row, later runs apply only what changed since the last one. Every page is
-- committed with the link to the next one, so a run stopped at any point goes on from the
-- last page next time, and the mirror changes only when a load or a set of changes is
-- complete. Connection settings come from the environment (DATAVERSE_URL, …; none means
-- the local emulator). See docs/SYNC.md.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"

local USAGE = "usage: sync_sqlite.lua --table NAME --db FILE [--columns a,b,c] [--page-size N] [--watch SECONDS] [--full]"

sync.main("sync_sqlite", function()
  local o = sync.options(arg, { table = "value", db = "value", columns = "value", ["page-size"] = "number",
    watch = "number", full = "flag", help = "flag" }, USAGE)
  if o.help then return print(USAGE) end
  if not o.table or not o.db then error(USAGE, 0) end

  local org = dataverse.connect()
  local job = { table = o.table, columns = sync.split(o.columns), page_size = o["page-size"], full = o.full }
  sync.plan(org, job) -- an unknown table or one without change tracking fails here, store untouched
  local store <close> = sync.sqlite(o.db)
  sync.repeat_every(o.watch, function()
    local summary = sync.mirror(org, store, job)
    job.full = nil -- --full reloads once, not on every --watch round
    io.stderr:write(sync.stamped(sync.summary_line(summary), o.watch), "\n")
  end)
end)
