-- The store's write paths alone, no Dataverse: N synthetic rows of 12 columns written page by
-- page (5000 rows, one transaction each) into a fresh table, through each path, alternated.
--
--   dvlua bench/sync_store_write.lua [rows] [reps]
--
-- SQLite: multi-row prepared INSERTs (LuaDBI). PostgreSQL (a throwaway cluster from
-- spec/helpers/pg.lua): COPY through libpq (the module dataverse_pg, the default writer);
-- through LuaDBI, multi-row prepared INSERTs of up to 999 values, the whole page as one JSON
-- parameter unpacked by jsonb_array_elements, and one array parameter per column unpacked by
-- unnest. Prints seconds and rows/s per path.
package.path = "spec/helpers/?.lua;" .. package.path
local S = require "dataverse.sync_store"
local sync = require "dataverse.sync"
local N, REPS = tonumber(arg[1]) or 100000, tonumber(arg[2]) or 3
local now = sync.now

local names = { "id", "name", "accountnumber", "telephone1", "emailaddress1", "websiteurl", "numberofemployees",
  "revenue", "description", "address1_city", "modifiedon", "_dv_version" }
local function types(pg)
  if pg then
    return { "uuid", "text", "text", "text", "text", "text", "integer", "numeric", "text", "text", "timestamptz", "bigint" }
  end
  return { "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "INTEGER", "REAL", "TEXT", "TEXT", "TEXT", "INTEGER" }
end

local function page(p, size, pg)
  local rows = {}
  for i = 1, size do
    local k = p * size + i
    rows[i] = { string.format("%08x-0000-4000-8000-%012x", k, k), "Account " .. k, "N-" .. k, "+41 44 000 00 00",
      "a@example.com", "https://example.com", k, pg and "1234567.8912" or 1234567.8912,
      "A description of some length, with a comma", "Zürich", "2026-11-29T11:12:35Z", 1000 + k }
  end
  return rows
end

-- A PostgreSQL array literal of one column of the page (a bound parameter's text).
local function array_text(rows, c)
  local out = {}
  for i = 1, #rows do
    local v = rows[i][c]
    out[i] = v == nil and "NULL" or ('"' .. tostring(v):gsub('[\\"]', '\\%0') .. '"')
  end
  return "{" .. table.concat(out, ",") .. "}"
end

local function run(store, label, pg, json, unnest)
  local ty = types(pg)
  local defs = {}
  for i, n in ipairs(names) do defs[i] = '"' .. n .. '" ' .. ty[i] .. (i == 1 and " PRIMARY KEY" or "") end
  store:ddl('DROP TABLE IF EXISTS "bench_w"')
  store:ddl('CREATE TABLE "bench_w" (' .. table.concat(defs, ", ") .. ")")
  local t0 = now()
  for p = 0, N // 5000 - 1 do
    local rows = page(p, 5000, pg)
    store:begin()
    if unnest then
      local sel, q, sets, args = {}, {}, {}, {}
      for i, n in ipairs(names) do
        sel[i] = "?::" .. ty[i] .. "[]"
        q[i] = '"' .. n .. '"'
        if i > 1 then sets[#sets + 1] = q[i] .. " = excluded." .. q[i] end
        args[i] = array_text(rows, i)
      end
      store:exec('INSERT INTO "bench_w" (' .. table.concat(q, ", ") .. ") SELECT * FROM unnest(" ..
        table.concat(sel, ", ") .. ') ON CONFLICT ("id") DO UPDATE SET ' .. table.concat(sets, ", "), table.unpack(args))
    else
      store:insert_rows("bench_w", names, rows, "upsert", json and ty or nil)
    end
    store:commit()
  end
  local dt = now() - t0
  print(string.format("%-28s %8d rows %7.2fs %9.0f rows/s", label, N, dt, N / dt))
end

os.remove("/tmp/dvlua-bench-w.sqlite")
local lite = S.sqlite("/tmp/dvlua-bench-w.sqlite")
local pg = require "pg"
local cluster = pg.start()
local pgc = S.postgres(cluster.dsn, { writer = "libpq" })
local pgs = S.postgres(cluster.dsn, { writer = "luadbi" })
local pgj = S.postgres(cluster.dsn, { writer = "luadbi" })
pgj.json_batches = true
for _ = 1, REPS do
  run(lite, "SQLite VALUES", false, false)
  run(pgc, "PostgreSQL COPY (libpq)", true, false)
  run(pgs, "PostgreSQL VALUES (999)", true, false)
  run(pgj, "PostgreSQL jsonb page", true, true)
  run(pgs, "PostgreSQL unnest arrays", true, false, true)
end
pgc:close()
pgs:close()
pgj:close()
lite:close()
cluster:stop()
os.remove("/tmp/dvlua-bench-w.sqlite")
