-- Connection exhaustion: a thousand half-open connections from one client address must not
-- lock other clients out. Raw sockets, loopback only, a bounded number of connections; the
-- flood runs in a child process with room for its descriptors (ulimit -n).
local dv = require "dv"

local FLOOD = [[
local socket = require "socket"
local port, n = tonumber(arg[1]), tonumber(arg[2])
local socks = {}
for _ = 1, n do
  local c = socket.tcp()
  c:settimeout(2)
  if c:connect("127.0.0.1", port) then
    c:send("GET /api/data/v9.2/WhoAmI HTTP/1.1\r\nHost: x\r\n") -- never finished
    socks[#socks + 1] = c
  else
    c:close()
  end
end
local function status(iface)
  local p = io.popen("curl -s -o /dev/null -w '%{http_code}' --max-time 10 " ..
    (iface and ("--interface " .. iface .. " ") or "") ..
    "-H 'Authorization: Bearer t' http://127.0.0.1:" .. port .. "/api/data/v9.2/WhoAmI")
  local code = p:read("a")
  p:close()
  return code
end
print("opened " .. #socks)
print("other address " .. status("127.0.0.2"))
-- The same address is served again once the half-open connections time out (bounded wait).
local same = status(nil)
for _ = 1, 40 do
  if same == "200" then break end
  socket.sleep(0.5)
  same = status(nil)
end
print("same address " .. same)
-- Every connection that never finished its request is closed by the server (bounded wait).
local open
for _ = 1, 60 do
  open = 0
  for _, c in ipairs(socks) do
    c:settimeout(0)
    local _, err = c:receive(1)
    if err == "timeout" then open = open + 1 end
  end
  if open == 0 then break end
  socket.sleep(0.5)
end
for _, c in ipairs(socks) do c:close() end
print("half-open left " .. open)
]]

describe("emulator under a flood of half-open connections", function()
  it("keeps serving other clients and closes connections that never send a request", function()
    local url, pid, out = dv.serve("", { prefix = "ulimit -n 4096 2>/dev/null; " })
    finally(function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(out)
    end)
    assert.truthy(url)
    local script = dv.write_file(os.tmpname(), FLOOD)
    local p = io.popen("ulimit -n 4096 2>/dev/null; " .. dv.quote(dv.bin) .. " " .. script .. " " ..
      url:match(":(%d+)$") .. " 1100 2>&1")
    local res = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("opened 1100", res, 1, true)
    assert.matches("other address 200", res, 1, true)
    assert.matches("same address 200", res, 1, true)
    assert.matches("half-open left 0\n", res, 1, true)
  end)
end)
