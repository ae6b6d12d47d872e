-- Used by bench/sync_stores.sh: starts a throwaway PostgreSQL cluster (spec/helpers/pg.lua)
-- and leaves it running; prints its DSN. The caller stops it (pg_ctl) and removes it.
--   dvlua bench/sync_pg.lua [OWNER_PID]
-- OWNER_PID (the caller's) is recorded as the cluster's owner: other processes starting a
-- cluster meanwhile (specs) stop only clusters whose owner is gone, and this one exits now.
package.path = "spec/helpers/?.lua;" .. package.path
local pg = require "pg"
local c = pg.start()
c.stopped = true
if arg[1] then
  local f = assert(io.open(c.dir .. "/owner", "w"))
  f:write(arg[1], "\n")
  f:close()
end
io.write(c.dsn, "\n")
