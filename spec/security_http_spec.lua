-- Tokens and secrets never travel over plain http:// to another machine (docs/CONFIG.md).
local dataverse = require "dataverse"
local http = require "dataverse.http"
local dv = require "dv"

local function refused(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected a refusal")
  return err
end

describe("plain http://", function()
  it("is refused as an organization URL on another host, saying why", function()
    local err = refused(function()
      return dataverse.connect { url = "http://org.example.com", token = "secret-token-value" }
    end)
    assert.equals("insecure", err.code)
    assert.matches("http://org.example.com", err.message, 1, true)
    assert.matches("allow_insecure_http", err.message, 1, true)
    assert.matches("unencrypted", err.message, 1, true)
    assert.not_matches("secret%-token%-value", tostring(err))
  end)

  it("is refused for hosts that only look local", function()
    for _, url in ipairs { "http://127.0.0.1@evil.example.com", "http://127.0.0.1.example.com",
      "http://localhost.example.com:80", "http://10.0.0.1" } do
      local err = refused(function() return dataverse.connect { url = url, token = "t" } end)
      assert.equals("insecure", err.code, url)
    end
  end)

  it("is accepted for loopback addresses and with allow_insecure_http", function()
    for _, url in ipairs { "http://localhost:1", "http://127.0.0.1:1", "http://127.8.9.10", "http://[::1]:1" } do
      local org = dataverse.connect { url = url, token = "t" }
      org:close()
    end
    local org = dataverse.connect { url = "http://org.example.com", token = "t", allow_insecure_http = true }
    org:close()
  end)

  it("refuses an http:// authority host before any secret is sent", function()
    local err = refused(function()
      return dataverse.connect { url = "https://org.example.com", tenant_id = "t", client_id = "c",
        client_secret = "very-secret", authority_host = "http://login.example.com" }
    end)
    assert.equals("insecure", err.code)
    assert.matches("authority host", err.message, 1, true)
    assert.not_matches("very%-secret", tostring(err))
  end)

  it("refuses AZURE_AUTHORITY_HOST=http://... from the environment", function()
    local r = dv.run({ "-e", [[
      local ok, err = pcall(require("dataverse").connect, {})
      print(ok, err and err.code)
      local c = require("dataverse.http").new { from_env = true }
      print("unexpected")
    ]] }, { env = { DATAVERSE_URL = "https://org.example.com", AZURE_TENANT_ID = "t",
      AZURE_CLIENT_ID = "c", AZURE_CLIENT_SECRET = "very-secret", AZURE_AUTHORITY_HOST = "http://login.example.com" } })
    assert.matches("^false\tinsecure\n", r.stdout)
    assert.not_matches("unexpected", r.stdout)
    assert.matches("authority host", r.stderr, 1, true)
    assert.not_matches("very%-secret", r.stdout .. r.stderr)
  end)

  it("is refused by dataverse.http for a request that would carry a token", function()
    local c = http.new { token = "secret-token-value", retries = 0 }
    local ok, err = pcall(c.request, c, "GET", "http://example.invalid/api/data/v9.2/WhoAmI")
    assert.is_false(ok)
    assert.equals("insecure", err.code)
    assert.matches("bearer token", err.message, 1, true)
    c:close()
    -- Allowed, the request goes out (and fails to resolve: not a refusal).
    c = http.new { token = "secret-token-value", retries = 0, allow_insecure_http = true, connect_timeout = 2 }
    ok, err = pcall(c.request, c, "GET", "http://example.invalid/api/data/v9.2/WhoAmI")
    assert.is_false(ok)
    assert.equals("transport", err.code)
    c:close()
    -- Without a token nothing secret travels.
    c = http.new { retries = 0, connect_timeout = 2 }
    ok, err = pcall(c.request, c, "GET", "http://example.invalid/")
    assert.equals("transport", err.code)
    c:close()
  end)
end)
