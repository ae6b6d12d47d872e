-- Shared by the sync_postgres.lua specs: a throwaway PostgreSQL cluster (pg.lua) beside an
-- in-process emulator, the script run against both, and a store on the cluster.
local sync = require "dataverse.sync"
local h = require "sync_mirror"
local pg = require "pg"

local M = {}

-- Returns emu, org, cluster.
function M.start()
  local cluster = pg.start()
  local emu, org = h.start()
  return emu, org, cluster
end

function M.stop(emu, cluster)
  if emu then emu:stop() end
  if cluster then cluster:stop() end
end

-- Runs sync_postgres.lua on the account table with pages of page_size rows, and extra args.
function M.run(emu, cluster, page_size, extra, opts)
  local args = { "--table", "account", "--dsn", cluster.dsn, "--page-size", tostring(page_size) }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return h.script(emu, "sync_postgres.lua", args, opts)
end

-- Calls fn with a sync store on the cluster (times read in UTC) and returns what it returns.
function M.with_store(cluster, fn)
  local store <close> = sync.postgres(cluster.dsn)
  store:exec("SET TimeZone = 'UTC'")
  return fn(store)
end

return M
