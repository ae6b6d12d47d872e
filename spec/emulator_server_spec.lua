-- The emulator as a server: --serve, the Lua object, OAuth endpoints, faults, limits, files.
local E = require "emulator"
local curl = require "curl"
local dv = require "dv"

local sh = dv.sh

describe("emulator server", function()
  describe("dvlua --serve", function()
    it("prints its URL, answers a curl WhoAmI with a bearer token and stops cleanly on SIGTERM", function()
      local url, pid, out = dv.serve("", { env = { DVLUA_EMULATOR_TOKEN = "s3cret" } })
      assert.truthy(url, "no URL printed")
      assert.equals(url, dv.read_file(out):match("^(http://[%d%.]+:%d+)\n"), "the URL is not the first line")
      local r = curl.request { url = url .. "/api/data/v9.2/WhoAmI", headers = { Authorization = "Bearer s3cret" } }
      assert.equals(200, r.status)
      assert.truthy(r.json.UserId)
      assert.equals(401, curl.request { url = url .. "/api/data/v9.2/WhoAmI", headers = { Authorization = "Bearer wrong" } }.status)
      local code = sh("kill -TERM " .. pid .. "; for i in $(seq 100); do kill -0 " .. pid ..
        " 2>/dev/null || exit 0; sleep 0.05; done; exit 1")
      assert.equals(0, code, "the server did not stop")
      assert.equals(0, curl.request { url = url .. "/api/data/v9.2/WhoAmI" }.status)
      os.remove(out)
    end)

    it("takes faults from --faults", function()
      local url, pid, out = dv.serve("--faults '429=7*1'")
      assert.equals(url, dv.read_file(out):match("^(http://[%d%.]+:%d+)\n"))
      local who = url .. "/api/data/v9.2/WhoAmI"
      local r = curl.request { url = who, headers = { Authorization = "Bearer t" } }
      assert.equals(429, r.status)
      assert.equals("7", r.headers["retry-after"])
      assert.equals(200, curl.request { url = who, headers = { Authorization = "Bearer t" } }.status)
      os.execute("kill " .. pid)
      os.remove(out)
    end)

    it("refuses bad options", function()
      local r = dv.run({ "--serve", "--bogus", "1" })
      assert.equals(2, r.status)
      assert.matches("unknown option", r.stderr)
      r = dv.run({ "--serve", "--listen", "nohost" })
      assert.equals(2, r.status)
      r = dv.run({ "--serve", "--listen", "999.1.1.1:0" })
      assert.equals(1, r.status)
      assert.matches("IPv4", r.stderr)
    end)
  end)

  describe("the Lua object", function()
    it("has a url, a readable tostring, stops, and stops on <close>", function()
      local dataverse = require "dataverse"
      local url
      do
        local emu <close> = dataverse.emulator.start { db = ":memory:" }
        url = emu.url
        assert.matches("^http://127%.0%.0%.1:%d+$", url)
        assert.equals("dataverse.emulator (" .. url .. ")", tostring(emu))
        assert.equals(401, curl.request { url = url .. "/api/data/v9.2/WhoAmI" }.status)
      end
      assert.equals(0, curl.request { url = url .. "/api/data/v9.2/WhoAmI" }.status)
      local emu = dataverse.emulator.start()
      emu:stop()
      assert.equals("dataverse.emulator (stopped)", tostring(emu))
      assert.has_error(function() return emu.url end)
      emu:stop() -- twice is fine
    end)

    it("names bad options", function()
      local dataverse = require "dataverse"
      assert.has_error(function() dataverse.emulator.start { colour = "red" } end,
        "emulator.start: unknown option 'colour' (valid options: db, host, port, token, faults, max_body, retention, key_delay, timeout, limits, latency, dop_hint, header_timeout, max_conns, max_conns_per_client)")
      local ok, err = pcall(dataverse.emulator.start, { port = "x" })
      assert.is_false(ok)
      assert.matches("port", err)
      local a = dataverse.emulator.start {}
      local port = tonumber(a.url:match(":(%d+)$"))
      ok, err = pcall(dataverse.emulator.start, { port = port })
      a:stop()
      assert.is_false(ok)
      assert.matches("cannot listen", err)
    end)
  end)

  describe("OAuth endpoints", function()
    local api
    setup(function() api = E.start { token = "issued-token" } end)
    teardown(function() api.stop() end)

    local function form(path, body)
      return curl.request { method = "POST", url = api.url .. path, body = body,
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }
    end

    it("issues a token for client credentials that the Web API accepts", function()
      local r = form("/tenant-id/oauth2/v2.0/token",
        "grant_type=client_credentials&client_id=app&client_secret=s%26cret&scope=" .. api.enc(api.url .. "/.default"))
      assert.equals(200, r.status)
      assert.equals("Bearer", r.json.token_type)
      assert.is_true(r.json.expires_in > 0)
      assert.equals(200, api.get("WhoAmI", { token = r.json.access_token }).status)
    end)

    it("answers OAuth errors for missing secrets and unknown grants", function()
      local r = form("/t/oauth2/v2.0/token", "grant_type=client_credentials&client_id=app")
      assert.equals(400, r.status)
      assert.equals("invalid_client", r.json.error)
      r = form("/t/oauth2/v2.0/token", "grant_type=password&client_id=app")
      assert.equals("unsupported_grant_type", r.json.error)
      r = form("/t/oauth2/v2.0/token", "client_id=app")
      assert.equals("invalid_request", r.json.error)
    end)

    it("completes a device code flow at once", function()
      local r = form("/organizations/oauth2/v2.0/devicecode", "client_id=app&scope=x")
      assert.equals(200, r.status)
      assert.truthy(r.json.user_code)
      assert.truthy(r.json.verification_uri)
      local t = form("/organizations/oauth2/v2.0/token",
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=app&device_code=" .. api.enc(r.json.device_code))
      assert.equals(200, t.status)
      assert.equals("issued-token", t.json.access_token)
      t = form("/organizations/oauth2/v2.0/token",
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=app&device_code=forged")
      assert.equals(400, t.status)
    end)
  end)

  describe("faults", function()
    it("answers the next N requests with 429, Retry-After and Dataverse's throttling body", function()
      local api = E.start { faults = "429=3*2" }
      for _ = 1, 2 do
        local r = api.get("WhoAmI")
        assert.equals(429, r.status)
        assert.equals("3", r.headers["retry-after"])
        assert.equals("0x80072322", r.json.error.code)
        assert.matches("Number of requests exceeded the limit", r.json.error.message)
      end
      assert.equals(200, api.get("WhoAmI").status)
      api.stop()
    end)

    it("answers every Nth request with 503", function()
      local api = E.start { faults = "503/3" }
      local got = {}
      for i = 1, 6 do got[i] = api.get("WhoAmI").status end
      assert.same({ 200, 200, 503, 200, 200, 503 }, got)
      api.stop()
    end)

    it("drops the connection mid-answer and delays answers", function()
      local api = E.start { faults = "" }
      api.emu:faults("drop")
      local r = api.get("accounts")
      assert.is_true(r.status == 0 or r.json == nil)
      api.emu:faults { "503*1", "429=4*1" }
      assert.equals(503, api.get("WhoAmI").status)
      assert.equals("4", api.get("WhoAmI").headers["retry-after"])
      api.emu:faults("delay=50*1")
      assert.equals(200, api.get("WhoAmI").status)
      assert.equals(200, api.get("WhoAmI").status)
      assert.has_error(function() api.emu:faults("teapot") end)
      api.stop()
    end)

    it("refuses run-time faults unless enabled at start", function()
      local api = E.start {}
      assert.has_error(function() api.emu:faults("429") end)
      assert.equals(200, api.get("WhoAmI").status)
      api.stop()
    end)
  end)

  describe("limits", function()
    it("answers 413 for a body over the limit and keeps serving", function()
      local api = E.start { max_body = 1024 }
      local r = api.post("accounts", { name = string.rep("x", 4000) })
      assert.equals(413, r.status)
      assert.equals(204, api.post("accounts", { name = "small" }).status)
      api.stop()
    end)

    it("closes idle connections and keeps serving after malformed requests", function()
      local api = E.start { timeout = 1 }
      local host, port = api.url:match("http://([%d%.]+):(%d+)")
      -- a client that sends half a request and waits: the server closes it
      local code = sh("bash -c 'exec 3<>/dev/tcp/" .. host .. "/" .. port ..
        "; printf \"GET /api/data/v9.2/WhoAmI HTTP/1.1\\r\\n\" >&3; timeout 10 cat <&3 >/dev/null'")
      assert.equals(0, code)
      sh("bash -c 'exec 3<>/dev/tcp/" .. host .. "/" .. port ..
        "; printf \"\\x00\\x01garbage\\r\\n\\r\\n\" >&3; timeout 5 cat <&3 >/dev/null'")
      assert.equals(200, api.get("WhoAmI").status)
      assert.equals(404, api.get("http://" .. host .. ":" .. port .. "/nothing/here").status)
      assert.equals(200, api.get("WhoAmI").status)
      api.stop()
    end)
  end)

  it("keeps a file database across restarts", function()
    local path = os.tmpname()
    os.remove(path)
    local api = E.start { db = path }
    local id = api.create("accounts", { name = "durable" })
    local dl = api.get("accounts", { headers = { Prefer = "odata.track-changes" } }).json["@odata.deltaLink"]
    api.stop()
    api = E.start { db = path }
    assert.equals("durable", api.get("accounts(" .. id .. ")").json.name)
    assert.equals(200, api.get((dl:gsub("^http://[^/]+", api.url))).status)
    api.stop()
    for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
  end)
end)
