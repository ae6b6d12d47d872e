-- Request smuggling: a request whose body length is ambiguous is refused with 400 before
-- routing, and nothing after its headers is taken for another request. Raw sockets, loopback.
local socket = require "socket"
local cjson = require "cjson"
local E = require "emulator"

-- Sends raw bytes on a fresh connection; returns every answer read until the server closes
-- (or 3 s pass): a list of {status=, body=}.
local function raw(api, bytes)
  local host, port = api.url:match("^http://([^:]+):(%d+)")
  local c = assert(socket.connect(host, tonumber(port)))
  c:settimeout(3)
  assert(c:send(bytes))
  local data = {}
  while true do
    local s, err, partial = c:receive(4096)
    data[#data + 1] = s or partial
    if not s then break end
  end
  c:close()
  local text, answers, pos = table.concat(data), {}, 1
  while true do
    local s, e, status = text:find("^HTTP/1%.1 (%d+)[^\r]*\r\n", pos)
    if not s then break end
    local head_end = text:find("\r\n\r\n", e, true)
    local head = text:sub(e + 1, head_end)
    local len = tonumber(head:lower():match("content%-length: *(%d+)")) or 0
    answers[#answers + 1] = { status = tonumber(status), body = text:sub(head_end + 4, head_end + 3 + len) }
    pos = head_end + 4 + len
  end
  return answers
end

local function post(headers, body, tail)
  return "POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n" ..
    "Content-Type: application/json\r\n" .. headers .. "\r\n" .. body .. (tail or "")
end

local SMUGGLED = "GET /api/data/v9.2/WhoAmI HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n\r\n"

describe("emulator request framing", function()
  local api
  setup(function() api = E.start() end)
  teardown(function() api.stop() end)

  local function count(name)
    local r = api.get("contacts?$select=lastname&$filter=lastname%20eq%20'" .. name .. "'")
    return #r.json.value
  end

  local function refused(answers, what)
    assert.equals(1, #answers, what .. ": exactly one answer, nothing smuggled")
    assert.equals(400, answers[1].status, what)
    local err = cjson.decode(answers[1].body).error
    assert.equals("0x80060888", err.code)
    assert.matches("Content-Length", err.message, 1, true)
  end

  it("refuses two Content-Length headers that disagree, and runs nothing after them", function()
    local body = '{"lastname":"S1"}'
    refused(raw(api, post("Content-Length: " .. #body .. "\r\nContent-Length: 200\r\n", body, "\n" .. SMUGGLED)), "two lengths")
    assert.equals(0, count("S1"))
    -- A list of lengths in one header libmicrohttpd itself refuses (with its own HTML body).
    local a = raw(api, post("Content-Length: " .. #body .. ", 200\r\n", body, SMUGGLED))
    assert.equals(1, #a)
    assert.equals(400, a[1].status)
    assert.equals(0, count("S1"))
  end)

  it("refuses Transfer-Encoding together with Content-Length", function()
    local body = '{"lastname":"S2"}'
    local chunked = string.format("%x\r\n%s\r\n0\r\n\r\n", #body, body)
    refused(raw(api, post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", chunked, SMUGGLED)), "TE + CL")
    refused(raw(api, post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", chunked, SMUGGLED)), "CL + TE")
    assert.equals(0, count("S2"))
  end)

  it("still serves one Content-Length, repeated identical ones, and chunked bodies", function()
    local body = '{"lastname":"S3"}'
    local a = raw(api, post("Content-Length: " .. #body .. "\r\nConnection: close\r\n", body))
    assert.equals(204, a[1].status)
    a = raw(api, post("Content-Length: " .. #body .. "\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n", body))
    assert.equals(204, a[1].status)
    a = raw(api, post("Transfer-Encoding: chunked\r\nConnection: close\r\n", string.format("%x\r\n%s\r\n0\r\n\r\n", #body, body)))
    assert.equals(204, a[1].status)
    assert.equals(3, count("S3"))
  end)
end)
