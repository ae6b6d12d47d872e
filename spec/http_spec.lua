-- The HTTP layer (src/http.c through dataverse.http) against scripted servers on loopback.
local http = require "dataverse.http"
local fake = require "fake_server"
local dv = require "dv"

local function client(extra)
  return http.new(fake.fast(extra))
end

local function catch(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local DV_ERROR_429 = [[{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}]]

describe("dataverse.http", function()
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("reuses one kept-alive connection for several requests", function()
    srv = fake.start [[return function(req, n) return { status = 200, body = "r" .. n } end]]
    local c = client()
    for i = 1, 3 do
      local status, _, body = c:request("GET", srv.url .. "/api/" .. i)
      assert.are.equal(200, status)
      assert.are.equal("r" .. i, body)
    end
    local status = c:request("POST", srv.url .. "/api/post", '{"a":1}', { ["Content-Type"] = "application/json" })
    assert.are.equal(200, status)
    local seen = srv:requests()
    assert.are.equal(4, #seen)
    for _, r in ipairs(seen) do assert.are.equal(1, r.conn) end
    assert.are.equal('{"a":1}', seen[4].body)
    assert.are.equal("application/json", seen[4].headers["content-type"])
  end)

  it("sends the method, headers and body it is given and returns status, lower-case headers and body", function()
    srv = fake.start [[return function(req)
      return { status = 201, headers = { ["OData-EntityId"] = "x(1)", ["X-Echo"] = req.headers["x-custom"] },
               body = req.method .. " " .. req.path .. " " .. req.body }
    end]]
    local c = client()
    local status, headers, body = c:request("PATCH", srv.url .. "/accounts(1)?a=b", "payload",
      { ["X-Custom"] = "v1", "If-Match: *" })
    assert.are.equal(201, status)
    assert.are.equal("x(1)", headers["odata-entityid"])
    assert.are.equal("v1", headers["x-echo"])
    assert.are.equal("PATCH /accounts(1)?a=b payload", body)
    assert.are.equal("*", srv:requests()[1].headers["if-match"])
  end)

  it("retries 503, 502 and 504 on a GET and returns the answer that finally came", function()
    srv = fake.start [[return {
      { status = 503 }, { status = 502 }, { status = 504 }, { status = 200, body = "finally" } }]]
    local status, _, body = client():request("GET", srv.url .. "/x")
    assert.are.equal(200, status)
    assert.are.equal("finally", body)
    assert.are.equal(4, #srv:requests())
  end)

  it("retries a throttled POST (429 and 503 mean the server did not act on it)", function()
    srv = fake.start [[return {
      { status = 429, headers = { ["Retry-After"] = "0" } }, { status = 503 }, { status = 204 } }]]
    local status = client():request("POST", srv.url .. "/accounts", "{}")
    assert.are.equal(204, status)
    local seen = srv:requests()
    assert.are.equal(3, #seen)
    for _, r in ipairs(seen) do assert.are.equal("{}", r.body) end
  end)

  it("does not repeat a POST answered by a gateway timeout (504): it may have been applied", function()
    srv = fake.start [[return { { status = 504 }, { status = 204 } }]]
    local c = client()
    local err = catch(c.request, c, "POST", srv.url .. "/accounts", "{}")
    assert.are.equal(504, err.status)
    assert.matches("may have been applied", err.message)
    assert.are.equal(1, #srv:requests())
  end)

  it("gives up after max_tries with status, Dataverse code, message, Retry-After and request id", function()
    srv = fake.start(string.format([[return function() return {
      status = 429, body = %q,
      headers = { ["Retry-After"] = "0", ["x-ms-service-request-id"] = "req-42",
                  ["Content-Type"] = "application/json" } } end]], DV_ERROR_429))
    local c = client { max_tries = 3 }
    local err = catch(c.request, c, "GET", srv.url .. "/accounts")
    assert.are.equal(3, #srv:requests())
    assert.are.equal(429, err.status)
    assert.are.equal("0x80072322", err.code)
    assert.matches("Number of requests exceeded", err.message, 1, true)
    assert.matches("gave up after 3 tries", err.message, 1, true)
    assert.are.equal(0, err.retry_after)
    assert.are.equal("req-42", err.request_id)
    assert.are.equal(DV_ERROR_429, err.body)
    assert.matches("^spec/http_spec%.lua:%d+: HTTP 429 0x80072322: Number of requests exceeded", tostring(err))
    assert.are.equal(debug.getregistry()["dataverse.error"], getmetatable(err))
  end)

  it("does not retry other client errors and reports the Dataverse error body", function()
    srv = fake.start [[return { { status = 404,
      body = '{"error":{"code":"0x80040217","message":"account With Id = 1 Does Not Exist"}}' } }]]
    local c = client()
    local err = catch(c.request, c, "GET", srv.url .. "/accounts(1)")
    assert.are.equal(1, #srv:requests())
    assert.are.equal(404, err.status)
    assert.are.equal("0x80040217", err.code)
    assert.are.equal("account With Id = 1 Does Not Exist", err.message)
    assert.is_nil(err.retry_after)
    assert.matches("^spec/http_spec%.lua:%d+: HTTP 404 0x80040217: account With Id = 1 Does Not Exist$", tostring(err))
  end)

  it("names the status when an error body is not Dataverse JSON", function()
    srv = fake.start [[return { { status = 500, body = "<html>oops</html>" } }]]
    local c = client()
    local err = catch(c.request, c, "DELETE", srv.url .. "/accounts(2)")
    assert.are.equal(500, err.status)
    assert.are.equal("http", err.code)
    assert.matches("DELETE http://127.0.0.1:%d+/accounts%(2%) answered HTTP 500", err.message)
    assert.matches("^spec/http_spec%.lua:%d+: HTTP 500: DELETE", tostring(err))
  end)

  it("retries a refused connection, then fails naming the host and the reason", function()
    local port = fake.closed_port()
    local c = client { max_tries = 3 }
    local err = catch(c.request, c, "POST", "http://127.0.0.1:" .. port .. "/accounts", "{}")
    assert.are.equal(0, err.status)
    assert.are.equal("transport", err.code)
    assert.matches("127.0.0.1:" .. port, err.message, 1, true)
    assert.matches("connect", err.message)
    assert.matches("gave up after 3 tries", err.message, 1, true)
    assert.matches("^spec/http_spec%.lua:%d+: transport: POST", tostring(err))
  end)

  it("does not repeat a POST that timed out after it was sent", function()
    srv = fake.start [[return { { hang = true }, { status = 204 } }]]
    local c = client { timeout = 0.3 }
    local err = catch(c.request, c, "POST", srv.url .. "/accounts", '{"name":"x"}')
    assert.are.equal("maybe_applied", err.code)
    assert.matches("may have been applied", err.message)
    assert.matches("timed out", err.message)
    assert.are.equal(1, #srv:requests())
  end)

  it("repeats a GET that timed out (reading is safe to repeat)", function()
    srv = fake.start [[return { { hang = true }, { status = 200, body = "second" } }]]
    local status, _, body = client({ timeout = 0.3 }):request("GET", srv.url .. "/accounts")
    assert.are.equal(200, status)
    assert.are.equal("second", body)
    assert.are.equal(2, #srv:requests())
  end)

  it("accepts gzip and hands back the decoded body", function()
    local plain = os.tmpname()
    local text = string.rep('{"name":"compressible row"},', 200)
    dv.write_file(plain, text)
    assert(os.execute("gzip -c " .. plain .. " > " .. plain .. ".gz"))
    srv = fake.start(string.format([[return function(req)
      if not (req.headers["accept-encoding"] or ""):find("gzip") then return { status = 400 } end
      return { status = 200, body_file = %q, headers = { ["Content-Encoding"] = "gzip" } }
    end]], plain .. ".gz"))
    local status, headers, body = client():request("GET", srv.url .. "/rows")
    os.remove(plain); os.remove(plain .. ".gz")
    assert.are.equal(200, status)
    assert.are.equal("gzip", headers["content-encoding"])
    assert.are.equal(text, body)
  end)

  describe("TLS", function()
    local dir, tls_pid, port
    before_each(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      assert(os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        .. " -keyout " .. dir .. "/key.pem -out " .. dir .. "/cert.pem -days 1 -subj /CN=127.0.0.1"
        .. " >/dev/null 2>&1"))
      assert(os.execute("openssl s_server -accept 127.0.0.1:0 -cert " .. dir .. "/cert.pem -key "
        .. dir .. "/key.pem -www -naccept 1 >" .. dir .. "/out 2>&1 & echo $! >" .. dir .. "/pid"))
      tls_pid = fake.read_file(dir .. "/pid"):match("%d+")
      for _ = 1, 300 do
        port = (fake.read_file(dir .. "/out") or ""):match("ACCEPT [^\n]*:(%d+)")
        if port then break end
        require("socket").sleep(0.01)
      end
      assert.is_truthy(port, "openssl s_server did not start")
    end)
    after_each(function()
      os.execute("kill " .. tls_pid .. " 2>/dev/null")
      os.execute("rm -rf " .. dir)
    end)

    it("verifies certificates by default: a self-signed one is refused", function()
      local c = client()
      local err = catch(c.request, c, "GET", "https://127.0.0.1:" .. port .. "/")
      assert.are.equal("transport", err.code)
      assert.matches("certificate", err.message:lower())
      assert.is_nil(err.message:find("gave up", 1, true)) -- not a transient failure
    end)

    it("skips verification only when insecure_skip_tls_verify is set", function()
      local status, _, body = client({ insecure_skip_tls_verify = true })
        :request("GET", "https://127.0.0.1:" .. port .. "/")
      assert.are.equal(200, status)
      assert.matches("s_server", body)
    end)
  end)

  describe("trace", function()
    it("honours Retry-After (capped), and redacts Authorization in DVLUA_TRACE output", function()
      srv = fake.start [[return {
        { status = 429, headers = { ["Retry-After"] = "1" } },
        { status = 429, headers = { ["Retry-After"] = "3600" } },
        { status = 200, headers = { ["Set-Cookie"] = "session=cookie-secret" }, body = "ok" } }]]
      local script = os.tmpname()
      dv.write_file(script, [[
        local c = require("dataverse.http").new{ backoff_cap = 1.2 }
        local status = c:request("GET", arg[1] .. "/accounts", nil,
          { Authorization = "Bearer top-secret-token-value" })
        print("status", status)
      ]])
      local r = dv.run({ script, srv.url }, { env = { DVLUA_TRACE = "1" } })
      os.remove(script)
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("status\t200", r.stdout)
      assert.are.equal(3, #srv:requests())
      assert.matches("waiting 1000 ms before try 2 (Retry-After: 1 s)", r.stderr, 1, true)
      assert.matches("waiting 1200 ms before try 3 (Retry-After: 3600 s)", r.stderr, 1, true)
      assert.matches("dvlua> GET http://127.0.0.1:%d+/accounts %(try 1 of 5%)", r.stderr)
      assert.matches("Authorization: Bearer [redacted]", r.stderr, 1, true)
      assert.matches("Set-Cookie: [redacted]", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("top-secret-token-value", 1, true))
      assert.is_nil(r.stderr:find("cookie-secret", 1, true))
      assert.are.equal("top-secret-token-value", srv:requests()[1].headers["authorization"]:match("Bearer (.*)"))
    end)

    it("is silent without DVLUA_TRACE or the trace option", function()
      srv = fake.start [[return { { status = 200, body = "ok" } }]]
      local r = dv.run({ "-e", "require('dataverse.http').new{}:request('GET', '" .. srv.url .. "/x')" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal("", r.stderr)
    end)
  end)

  describe("misuse", function()
    it("rejects unknown options by name", function()
      local ok, err = pcall(http.new, { insecure = true })
      assert.is_false(ok)
      assert.matches("unknown option 'insecure'", err)
    end)

    it("rejects bad option values", function()
      assert.matches("'timeout' must be a number of seconds", select(2, pcall(http.new, { timeout = "soon" })))
      assert.matches("'retries' must be an integer", select(2, pcall(http.new, { retries = -1 })))
    end)

    it("rejects header injection and relative URLs", function()
      local c = client()
      assert.matches("bad name or value", select(2, pcall(c.request, c, "GET", "http://127.0.0.1:1/",
        nil, { ["X-A"] = "v\r\nX-Injected: 1" })))
      assert.matches("url must be absolute", select(2, pcall(c.request, c, "GET", "/relative")))
    end)

    it("refuses to work once closed, and closes with a to-be-closed variable", function()
      local c = client()
      assert.matches("^dataverse.http connection %(no authentication%)$", tostring(c))
      do
        local cc <close> = c
      end
      assert.are.equal("dataverse.http connection (closed)", tostring(c))
      assert.matches("closed", select(2, pcall(c.request, c, "GET", "http://127.0.0.1:1/")))
    end)
  end)
end)
