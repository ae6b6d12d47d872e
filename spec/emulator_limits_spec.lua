-- Service protection limits, the latency model and x-ms-dop-hint in the emulator, over HTTP:
-- each limit answered with 429, its documented code and message and Retry-After; the rate
-- limit headers; all of it off by default; delays that overlap across connections.
local E = require "emulator"
local curl = require "curl"
local dv = require "dv"

local function who(api) return api.get("WhoAmI") end

-- Waits (bounded) until pred() is true; returns its last value.
local function wait_until(pred)
  for _ = 1, 400 do
    local v = pred()
    if v then return v end
    os.execute("sleep 0.025")
  end
  return pred()
end

-- Starts `dvlua --serve` with extra arguments; returns url and a stop function.
local function serve(args)
  local url, pid, out = dv.serve(args)
  return url, function()
    os.execute("kill " .. pid)
    os.remove(out)
  end, dv.read_file(out)
end

-- Sends a request from a background curl process (so that it is in flight while the spec
-- goes on); returns a function that waits for it and gives its status.
local function background_get(api, path)
  local out = os.tmpname()
  os.execute("curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer " .. E.token ..
    "' " .. dv.quote(api.base .. path) .. " >" .. out .. " 2>/dev/null &")
  return function()
    local s = wait_until(function() return dv.read_file(out):match("^%d%d%d$") end)
    os.remove(out)
    return tonumber(s)
  end
end

describe("emulator service protection", function()
  local api
  after_each(function()
    if api then api.stop() end
    api = nil
  end)

  it("is off by default: no rate-limit headers, no refusals, but an x-ms-dop-hint", function()
    api = E.start {}
    for _ = 1, 30 do
      local r = who(api)
      assert.equals(200, r.status)
      assert.is_nil(r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
      assert.is_nil(r.headers["x-ms-ratelimit-time-remaining-xrm-requests"])
      assert.equals("8", r.headers["x-ms-dop-hint"])
    end
    local s = api.emu:stats()
    assert.equals(30, s.requests)
    assert.equals(0, s.throttled)
  end)

  it("sends the configured x-ms-dop-hint", function()
    api = E.start { dop_hint = 3 }
    assert.equals("3", who(api).headers["x-ms-dop-hint"])
  end)

  it("with the defaults, counts down from 6,000 requests and 1,200 seconds", function()
    api = E.start { limits = true }
    local r = who(api)
    assert.equals(200, r.status)
    assert.equals("5999", r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
    -- seconds with grouped thousands and two decimals, as the service writes it
    assert.matches("^1,[12]%d%d%.%d%d$", r.headers["x-ms-ratelimit-time-remaining-xrm-requests"])
    assert.equals("5998", who(api).headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
  end)

  it("refuses the request over the number of requests in the window with 0x80072322", function()
    api = E.start { limits = { requests = 3, window = 60 } }
    for i = 1, 3 do
      local r = who(api)
      assert.equals(200, r.status)
      assert.equals(tostring(3 - i), r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
    end
    local r = who(api)
    assert.equals(429, r.status)
    assert.equals("0x80072322", r.json.error.code)
    assert.equals("Number of requests exceeded the limit of 3 over time window of 60 seconds.",
      r.json.error.message)
    local ra = tonumber(r.headers["retry-after"])
    assert.truthy(ra and ra >= 1 and ra <= 60, "Retry-After: " .. tostring(r.headers["retry-after"]))
    assert.equals("0", r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
    assert.equals(1, api.emu:stats().throttled)
    assert.equals(3, api.emu:stats().requests)
  end)

  it("lets requests through again once the window has moved on", function()
    api = E.start { limits = { requests = 2, window = 1 } }
    assert.equals(200, who(api).status)
    assert.equals(200, who(api).status)
    local r = who(api)
    assert.equals(429, r.status)
    assert.equals("1", r.headers["retry-after"])
    assert.equals(200, wait_until(function()
      local s = who(api).status
      return s == 200 and s
    end))
  end)

  it("refuses the request over the combined execution time with 0x80072321", function()
    api = E.start { limits = { execution_ms = 50, window = 60 }, latency = { request_ms = 80 } }
    assert.equals(200, who(api).status) -- 80 ms of the 50 allowed: the next one is refused
    local r = who(api)
    assert.equals(429, r.status)
    assert.equals("0x80072321", r.json.error.code)
    assert.equals("Combined execution time of incoming requests exceeded limit of 50 milliseconds " ..
      "over time window of 60 seconds.", r.json.error.message)
    assert.truthy(tonumber(r.headers["retry-after"]) >= 1)
    assert.equals("0.00", r.headers["x-ms-ratelimit-time-remaining-xrm-requests"])
  end)

  it("groups the thousands of the execution-time limit in its message, as documented", function()
    -- The documented text reads "exceeded limit of 1,200,000 milliseconds".
    api = E.start { limits = { execution_ms = 1200, window = 60 }, latency = { request_ms = 1250 } }
    assert.equals(200, who(api).status)
    local r = who(api)
    assert.equals(429, r.status)
    assert.equals("Combined execution time of incoming requests exceeded limit of 1,200 milliseconds " ..
      "over time window of 60 seconds.", r.json.error.message)
  end)

  it("refuses a request over the concurrent limit with 0x80072326", function()
    api = E.start { limits = { concurrent = 1 }, latency = { request_ms = 1500 } }
    local first = background_get(api, "WhoAmI")
    assert.equals(1, wait_until(function() return api.emu:stats().concurrent == 1 and 1 end))
    local r = who(api)
    assert.equals(429, r.status)
    assert.equals("0x80072326", r.json.error.code)
    assert.equals("Number of concurrent requests exceeded the limit of 1.", r.json.error.message)
    assert.equals("1", r.headers["retry-after"])
    assert.equals(200, first())
  end)

  it("is switched on by --serve --limits, with or without settings", function()
    local url, stop = serve("--limits requests=2,window=60 --dop-hint 5")
    local w = url .. "/api/data/v9.2/WhoAmI"
    local h = { Authorization = "Bearer t" }
    local r = curl.request { url = w, headers = h }
    assert.equals("1", r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
    assert.equals("5", r.headers["x-ms-dop-hint"])
    assert.equals(200, curl.request { url = w, headers = h }.status)
    r = curl.request { url = w, headers = h }
    assert.equals(429, r.status)
    assert.equals("0x80072322", r.json.error.code)
    stop()
    url, stop = serve("--limits")
    r = curl.request { url = url .. "/api/data/v9.2/WhoAmI", headers = h }
    assert.equals("5999", r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"])
    stop()
  end)

  it("writes its counters to --stats FILE when it stops", function()
    local stats = os.tmpname()
    os.remove(stats)
    local url, stop = serve("--latency request_ms=60 --stats " .. dv.quote(stats))
    local h = { Authorization = "Bearer t" }
    for _ = 1, 2 do assert.equals(200, curl.request { url = url .. "/api/data/v9.2/WhoAmI", headers = h }.status) end
    stop()
    local text = wait_until(function()
      local t = dv.read_file(stats)
      return t:match("\n$") and t
    end)
    local j = require("cjson").decode(text)
    assert.equals(2, j.requests)
    assert.equals(0, j.throttled)
    assert.equals(1, j.peak_concurrent)
    assert.truthy(j.busy_ms >= 120, text)
    -- what the latency model charged, whatever else the requests took
    assert.equals(120, j.latency_ms, text)
    os.remove(stats)
  end)

  it("refuses bad settings by name", function()
    local r = dv.run({ "--serve", "--limits", "requests=abc" })
    assert.equals(2, r.status)
    assert.matches("requests", r.stderr)
    r = dv.run({ "--serve", "--latency", "bogus=1" })
    assert.equals(2, r.status)
    assert.matches("bogus", r.stderr)
    local dataverse = require "dataverse"
    local ok, err = pcall(dataverse.emulator.start, { limits = { request = 5 } })
    assert.is_false(ok)
    assert.matches("emulator%.start{limits=}: unknown option 'request' %(did you mean 'requests'%?%)", tostring(err))
    ok, err = pcall(dataverse.emulator.start, { latency = { request_ms = -1 } })
    assert.is_false(ok)
    assert.matches("latency.request_ms", tostring(err))
  end)
end)

describe("emulator latency model", function()
  local api
  after_each(function()
    if api then api.stop() end
    api = nil
  end)

  it("delays each answer by request_ms plus per_row_ms per row returned", function()
    api = E.start { latency = { request_ms = 30, per_row_ms = 20 } }
    for i = 1, 10 do api.create("accounts", { name = "A" .. i }) end
    api.emu:stats(true)
    local r = api.get("accounts?$select=name")
    assert.equals(200, r.status)
    assert.equals(10, #r.json.value)
    local s = api.emu:stats()
    assert.equals(1, s.requests)
    -- the server-side time of the one request: 30 + 10 x 20 ms at least
    assert.truthy(s.busy_ms >= 230, "busy_ms " .. s.busy_ms)
    assert.truthy(s.lock_wait_ms >= 0 and s.lock_wait_ms < s.busy_ms)
    -- the model's own part of it, exactly: 30 + 10 x 20
    assert.equals(230, s.latency_ms)
    api.emu:stats(true)
    r = api.get("accounts?$select=name&$top=2")
    assert.equals(2, #r.json.value)
    s = api.emu:stats()
    assert.truthy(s.busy_ms >= 70, "busy_ms " .. s.busy_ms)
    assert.equals(70, s.latency_ms)
  end)

  it("does not hold the store: delayed requests are in progress together", function()
    api = E.start { latency = { request_ms = 2500 } }
    local waits = {}
    for i = 1, 5 do waits[i] = background_get(api, "WhoAmI") end
    wait_until(function() return api.emu:stats().concurrent == 5 end)
    for i = 1, 5 do assert.equals(200, waits[i]()) end
    assert.equals(5, api.emu:stats().peak_concurrent)
  end)
end)
