-- Used by bench/sync_stores.sh: starts a throwaway PostgreSQL cluster (spec/helpers/pg.lua)
-- and leaves it running; prints its DSN. The caller stops it (pg_ctl) and removes it.
package.path = "spec/helpers/?.lua;" .. package.path
local pg = require "pg"
local c = pg.start()
c.stopped = true
io.write(c.dsn, "\n")
