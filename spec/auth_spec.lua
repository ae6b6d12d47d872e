-- Token providers (src/auth.c) through dataverse.http, against a fake identity platform and
-- API on loopback: static tokens, client credentials, the device code flow, refresh, 401.
local http = require "dataverse.http"
local fake = require "fake_server"
local dv = require "dv"

local opts = fake.fast

local function catch(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function form_decode(body)
  local t = {}
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    local function unescape(s)
      return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    t[unescape(k)] = unescape(v)
  end
  return t
end

local function split(requests, prefix)
  local hits = {}
  for _, r in ipairs(requests) do
    if r.path:sub(1, #prefix) == prefix then hits[#hits + 1] = r end
  end
  return hits
end

-- An identity platform for tenant "mytenant" issuing tok-1, tok-2, ... that live `expires`
-- seconds, and an API under /api that wants the newest token (or refuses the first `refuse`
-- tokens it sees with 401).
local function identity_and_api(expires, refuse)
  return string.format([[
    local expires, refuse, issued = %d, %d, 0
    return function(req)
      if req.path == "/mytenant/oauth2/v2.0/token" then
        issued = issued + 1
        return { status = 200, headers = { ["Content-Type"] = "application/json" },
          body = string.format('{"token_type":"Bearer","expires_in":%%d,"ext_expires_in":%%d,"access_token":"tok-%%d"}',
                               expires, expires, issued) }
      end
      local n = tonumber((req.headers.authorization or ""):match("^Bearer tok%%-(%%d+)$"))
      if not n or n ~= issued or n <= refuse then
        return { status = 401, body = '{"error":{"code":"0x80072243","message":"The token is not valid."}}' }
      end
      return { status = 200, body = "hello tok-" .. n }
    end]], expires, refuse)
end

local SECRET = "Sup3r/Secret+Value&x=1 ü"

describe("authentication", function()
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  local function cc_client(extra)
    local o = opts { tenant_id = "mytenant", client_id = "app-1234", client_secret = SECRET,
                     authority_host = srv.url, url = "https://contoso.crm.dynamics.com/api/data/v9.2/" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return http.new(o)
  end

  describe("static token", function()
    it("sends the token as a bearer token", function()
      srv = fake.start [[return function(req) return { status = 200, body = req.headers.authorization } end]]
      local c = http.new(opts { token = "given-token" })
      local _, _, body = c:request("GET", srv.url .. "/api/x")
      assert.are.equal("Bearer given-token", body)
      assert.are.equal("dataverse.http connection (static bearer token)", tostring(c))
    end)

    it("cannot refresh, so a 401 fails at once", function()
      srv = fake.start [[return { { status = 401, body = '{"error":{"code":"0x80072243","message":"expired"}}' } }]]
      local c = http.new(opts { token = "old-token" })
      local err = catch(c.request, c, "GET", srv.url .. "/api/x")
      assert.are.equal(401, err.status)
      assert.are.equal("0x80072243", err.code)
      assert.are.equal(1, #srv:requests())
    end)
  end)

  describe("client credentials", function()
    it("posts a properly encoded form to <authority>/<tenant>/oauth2/v2.0/token", function()
      srv = fake.start(identity_and_api(3600, 0))
      local c = cc_client()
      local status, _, body = c:request("GET", srv.url .. "/api/data/v9.2/WhoAmI")
      assert.are.equal(200, status)
      assert.are.equal("hello tok-1", body)
      local tok = split(srv:requests(), "/mytenant/")
      assert.are.equal(1, #tok)
      assert.are.equal("POST", tok[1].method)
      assert.are.equal("application/x-www-form-urlencoded", tok[1].headers["content-type"])
      assert.is_nil(tok[1].headers.authorization)
      assert.are.same({
        grant_type = "client_credentials", client_id = "app-1234", client_secret = SECRET,
        scope = "https://contoso.crm.dynamics.com/.default",
      }, form_decode(tok[1].body))
      -- reserved characters never travel raw
      assert.is_nil(tok[1].body:find("Secret+Value", 1, true))
      assert.matches("Sup3r%2FSecret%2BValue%26x%3D1%20%C3%BC", tok[1].body, 1, true)
    end)

    it("reuses a token until it nears expiry", function()
      srv = fake.start(identity_and_api(3600, 0))
      local c = cc_client()
      for _ = 1, 3 do assert.are.equal(200, (c:request("GET", srv.url .. "/api/x"))) end
      local seen = srv:requests()
      assert.are.equal(1, #split(seen, "/mytenant/"))
      assert.are.equal(3, #split(seen, "/api/"))
      assert.are.equal(1, c:token_fetches())
    end)

    it("refreshes a token that is within the refresh margin of expiry", function()
      srv = fake.start(identity_and_api(60, 0)) -- 60 s left is inside the default 300 s margin
      local c = cc_client()
      local _, _, b1 = c:request("GET", srv.url .. "/api/x")
      local _, _, b2 = c:request("GET", srv.url .. "/api/x")
      assert.are.equal("hello tok-1", b1)
      assert.are.equal("hello tok-2", b2)
      assert.are.equal(2, #split(srv:requests(), "/mytenant/"))
    end)

    it("honours a smaller refresh margin", function()
      srv = fake.start(identity_and_api(60, 0))
      local c = cc_client { refresh_margin = 10 }
      c:request("GET", srv.url .. "/api/x")
      c:request("GET", srv.url .. "/api/x")
      assert.are.equal(1, #split(srv:requests(), "/mytenant/"))
    end)

    it("answers a 401 with one token refresh and one more try", function()
      srv = fake.start(identity_and_api(3600, 1)) -- tok-1 is refused
      local c = cc_client()
      local status, _, body = c:request("POST", srv.url .. "/api/x", "{}")
      assert.are.equal(200, status)
      assert.are.equal("hello tok-2", body)
      local seen = srv:requests()
      assert.are.equal(2, #split(seen, "/mytenant/"))
      assert.are.equal(2, #split(seen, "/api/"))
    end)

    it("refreshes only once when the API keeps answering 401", function()
      srv = fake.start(identity_and_api(3600, 1000))
      local c = cc_client()
      local err = catch(c.request, c, "GET", srv.url .. "/api/x")
      assert.are.equal(401, err.status)
      assert.are.equal("0x80072243", err.code)
      local seen = srv:requests()
      assert.are.equal(2, #split(seen, "/mytenant/"))
      assert.are.equal(2, #split(seen, "/api/"))
    end)

    it("reports the identity platform's error without the secret", function()
      srv = fake.start [[return { { status = 401, headers = { ["Content-Type"] = "application/json" },
        body = '{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}' } }]]
      local c = cc_client()
      local err = catch(c.request, c, "GET", srv.url .. "/api/x")
      assert.are.equal(401, err.status)
      assert.are.equal("invalid_client", err.code)
      assert.matches("could not obtain a token for client app-1234", err.message, 1, true)
      assert.matches("AADSTS7000215", err.message, 1, true)
      assert.is_nil(tostring(err):find("Sup3r", 1, true))
      assert.are.equal(1, #srv:requests()) -- the API was never called without a token
    end)

    it("describes itself without secrets", function()
      srv = fake.start [[return {}]]
      local s = tostring(cc_client())
      assert.matches("client credentials %(tenant mytenant, client app%-1234", s)
      assert.is_nil(s:find("Sup3r", 1, true))
    end)

    it("names what is missing from an incomplete configuration", function()
      local err = catch(http.new, { tenant_id = "t", client_id = "c", url = "https://x.example" })
      assert.are.equal("config", err.code)
      assert.matches("missing: client_secret", err.message, 1, true)
    end)
  end)

  describe("secrecy", function()
    it("keeps the client secret and tokens out of traces, messages and descriptions", function()
      srv = fake.start(identity_and_api(3600, 1))
      local script = os.tmpname()
      dv.write_file(script, [[
        local url, secret = arg[1], arg[2]
        local http = require "dataverse.http"
        local c = http.new{ tenant_id = "mytenant", client_id = "app-1234", client_secret = secret,
          authority_host = url, url = "https://contoso.crm.dynamics.com", trace = true,
          backoff_base = 0.01 }
        print(tostring(c))
        print(c:request("POST", url .. "/api/x", '{"password":"pw-in-body","name":"n"}'))
        local bad = http.new{ tenant_id = "other", client_id = "app-1234", client_secret = secret,
          authority_host = url, url = "https://contoso.crm.dynamics.com" }
        local ok, err = pcall(bad.request, bad, "GET", url .. "/api/x")
        print(ok, tostring(err))
      ]])
      local r = dv.run({ script, srv.url, SECRET }, { env = { DVLUA_TRACE = "1" } })
      os.remove(script)
      assert.are.equal(0, r.status, r.stderr)
      local out = r.stdout .. r.stderr
      -- it did the work: two tokens (one refused by a 401), then the answer
      assert.matches("hello tok%-2", r.stdout)
      assert.matches("%[body: %d+ bytes, not shown: it holds credentials%]", r.stderr)
      assert.matches("Authorization: Bearer [redacted]", r.stderr, 1, true)
      assert.matches('"password":"[redacted]"', r.stderr, 1, true)
      for _, secret in ipairs { "Sup3r", "Sup3r%2FSecret", "tok-1", "tok-2\"", "Bearer tok", "pw-in-body" } do
        assert.is_nil(out:find(secret, 1, true), "leaked: " .. secret)
      end
    end)
  end)

  describe("device code flow", function()
    local DEVICE = [[
      local polls, declined = 0, %s
      return function(req)
        if req.path == "/organizations/oauth2/v2.0/devicecode" then
          return { status = 200, body = '{"user_code":"ABCD-EFGH","device_code":"dc-secret-42",'
            .. '"verification_uri":"https://example.test/devicelogin","expires_in":60,"interval":0,'
            .. '"message":"To sign in, open https://example.test/devicelogin and enter ABCD-EFGH."}' }
        end
        if req.path == "/organizations/oauth2/v2.0/token" then
          if req.body:find("grant_type=refresh_token", 1, true) then
            return { status = 200, body = '{"token_type":"Bearer","expires_in":60,"access_token":"dev-tok-refreshed","refresh_token":"rt-2"}' }
          end
          polls = polls + 1
          if declined then
            return { status = 400, body = '{"error":"authorization_declined","error_description":"AADSTS70000: the user declined."}' }
          end
          if polls < 3 then
            return { status = 400, body = '{"error":"authorization_pending","error_description":"AADSTS70016: pending"}' }
          end
          return { status = 200, body = '{"token_type":"Bearer","expires_in":60,"access_token":"dev-tok","refresh_token":"rt-1"}' }
        end
        return { status = 200, body = "api saw " .. tostring(req.headers.authorization) }
      end]]

    local SCRIPT = [[
      local url = arg[1]
      local c = require("dataverse.http").new{ device_code = true, client_id = "public-app",
        authority_host = url, url = "https://contoso.crm.dynamics.com", backoff_base = 0.01 }
      local ok, a, _, body = pcall(c.request, c, "GET", url .. "/api/one")
      print(ok, ok and body or tostring(a))
      if ok then print(select(3, c:request("GET", url .. "/api/two"))) end
    ]]

    local function run(declined)
      srv = fake.start(string.format(DEVICE, declined and "true" or "false"))
      local script = os.tmpname()
      dv.write_file(script, SCRIPT)
      local r = dv.run({ script, srv.url })
      os.remove(script)
      return r
    end

    it("shows the sign-in message, polls while pending, then uses and refreshes the token", function()
      local r = run(false)
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("To sign in, open https://example.test/devicelogin and enter ABCD-EFGH.", r.stderr, 1, true)
      assert.matches("true\tapi saw Bearer dev-tok\n", r.stdout, 1, true)
      assert.matches("api saw Bearer dev-tok-refreshed", r.stdout, 1, true)
      local seen = srv:requests()
      local dc = split(seen, "/organizations/oauth2/v2.0/devicecode")
      assert.are.equal(1, #dc)
      assert.are.same({ client_id = "public-app",
        scope = "https://contoso.crm.dynamics.com/.default offline_access" }, form_decode(dc[1].body))
      local tok = split(seen, "/organizations/oauth2/v2.0/token")
      assert.are.equal(4, #tok) -- two pending polls, the grant, then one refresh
      assert.are.same({ grant_type = "urn:ietf:params:oauth:grant-type:device_code",
        client_id = "public-app", device_code = "dc-secret-42" }, form_decode(tok[1].body))
      local refresh = form_decode(tok[4].body)
      assert.are.equal("refresh_token", refresh.grant_type)
      assert.are.equal("rt-1", refresh.refresh_token)
      assert.is_nil((r.stdout .. r.stderr):find("dc-secret-42", 1, true))
    end)

    it("fails clearly when the person declines", function()
      local r = run(true)
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("false\t[^\n]*:%d+: HTTP 400 authorization_declined: device code sign%-in failed: AADSTS70000", r.stdout)
      assert.are.equal(0, #split(srv:requests(), "/api/"))
    end)
  end)

  describe("configuration from the environment", function()
    local CLEAR = { DATAVERSE_TOKEN = "", AZURE_TENANT_ID = "", AZURE_CLIENT_ID = "",
                    AZURE_CLIENT_SECRET = "", AZURE_AUTHORITY_HOST = "", DATAVERSE_URL = "" }
    local function env(t)
      local e = {}
      for k, v in pairs(CLEAR) do e[k] = v end
      for k, v in pairs(t) do e[k] = v end
      return e
    end
    local SCRIPT = [[
      local c = require("dataverse.http").new{ from_env = true, backoff_base = 0.01 }
      local ok, a, _, body = pcall(c.request, c, "GET", arg[1] .. "/api/x")
      print(ok and body or tostring(a))
    ]]
    local function run(e)
      local script = os.tmpname()
      dv.write_file(script, SCRIPT)
      local r = dv.run({ script, srv.url }, { env = env(e) })
      os.remove(script)
      return r
    end

    it("uses AZURE_* with AZURE_AUTHORITY_HOST and the scope of DATAVERSE_URL", function()
      srv = fake.start [[return function(req)
        if req.path == "/envtenant/oauth2/v2.0/token" then
          return { status = 200, body = '{"access_token":"env-tok","expires_in":"3600"}' }
        end
        return { status = 200, body = "got " .. tostring(req.headers.authorization) }
      end]]
      local r = run { AZURE_TENANT_ID = "envtenant", AZURE_CLIENT_ID = "envclient",
        AZURE_CLIENT_SECRET = "env-secret", AZURE_AUTHORITY_HOST = srv.url,
        DATAVERSE_URL = "https://org.crm4.dynamics.com/api/data/v9.2" }
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal("got Bearer env-tok\n", r.stdout)
      local f = form_decode(srv:requests()[1].body)
      assert.are.equal("envclient", f.client_id)
      assert.are.equal("env-secret", f.client_secret)
      assert.are.equal("https://org.crm4.dynamics.com/.default", f.scope)
    end)

    it("prefers DATAVERSE_TOKEN", function()
      srv = fake.start [[return function(req) return { status = 200, body = req.headers.authorization } end]]
      local r = run { DATAVERSE_TOKEN = "env-static", AZURE_TENANT_ID = "t" }
      assert.are.equal("Bearer env-static\n", r.stdout)
      assert.are.equal(1, #srv:requests())
    end)

    it("names the missing variable of a partial configuration", function()
      srv = fake.start [[return {}]]
      local r = run { AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c", DATAVERSE_URL = "https://o.example" }
      assert.are_not.equal(0, r.status)
      assert.matches("missing: AZURE_CLIENT_SECRET", r.stderr, 1, true)
      assert.are.equal(0, #srv:requests())
    end)
  end)
end)
