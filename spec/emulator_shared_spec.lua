-- The default emulator (no DATAVERSE_URL) is shared by every process: each sees the others'
-- committed writes at once and none fails for being several (docs/EMULATOR.md).
local dv = require "dv"

local WORKER = [[
local dataverse = require "dataverse"
local id, n, rows, dir = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), arg[4]
local org = dataverse.connect()
for j = 1, rows do
  org:create("account", { name = ("w%d-%d"):format(id, j) })
end
-- Each process sees its own writes at once ...
local mine = org:count("account", { filter = ("startswith(name,'w%d-')"):format(id) })
assert(mine == rows, "own writes: " .. mine)
local f = assert(io.open(dir .. "/done" .. id, "w")); f:close()
-- ... and, once every process has written, every other process's.
for _ = 1, 600 do
  local all = true
  for k = 1, n do
    local g = io.open(dir .. "/done" .. k)
    if g then g:close() else all = false end
  end
  if all then break end
  os.execute("sleep 0.1")
end
local seen = org:count("account", { filter = "startswith(name,'w')" })
print(("url %s seen %d"):format(org:url(), seen))
]]

local function run_workers(n, rows)
  local home = os.tmpname()
  os.remove(home)
  os.execute("mkdir -p " .. home .. "/flags")
  local script = dv.write_file(home .. "/worker.lua", WORKER)
  for i = 1, n do
    os.execute(("(env -u DATAVERSE_URL -u DATAVERSE_TOKEN XDG_DATA_HOME=%s DVLUA_QUIET=1 %s %s %d %d %d %s >%s/out%d 2>&1; echo $? >%s/rc%d) &")
      :format(home, dv.quote(dv.bin), script, i, n, rows, home .. "/flags", home, i, home, i))
  end
  local results = {}
  for _ = 1, 1200 do
    local done = 0
    for i = 1, n do
      if dv.read_file(home .. "/rc" .. i):match("%d") then done = done + 1 end
    end
    if done == n then break end
    os.execute("sleep 0.1")
  end
  for i = 1, n do
    results[i] = { rc = dv.read_file(home .. "/rc" .. i):match("%d+"), out = dv.read_file(home .. "/out" .. i) }
  end
  return home, results
end

local function wait_gone(path)
  for _ = 1, 300 do
    local f = io.open(path)
    if not f then return true end
    f:close()
    os.execute("sleep 0.1")
  end
  return false
end

describe("the default emulator shared by processes", function()
  for _, n in ipairs { 2, 8 } do
    it(("serves %d processes writing and reading at once, all seeing each other's writes"):format(n), function()
      local rows = 10
      local home, results = run_workers(n, rows)
      finally(function() os.execute("rm -rf " .. dv.quote(home)) end)
      local url
      for i, r in ipairs(results) do
        assert.equals("0", r.rc, "process " .. i .. ": " .. r.out)
        local u, seen = r.out:match("url (%S+) seen (%d+)")
        assert.truthy(u, r.out)
        assert.equals(n * rows, tonumber(seen), "process " .. i)
        url = url or u
        assert.equals(url, u, "every process uses the same emulator")
      end
      assert.not_matches("busy", table.concat((function()
        local t = {}
        for _, r in ipairs(results) do t[#t + 1] = r.out end
        return t
      end)()))
      -- With its last client gone, the shared emulator stops by itself.
      assert.is_true(wait_gone(home .. "/dvlua/emulator.url"), "the shared emulator did not stop")
    end)
  end

  it("lets sync_sqlite.lua --watch mirror what another process writes", function()
    local home = os.tmpname()
    os.remove(home)
    os.execute("mkdir -p " .. home)
    local env = "env -u DATAVERSE_URL -u DATAVERSE_TOKEN XDG_DATA_HOME=" .. home .. " DVLUA_QUIET=1 "
    local mirror = home .. "/mirror.sqlite"
    local pidf = home .. "/pid"
    os.execute(env .. dv.quote(dv.bin) .. " scripts/sync_sqlite.lua --table account --db " .. mirror ..
      " --watch 0.3 >" .. home .. "/watch.log 2>&1 & echo $! >" .. pidf)
    local pid = dv.read_file(pidf):match("%d+")
    finally(function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.execute("sleep 0.3; rm -rf " .. dv.quote(home))
    end)
    local r = dv.run({ "-e", [[
      local org = require("dataverse").connect()
      for j = 1, 5 do org:create("account", { name = "mirrored-" .. j }) end
      print("wrote")
    ]] }, { env = { XDG_DATA_HOME = home, DVLUA_QUIET = "1", DATAVERSE_URL = "" } })
    assert.equals(0, r.status, r.stderr)
    local count
    for _ = 1, 300 do
      local p = io.popen("sqlite3 " .. mirror .. " \"SELECT count(*) FROM account WHERE name LIKE 'mirrored-%'\" 2>/dev/null")
      count = tonumber(p:read("a"))
      p:close()
      if count == 5 then break end
      os.execute("sleep 0.1")
    end
    assert.equals(5, count, dv.read_file(home .. "/watch.log"))
    assert.not_matches("busy", dv.read_file(home .. "/watch.log"))
  end)
end)
