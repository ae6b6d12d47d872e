-- Parallel change-tracking reads under the emulator's latency model: K full loads of a
-- seeded table, one after another and then as K tasks of org:parallel on one connection.
-- Reports the wall times against the ideal (the server's summed execution time divided by
-- the concurrency the client used), and the speed-up over the sequential run.
--
--   dvlua bench/parallel.lua            (settings from the environment, defaults below)
--
--   PAR_STREAMS     K, the number of streams (default 20)
--   PAR_ROWS        rows in the table each stream loads (default 5000)
--   PAR_PAGE        page size (default 1000)
--   PAR_REQUEST_MS  latency model: per request (default 50)
--   PAR_ROW_MS      latency model: per row returned (default 0.2, the service's ~1 s per 5,000)
--   PAR_DOP         the emulator's x-ms-dop-hint (default 16)
--   PAR_WORK        directory for the seeded database (default bench/work)
--   PAR_SEQUENTIAL  0 skips the sequential run (the speed-up is then not reported)
--
-- Prints a Markdown table and, last, one JSON line with every figure.
local cjson = require "cjson"
local dataverse = require "dataverse"

local function env_num(name, default)
  local v = tonumber(os.getenv(name) or "")
  return v or default
end

local K = math.tointeger(env_num("PAR_STREAMS", 20))
local ROWS = math.tointeger(env_num("PAR_ROWS", 5000))
local PAGE = math.tointeger(env_num("PAR_PAGE", 1000))
local REQUEST_MS = env_num("PAR_REQUEST_MS", 50)
local ROW_MS = env_num("PAR_ROW_MS", 0.2)
local DOP = math.tointeger(env_num("PAR_DOP", 16))
local WORK = os.getenv("PAR_WORK") or "bench/work"
local now = dataverse.core and dataverse.core.now or require("dataverse.core").now

assert(require("dataverse.core").mkdir_p(WORK))
local db = ("%s/parallel-%d.sqlite"):format(WORK, ROWS)

-- Seeds the table once (no latency model), in parallel tasks on one connection. A marker
-- file says the database is complete ($count stops at 5,000, so it cannot tell).
local function seed()
  local marker = db .. ".done"
  local f = io.open(marker, "rb")
  if f then
    f:close()
    return
  end
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
  io.stderr:write(("bench: seeding %d accounts\n"):format(ROWS))
  local emu = dataverse.emulator.start { db = db, dop_hint = 16 }
  local org = dataverse.connect { emulator = emu }
  local per, tasks = 16, {}
  for t = 1, per do
    tasks[t] = function()
      for i = t, ROWS, per do
        org:create("account", { name = "Account " .. i, accountnumber = ("A%07d"):format(i),
          telephone1 = "+1 555 " .. i, description = ("Seeded row %d for the parallel bench"):format(i),
          numberofemployees = i % 5000, revenue = i * 1.5 })
      end
    end
  end
  for _, r in ipairs(org:parallel(tasks)) do assert(r.ok, r.error) end
  org:close()
  emu:stop()
  f = assert(io.open(marker, "wb"))
  f:write("seeded\n")
  f:close()
end

local function load_stream(org)
  return function()
    local it = org:changes { entity = "account", page_size = PAGE,
      columns = { "name", "accountnumber", "telephone1", "description", "numberofemployees", "revenue" } }
    local n = 0
    for _ in it do n = n + 1 end
    assert(it.token, "no token after the last page")
    assert(n == ROWS, ("a stream delivered %d rows, not %d"):format(n, ROWS))
    return n
  end
end

-- One run: K streams, with at most `concurrency` tasks at once (1: sequential).
local function run(emu, concurrency)
  local org = dataverse.connect { emulator = emu }
  -- Before the clock starts, the connection learns the dop hint and caches the table's
  -- metadata (otherwise every task would look it up at once).
  org:count("account")
  emu:stats(true)
  local tasks = {}
  for i = 1, K do tasks[i] = load_stream(org) end
  local t0 = now()
  local results = org:parallel(tasks, { concurrency = concurrency })
  local wall = now() - t0
  for i, r in ipairs(results) do assert(r.ok, ("stream %d: %s"):format(i, tostring(r.error))) end
  local es, cs = emu:stats(), org:stats()
  org:close()
  local used = math.max(1, math.min(es.peak_concurrent, cs.peak))
  return {
    wall = wall,
    server_s = es.busy_ms / 1000,
    lock_wait_s = es.lock_wait_ms / 1000,
    requests = es.requests,
    peak = es.peak_concurrent,
    ideal = es.busy_ms / 1000 / used,
    -- without the time requests queued for the emulator's single store lock, which the
    -- service does not have
    ideal_unlocked = (es.busy_ms - es.lock_wait_ms) / 1000 / used,
    throttled = cs.throttled,
  }
end

seed()
local emu = dataverse.emulator.start { db = db, dop_hint = DOP,
  latency = { request_ms = REQUEST_MS, per_row_ms = ROW_MS } }
local seq = os.getenv("PAR_SEQUENTIAL") ~= "0" and run(emu, 1) or nil
local par = run(emu, nil)
emu:stop()

local out = {
  streams = K, rows = ROWS, page = PAGE, request_ms = REQUEST_MS, per_row_ms = ROW_MS, dop_hint = DOP,
  sequential = seq, parallel = par,
  parallel_vs_ideal = par.wall / par.ideal,
  speedup = seq and seq.wall / par.wall,
}
print(("%d streams x %d rows, pages of %d, latency %g ms + %g ms/row, x-ms-dop-hint %d")
  :format(K, ROWS, PAGE, REQUEST_MS, ROW_MS, DOP))
print("")
print("| run | wall s | server s | of which lock wait s | requests | peak concurrent | ideal s | wall / ideal | wall / ideal without lock wait |")
print("|---|---|---|---|---|---|---|---|---|")
for _, r in ipairs { { "sequential", seq or false }, { "org:parallel", par } } do
  local x = r[2]
  if not x then goto continue end
  print(("| %s | %.2f | %.2f | %.2f | %d | %d | %.2f | %.2f | %.2f |"):format(r[1], x.wall, x.server_s,
    x.lock_wait_s, x.requests, x.peak, x.ideal, x.wall / x.ideal, x.wall / x.ideal_unlocked))
  ::continue::
end
print("")
if seq then
  print(("parallel: %.2fx the ideal (target <= 1.25), %.1fx faster than sequential (target >= 5)")
    :format(out.parallel_vs_ideal, out.speedup))
else
  print(("parallel: %.2fx the ideal (target <= 1.25)"):format(out.parallel_vs_ideal))
end
print(cjson.encode(out))
