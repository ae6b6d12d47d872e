-- $batch over the emulator's Web API, replaying the requests of "Execute batch operations
-- using the Web API" (accounts and contacts stand in for the tasks and leads the emulator
-- does not have) and checking the raw multipart answers.
local E = require "emulator"
local cjson = require "cjson"

-- Splits a multipart body by boundary into parts {headers=, body=} (headers lowercased).
local function split(body, boundary)
  local parts = {}
  local pat = "%-%-" .. boundary:gsub("%p", "%%%0")
  local pos = body:find(pat)
  assert(pos, "no boundary " .. boundary .. " in:\n" .. body)
  while true do
    local s, e = body:find(pat, pos)
    if not s then break end
    if body:sub(e + 1, e + 2) == "--" then break end
    local nxt = body:find("\r?\n" .. pat, e + 1)
    assert(nxt, "unterminated part")
    local chunk = body:sub(e + 1, nxt - 1):gsub("^\r?\n", "")
    local hdr, rest = chunk:match("^(.-)\r?\n\r?\n(.*)$")
    local h = {}
    for line in (hdr or chunk):gmatch("[^\r\n]+") do
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then h[k:lower()] = v end
    end
    parts[#parts + 1] = { headers = h, body = rest or "" }
    pos = nxt + 1
  end
  return parts
end

-- An application/http body: status, headers, body text, decoded json.
local function http(text)
  local status = tonumber(text:match("^HTTP/1%.1 (%d+)"))
  local hdr, body = text:match("^.-\r?\n(.-)\r?\n\r?\n(.*)$")
  if not hdr then hdr, body = text:match("^.-\r?\n(.*)$"), "" end
  local h = {}
  for line in (hdr or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then h[k:lower()] = v end
  end
  local ok, json = pcall(cjson.decode, body)
  return { status = status, headers = h, body = body, json = ok and json or nil }
end

local function batch(api, body, boundary, headers)
  local h = { ["Content-Type"] = 'multipart/mixed; boundary="' .. boundary .. '"' }
  for k, v in pairs(headers or {}) do h[k] = v end
  local r = api.call("POST", "$batch", { body = body, headers = h })
  r.boundary = (r.headers["content-type"] or ""):match("boundary=([^;%s]+)")
  return r
end

local function lf(s) return (s:gsub("\r\n", "\n")) end
local function crlf(s) return (lf(s):gsub("\n", "\r\n")) end

-- Builders of batch bodies (LF line breaks; crlf converts) for the specs that do not replay
-- a documented example word for word.
-- One request: its part headers (Content-ID when id is given), the request line, and a JSON
-- body when json is given.
local function request(boundary, line, json, id)
  local t = { "--" .. boundary, "Content-Type: application/http", "Content-Transfer-Encoding: binary" }
  if id then t[#t + 1] = "Content-ID: " .. id end
  t[#t + 1] = ""
  t[#t + 1] = line
  if json then
    t[#t + 1] = "Content-Type: application/json"
    t[#t + 1] = ""
    t[#t + 1] = json
  else
    t[#t + 1] = ""
  end
  return table.concat(t, "\n") .. "\n"
end

-- A change set of the given requests (built with its boundary cs) inside the batch boundary.
local function changeset(boundary, cs, requests)
  return "--" .. boundary .. "\nContent-Type: multipart/mixed; boundary=" .. cs .. "\n\n" .. table.concat(requests)
    .. "--" .. cs .. "--\n"
end

local function closing(boundary) return "--" .. boundary .. "--\n" end

describe("emulator $batch", function()
  local api, acct

  setup(function()
    api = E.start { key_delay = 0 }
    assert.equals(204, api.post("ImportSolution", E.import_body(E.books)).status)
    acct = api.create("accounts", { name = "Batch parent" })
  end)
  teardown(function() api.stop() end)

  it("answers a batch without change sets part by part, in order (documented example)", function()
    local body = crlf(([[
--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json; type=entry

{
  "firstname": "Contact 1 in batch",
  "parentcustomerid_account@odata.bind": "accounts(%s)"
}
--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json; type=entry

{
  "firstname": "Contact 2 in batch",
  "parentcustomerid_account@odata.bind": "accounts(%s)"
}
--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/contacts?$select=firstname&$filter=_parentcustomerid_value%%20eq%%20%s&$orderby=firstname HTTP/1.1


--batch_80dd1615-2a10-428a-bb6f-0e559792721f--
]]):format(acct, acct, acct))
    local r = batch(api, body, "batch_80dd1615-2a10-428a-bb6f-0e559792721f")
    assert.equals(200, r.status)
    assert.matches("^multipart/mixed", r.headers["content-type"])
    assert.matches("^batchresponse_", r.boundary)
    local parts = split(r.body, r.boundary)
    assert.equals(3, #parts)
    for i = 1, 2 do
      assert.equals("application/http", parts[i].headers["content-type"])
      assert.equals("binary", parts[i].headers["content-transfer-encoding"])
      local a = http(parts[i].body)
      assert.equals(204, a.status)
      assert.matches("/api/data/v9%.2/contacts%([%x%-]+%)$", a.headers["odata-entityid"])
    end
    local got = http(parts[3].body)
    assert.equals(200, got.status)
    assert.equals(2, #got.json.value)
    assert.equals("Contact 1 in batch", got.json.value[1].firstname)
    assert.equals("Contact 2 in batch", got.json.value[2].firstname)
  end)

  it("commits a change set as a whole and answers it as a changesetresponse", function()
    local body = crlf([[
--batch_22975cad
Content-Type: multipart/mixed; boundary="changeset_246e6bfe"

--changeset_246e6bfe
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST /api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json; type=entry

{"name": "CS account 1"}
--changeset_246e6bfe
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

POST /api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json; type=entry

{"name": "CS account 2"}
--changeset_246e6bfe--

--batch_22975cad
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/accounts?$select=name&$filter=startswith(name,'CS%20account') HTTP/1.1


--batch_22975cad--
]])
    local r = batch(api, body, "batch_22975cad")
    assert.equals(200, r.status)
    local parts = split(r.body, r.boundary)
    assert.equals(2, #parts)
    local csb = parts[1].headers["content-type"]:match("boundary=(%S+)")
    assert.matches("^changesetresponse_", csb)
    local inner = split(parts[1].body, csb)
    assert.equals(2, #inner)
    assert.equals("1", inner[1].headers["content-id"])
    assert.equals("2", inner[2].headers["content-id"])
    assert.equals(204, http(inner[1].body).status)
    local got = http(parts[2].body)
    assert.equals(2, #got.json.value)
  end)

  it("resolves $n references in @odata.bind values and in URLs inside a change set", function()
    -- "Reference URIs in URL and navigation properties", with accounts and contacts
    local body = [[
--batch_AAA123
Content-Type: multipart/mixed; boundary=changeset_dd81ccab

--changeset_dd81ccab
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST [Organization URI]/api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json

{ "name":"Ref account"}

--changeset_dd81ccab
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

POST [Organization URI]/api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json

{
  "firstname":"Ref contact",
  "parentcustomerid_account@odata.bind":"$1"
}

--changeset_dd81ccab
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 3

PATCH $1 HTTP/1.1
Content-Type: application/json

{
  "primarycontactid@odata.bind":"$2"
}

--changeset_dd81ccab
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 4

PUT $2/lastname HTTP/1.1
Content-Type: application/json

{
  "value":"BBBBB"
}

--changeset_dd81ccab--
--batch_AAA123--
]]
    body = body:gsub("%[Organization URI%]", api.url)
    local r = batch(api, body, "batch_AAA123") -- bare LF line breaks, as printed in the docs
    assert.equals(200, r.status)
    local parts = split(r.body, r.boundary)
    local inner = split(parts[1].body, parts[1].headers["content-type"]:match("boundary=(%S+)"))
    assert.equals(4, #inner)
    local a1, a2 = http(inner[1].body), http(inner[2].body)
    local acc = a1.headers["odata-entityid"]:match("%(([%x%-]+)%)$")
    local con = a2.headers["odata-entityid"]:match("%(([%x%-]+)%)$")
    assert.equals(204, http(inner[3].body).status)
    assert.equals(204, http(inner[4].body).status)
    local a = api.get("accounts(" .. acc .. ")?$select=_primarycontactid_value").json
    assert.equals(con, a._primarycontactid_value)
    local c = api.get("contacts(" .. con .. ")?$select=_parentcustomerid_value,lastname").json
    assert.equals(acc, c._parentcustomerid_value)
    assert.equals("BBBBB", c.lastname)
  end)

  it("rolls back a change set when one of its requests fails, and answers only its error", function()
    local before = tonumber(api.get("accounts/$count").body)
    local post = "POST /api/data/v9.2/accounts HTTP/1.1"
    local body = crlf(changeset("batch_X", "changeset_Y", {
      request("changeset_Y", post, '{"name":"never kept"}', 1),
      request("changeset_Y", post, '{"name":"' .. ("x"):rep(200) .. '"}', 2),
    }) .. closing("batch_X"))
    local r = batch(api, body, "batch_X")
    assert.equals(400, r.status)
    local parts = split(r.body, r.boundary)
    assert.equals(1, #parts)
    assert.equals("application/http", parts[1].headers["content-type"])
    local a = http(parts[1].body)
    assert.equals(400, a.status)
    assert.is_string(a.json.error.code)
    assert.matches("name", a.json.error.message)
    assert.equals(before, tonumber(api.get("accounts/$count").body))
    assert.equals(0, #api.get("accounts?$filter=name%20eq%20'never%20kept'").json.value)
  end)

  it("stops at the first failed request unless odata.continue-on-error is preferred", function()
    local function body(tag)
      local post = "POST /api/data/v9.2/accounts HTTP/1.1"
      return crlf(request("b1", post, '{"name":"' .. ("x"):rep(200) .. '"}')
        .. request("b1", post, '{"name":"' .. tag .. '-2"}')
        .. request("b1", post, '{"name":"' .. tag .. '-3"}') .. closing("b1"))
    end
    local r = batch(api, body("stop"), "b1")
    assert.equals(400, r.status)
    local parts = split(r.body, r.boundary)
    assert.equals(1, #parts)
    assert.equals(400, http(parts[1].body).status)
    assert.equals(0, #api.get("accounts?$filter=startswith(name,'stop')").json.value)

    r = batch(api, body("go"), "b1", { Prefer = "odata.continue-on-error" })
    assert.equals(200, r.status)
    parts = split(r.body, r.boundary)
    assert.equals(3, #parts)
    assert.equals(400, http(parts[1].body).status)
    assert.equals(204, http(parts[2].body).status)
    assert.equals(204, http(parts[3].body).status)
    assert.equals(2, #api.get("accounts?$filter=startswith(name,'go-')").json.value)
  end)

  it("refuses a reference to a Content-ID not declared before it (documented 400)", function()
    local body = crlf([[
--batch_AAA123
Content-Type: multipart/mixed; boundary=changeset_BBB456

--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding:binary
Content-ID: 2

POST /api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json;type=entry

{
    "firstname":"911",
    "parentcustomerid_account@odata.bind" : "$1"
}

--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding:binary
Content-ID: 1

POST /api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json;type=entry

{
    "name":"QQQQ",
    "revenue": 1.50
}

--changeset_BBB456--
--batch_AAA123--
]])
    local r = batch(api, body, "batch_AAA123")
    assert.equals(400, r.status)
    local a = http(split(r.body, r.boundary)[1].body)
    assert.equals(400, a.status)
    assert.equals("Content-ID Reference: '$1' does not exist in the batch context.", a.json.error.message)
    assert.equals(0, #api.get("accounts?$filter=name%20eq%20'QQQQ'").json.value)
  end)

  it("rolls back an import inside a failed change set, tables included", function()
    local sol = { unique = "WidgetSolution", tables = { { name = "sample_widget", set = "sample_widgets",
      columns = { { name = "sample_name" } } } } }
    local body = crlf(changeset("b", "cs", {
      request("cs", "POST /api/data/v9.2/ImportSolution HTTP/1.1", cjson.encode(E.import_body(sol)), 1),
      request("cs", "POST /api/data/v9.2/sample_widgets HTTP/1.1", '{"sample_name":"' .. ("x"):rep(200) .. '"}', 2),
    }) .. closing("b"))
    local r = batch(api, body, "b")
    assert.equals(400, r.status)
    assert.equals("2", split(r.body, r.boundary)[1].headers["content-id"])
    assert.equals(404, api.get("EntityDefinitions(LogicalName='sample_widget')").status)
    assert.equals(404, api.get("sample_widgets").status)
  end)

  it("refuses GET inside a change set and a batch inside a batch", function()
    local body = crlf([[
--b
Content-Type: multipart/mixed; boundary=cs

--cs
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/accounts HTTP/1.1

--cs--
--b
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/$batch HTTP/1.1
Content-Type: multipart/mixed; boundary=z

--z--
--b--
]])
    local r = batch(api, body, "b", { Prefer = "odata.continue-on-error" })
    assert.equals(200, r.status)
    local parts = split(r.body, r.boundary)
    assert.equals(2, #parts)
    assert.equals(400, http(parts[1].body).status)
    assert.equals(400, http(parts[2].body).status)
  end)

  it("refuses more than 1,000 requests with the documented message", function()
    local t = {}
    for i = 1, 1001 do
      t[#t + 1] = crlf(request("b", "GET /api/data/v9.2/WhoAmI HTTP/1.1"))
    end
    t[#t + 1] = crlf(closing("b"))
    local r = batch(api, table.concat(t), "b")
    assert.equals(400, r.status)
    assert.matches("maximum number of '1000'", r.json.error.message)
    t[1001], t[1002] = t[1002], nil
    r = batch(api, table.concat(t), "b")
    assert.equals(200, r.status)
    assert.equals(1000, #split(r.body, r.boundary))
  end)

  it("refuses malformed bodies with a message naming what is wrong", function()
    local r = api.call("POST", "$batch", { body = "x", headers = { ["Content-Type"] = "application/json" } })
    assert.equals(400, r.status)
    assert.matches("multipart/mixed", r.json.error.message)
    r = batch(api, "--b\r\nContent-Type: application/http\r\n\r\nGET /api/data/v9.2/WhoAmI HTTP/1.1\r\n", "b")
    assert.equals(400, r.status)
    assert.matches("closing delimiter", r.json.error.message)
    r = batch(api, "--b\r\nContent-Type application/http\r\n\r\nGET x HTTP/1.1\r\n--b--", "b")
    assert.equals(400, r.status)
    assert.matches("not a header line", r.json.error.message)
    r = api.get("$batch")
    assert.equals(405, r.status)
  end)
end)
