-- Crash safety: kill -9 of `dvlua --serve` while clients write; restarted on the same file, it
-- has every write it acknowledged, and delta tokens handed out before the crash still work.
local curl = require "curl"
local cjson = require "cjson"
local dv = require "dv"

local WRITER = [[
local dataverse = require "dataverse"
local org = dataverse.connect { url = arg[1], token = "t", retries = 0 }
local ack = assert(io.open(arg[2], "a"))
for i = 1, 1000000 do
  local name = ("%s-%d"):format(arg[3], i)
  local ok = pcall(org.create, org, "account", { name = name })
  if not ok then break end
  ack:write(name, "\n")
  ack:flush() -- only what the server acknowledged
end
ack:close()
]]

local function serve(db)
  local url, pid, out = dv.serve("--db " .. db)
  os.remove(out)
  return url, pid
end

local function get(url, prefer)
  local h = { Authorization = "Bearer t", Accept = "application/json" }
  if prefer then h.Prefer = prefer end
  local r = curl.request { url = url, headers = h }
  return r.status, r.status == 200 and cjson.decode(r.body) or r.body
end

local function lines(path)
  local t = {}
  for l in dv.read_file(path):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("emulator killed with SIGKILL during writes", function()
  it("keeps every acknowledged write and every delta token", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local pids = {}
    finally(function()
      for _, p in ipairs(pids) do os.execute("kill -9 " .. p .. " 2>/dev/null") end
      os.execute("rm -rf " .. dv.quote(dir))
    end)
    local db = dir .. "/org.sqlite"
    local url, pid = serve(db)
    assert.truthy(url)
    pids[#pids + 1] = pid
    local api = url .. "/api/data/v9.2/"
    local status, body = get(api .. "accounts?$select=name", "odata.track-changes")
    assert.equals(200, status)
    local delta0 = body["@odata.deltaLink"]
    assert.truthy(delta0)

    local script = dv.write_file(dir .. "/writer.lua", WRITER)
    local ack = dir .. "/ack"
    for w = 1, 3 do
      os.execute(dv.quote(dv.bin) .. " " .. script .. " " .. url .. " " .. ack .. w .. " w" .. w .. " >/dev/null 2>&1 &")
    end
    -- A token from the middle of the writes, then the kill once plenty were acknowledged.
    local delta1
    for _ = 1, 600 do
      if #lines(ack .. "1") >= 30 and not delta1 then
        status, body = get(api .. "accounts?$select=name", "odata.track-changes")
        delta1 = body["@odata.deltaLink"]
      end
      if delta1 and #lines(ack .. "1") >= 80 and #lines(ack .. "3") >= 80 then break end
      os.execute("sleep 0.05")
    end
    assert.truthy(delta1)
    os.execute("kill -9 " .. pid)
    os.execute("sleep 0.5") -- the writers see the connection go and stop

    local acked = {}
    for w = 1, 3 do
      for _, n in ipairs(lines(ack .. w)) do acked[#acked + 1] = n end
    end
    assert.is_true(#acked >= 240)

    url, pid = serve(db)
    assert.truthy(url, "the emulator did not restart on its file")
    pids[#pids + 1] = pid
    api = url .. "/api/data/v9.2/"
    local present = {}
    local next_url = api .. "accounts?$select=name"
    while next_url do
      status, body = get(next_url)
      assert.equals(200, status)
      for _, row in ipairs(body.value) do present[row.name] = true end
      next_url = body["@odata.nextLink"]
    end
    for _, n in ipairs(acked) do assert.is_true(present[n] ~= nil, "lost acknowledged write " .. n) end

    -- The old delta links still answer, with every acknowledged row as a change.
    local old_port = delta0:match("^http://[%d%.]+:(%d+)/")
    for _, link in ipairs { delta0, delta1 } do
      link = link:gsub("^http://[%d%.]+:" .. old_port, url)
      status, body = get(link, "odata.track-changes")
      assert.equals(200, status, tostring(body))
      assert.truthy(body["@odata.deltaLink"])
    end
    status, body = get(delta0:gsub("^http://[%d%.]+:" .. old_port, url), "odata.track-changes")
    local changed = {}
    for _, row in ipairs(body.value) do if row.name then changed[row.name] = true end end
    for _, n in ipairs(acked) do assert.is_true(changed[n] ~= nil, "change missing for " .. n) end
  end)
end)
