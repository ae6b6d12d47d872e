-- Crash safety: kill -9 of `dvlua --serve` while clients write two tables (each in a file of
-- its own); restarted on the same store, it has every write it acknowledged, delta tokens
-- handed out before the crash still work, and writes after the restart reach them.
local curl = require "curl"
local cjson = require "cjson"
local dv = require "dv"

local WRITER = [[
local dataverse = require "dataverse"
local org = dataverse.connect { url = arg[1], token = "t", retries = 0 }
local ack = assert(io.open(arg[2], "a"))
for i = 1, 1000000 do
  local name = ("%s-%d"):format(arg[3], i)
  local row = arg[4] == "contact" and { lastname = name } or { name = name }
  local ok = pcall(org.create, org, arg[4], row)
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

-- Every value of `field` over all pages of url.
local function all_values(url, field)
  local seen = {}
  while url do
    local status, body = get(url)
    assert.equals(200, status, tostring(body))
    for _, row in ipairs(body.value) do seen[row[field]] = true end
    url = body["@odata.nextLink"]
  end
  return seen
end

describe("emulator killed with SIGKILL during writes", function()
  it("keeps every acknowledged write and every delta token, in every table's file", function()
    local dir = dv.tmpdir()
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
    local tables = { account = { set = "accounts", field = "name" }, contact = { set = "contacts", field = "lastname" } }
    local function track(t)
      local status, body = get(api .. tables[t].set .. "?$select=" .. tables[t].field, "odata.track-changes")
      assert.equals(200, status, tostring(body))
      assert.truthy(body["@odata.deltaLink"])
      return body["@odata.deltaLink"]
    end
    local delta0 = { account = track("account"), contact = track("contact") }

    local script = dv.write_file(dir .. "/writer.lua", WRITER)
    local ack = dir .. "/ack"
    -- two writers of accounts, two of contacts
    local writes = { "account", "account", "contact", "contact" }
    for w, t in ipairs(writes) do
      os.execute(dv.quote(dv.bin) .. " " .. script .. " " .. url .. " " .. ack .. w .. " w" .. w .. " " .. t .. " >/dev/null 2>&1 &")
    end
    -- Tokens from the middle of the writes, then the kill once plenty were acknowledged.
    local delta1
    for _ = 1, 600 do
      if #lines(ack .. "1") >= 30 and #lines(ack .. "3") >= 30 and not delta1 then
        delta1 = { account = track("account"), contact = track("contact") }
      end
      local enough = true
      for w = 1, #writes do enough = enough and #lines(ack .. w) >= 80 end
      if delta1 and enough then break end
      os.execute("sleep 0.05")
    end
    assert.truthy(delta1)
    os.execute("kill -9 " .. pid)
    os.execute("sleep 0.5") -- the writers see the connection go and stop

    local acked = { account = {}, contact = {} }
    for w, t in ipairs(writes) do
      for _, n in ipairs(lines(ack .. w)) do acked[t][#acked[t] + 1] = n end
    end
    assert.is_true(#acked.account >= 160 and #acked.contact >= 160)

    url, pid = serve(db)
    assert.truthy(url, "the emulator did not restart on its store")
    pids[#pids + 1] = pid
    api = url .. "/api/data/v9.2/"
    local old_port = delta0.account:match("^http://[%d%.]+:(%d+)/")
    local function moved(link) return (link:gsub("^http://[%d%.]+:" .. old_port, url)) end
    -- A write of each table after the restart: a token from before the crash must see it.
    local after = {}
    for t, d in pairs(tables) do
      after[t] = "after-restart-" .. t
      local r = curl.request { method = "POST", url = api .. d.set, body = cjson.encode { [d.field] = after[t] },
        headers = { Authorization = "Bearer t", ["Content-Type"] = "application/json" } }
      assert.equals(204, r.status, r.body)
    end
    for t, d in pairs(tables) do
      local present = all_values(api .. d.set .. "?$select=" .. d.field, d.field)
      for _, n in ipairs(acked[t]) do assert.is_true(present[n] ~= nil, "lost acknowledged write " .. n) end
      -- The old delta links still answer, with every acknowledged row, and the write after
      -- the restart, as changes.
      for _, link in ipairs { delta0[t], delta1[t] } do
        local status, body = get(moved(link), "odata.track-changes")
        assert.equals(200, status, tostring(body))
        assert.truthy(body["@odata.deltaLink"])
        local changed = {}
        for _, row in ipairs(body.value) do if row[d.field] then changed[row[d.field]] = true end end
        assert.is_true(changed[after[t]] ~= nil, "the write after the restart is missing from a token of before")
        if link == delta0[t] then
          for _, n in ipairs(acked[t]) do assert.is_true(changed[n] ~= nil, "change missing for " .. n) end
        end
      end
    end
  end)
end)
