-- Used by bench/sync_org.sh: imports a solution of $TABLES tables (change tracking on) into
-- the emulator database $DB and creates one row in each through the API (the template the
-- shell script copies with SQL).
package.path = "spec/helpers/?.lua;" .. package.path
local E = require "emulator"
local dataverse = require "dataverse"
local n = tonumber(os.getenv("TABLES") or "20")
local tables = {}
for i = 1, n do
  local name = string.format("bench_t%02d", i)
  tables[i] = { name = name, set = name .. "s", columns = { { name = "bench_name" }, { name = "bench_code" },
    { name = "bench_count", type = "int" }, { name = "bench_note" } } }
end
local zip = os.tmpname()
local f = assert(io.open(zip, "wb"))
f:write(E.zip(E.solution_files { unique = "BenchOrg", managed = false, tables = tables }))
f:close()
local emu = dataverse.emulator.start { db = os.getenv("DB") }
local org = dataverse.connect { url = emu.url, token = "bench" }
org:import_solution(zip)
os.remove(zip)
for _, t in ipairs(tables) do
  org:create(t.name, { bench_name = "Row", bench_code = "C-1", bench_count = 1,
    bench_note = "A note of some length, to make rows of a realistic size." })
end
emu:stop()
