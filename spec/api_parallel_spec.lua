-- org:parallel: tasks whose requests overlap on one connection, under one concurrency budget
-- (x-ms-dop-hint, never above 52, halved on 429 with a pause for Retry-After), against the
-- emulator with its latency model and service protection limits. Overlap is read from the
-- emulator's own count of requests in progress, never from wall time.
local dataverse = require "dataverse"
local fake = require "fake_server"

local function stop(org, emu)
  if org then org:close() end
  if emu then emu:stop() end
end

describe("org:parallel", function()
  local emu, org
  after_each(function()
    stop(org, emu)
    emu, org = nil, nil
  end)

  it("overlaps the requests of its tasks and returns their results in task order", function()
    emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 1000 }, dop_hint = 8 }
    org = dataverse.connect { emulator = emu }
    org:whoami() -- learns the hint
    emu:stats(true)
    local tasks = {}
    for i = 1, 8 do
      tasks[i] = function()
        local _, _, body = org:call("GET", "WhoAmI")
        assert(body.UserId)
        return i * 10
      end
    end
    local results = org:parallel(tasks)
    assert.equals(8, #results)
    for i = 1, 8 do assert.same({ ok = true, value = i * 10 }, results[i]) end
    local s = emu:stats()
    assert.equals(8, s.requests)
    assert.equals(8, s.peak_concurrent)
    assert.equals(8, org:stats().peak)
  end)

  it("keeps results in task order when tasks finish out of order, for lists and maps", function()
    emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 30 } }
    org = dataverse.connect { emulator = emu }
    local order = {}
    local function task(n, tag)
      return function()
        for _ = 1, n do org:call("GET", "WhoAmI") end
        order[#order + 1] = tag
        return tag
      end
    end
    local r = org:parallel { task(4, "a"), task(1, "b"), task(2, "c") }
    assert.same({ "a", "b", "c" }, { r[1].value, r[2].value, r[3].value })
    assert.equals("b", order[1]) -- the shortest task finished first
    local m = org:parallel { x = task(2, "x"), y = task(1, "y") }
    assert.same({ ok = true, value = "x" }, m.x)
    assert.same({ ok = true, value = "y" }, m.y)
  end)

  it("reports an error in one task without stopping the others", function()
    emu = dataverse.emulator.start { db = ":memory:" }
    org = dataverse.connect { emulator = emu }
    local id = org:create("account", { name = "kept" })
    local other = org:create("account", { name = "other" })
    local r = org:parallel {
      function() return org:retrieve("account", id, { columns = { "name" } }).name end,
      function() error("task two failed") end,
      function() return org:request("GET", "nosuchtables") end,
      function()
        org:update("account", other, { name = "changed" })
        return org:retrieve("account", other).name
      end,
    }
    assert.same({ ok = true, value = "kept" }, r[1])
    assert.is_false(r[2].ok)
    assert.matches("task two failed", tostring(r[2].error))
    assert.is_true(r[3].ok) -- org:request hands back the status rather than raising
    assert.equals(404, r[3].value)
    assert.same({ ok = true, value = "changed" }, r[4])
    -- an error raised by a request (a dataverse.error) reaches the result as it is
    local r2 = org:parallel { function() return org:update("account", "00000000-0000-0000-0000-000000000001", { name = "x" }) end }
    assert.is_false(r2[1].ok)
    assert.equals(404, r2[1].error.status)
  end)

  it("does not repeat a write whose answer was lost, and retries a read", function()
    emu = dataverse.emulator.start { db = ":memory:", faults = "" }
    org = dataverse.connect { emulator = emu }
    org:create("account", { name = "seed" })
    emu:faults("drop")
    -- (an answer with a body, cut halfway: an empty answer on a kept-alive connection would
    -- look like a stale connection to libcurl, which sends the request again by itself)
    local r = org:parallel { function()
      return org:request("POST", "accounts", { name = "lost answer" }, { Prefer = "return=representation" })
    end }
    assert.is_false(r[1].ok)
    assert.equals("maybe_applied", r[1].error.code)
    assert.equals(2, org:count("account")) -- carried out once, not repeated
    emu:faults("drop")
    r = org:parallel { function()
      local _, _, body = org:request("GET", "accounts?$select=name")
      return #body.value
    end }
    assert.same({ ok = true, value = 2 }, r[1])
    assert.equals(1, org:stats().retries)
  end)

  it("never runs more requests than the dop hint", function()
    emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 150 }, dop_hint = 3 }
    org = dataverse.connect { emulator = emu }
    local tasks = {}
    for i = 1, 10 do tasks[i] = function() for _ = 1, 3 do org:call("GET", "WhoAmI") end return true end end
    local r = org:parallel(tasks)
    for i = 1, 10 do assert.is_true(r[i].ok) end
    assert.equals(30, emu:stats().requests)
    assert.equals(3, emu:stats().peak_concurrent)
    assert.equals(3, org.concurrency)
    assert.equals(3, org:stats().hint)
  end)

  it("never runs more than 52 requests, whatever the hint says", function()
    emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 600 }, dop_hint = 200 }
    org = dataverse.connect { emulator = emu }
    org:whoami()
    emu:stats(true)
    local tasks = {}
    for i = 1, 60 do tasks[i] = function() org:call("GET", "WhoAmI") return i end end
    local r = org:parallel(tasks)
    assert.equals(60, #r)
    assert.equals(52, org.concurrency)
    local peak = emu:stats().peak_concurrent
    assert.truthy(peak <= 52, "peak " .. peak)
    assert.truthy(peak > 8, "peak " .. peak)
    assert.equals(52, org:stats().peak)
  end)

  it("takes a lower cap from opts.concurrency and from connect", function()
    emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 200 }, dop_hint = 8 }
    org = dataverse.connect { emulator = emu }
    org:whoami()
    emu:stats(true)
    local tasks = {}
    for i = 1, 6 do tasks[i] = function() org:call("GET", "WhoAmI") return i end end
    org:parallel(tasks, { concurrency = 2 })
    assert.equals(2, emu:stats().peak_concurrent)
    org:close()
    org = dataverse.connect { emulator = emu, concurrency = 3 }
    org:whoami()
    emu:stats(true)
    org:parallel(tasks)
    assert.equals(3, emu:stats().peak_concurrent)
    assert.equals(3, org.concurrency)
  end)

  it("reads change-tracking pages of several tables at once", function()
    emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 300 } }
    org = dataverse.connect { emulator = emu }
    for i = 1, 7 do org:create("account", { name = "A" .. i }) end
    for i = 1, 5 do org:create("contact", { lastname = "C" .. i }) end
    org:whoami()
    emu:stats(true)
    local function count(entity)
      return function()
        local it = org:changes { entity = entity, page_size = 2 }
        local n = 0
        for _ in it do n = n + 1 end
        assert(it.token)
        return n
      end
    end
    local r = org:parallel { count("account"), count("contact") }
    assert.same({ ok = true, value = 7 }, r[1])
    assert.same({ ok = true, value = 5 }, r[2])
    assert.equals(2, emu:stats().peak_concurrent)
  end)

  it("finishes a throttled run with every request served, pausing and halving", function()
    emu = dataverse.emulator.start { db = ":memory:", dop_hint = 8, latency = { request_ms = 20 },
      limits = { concurrent = 3, requests = 25, window = 1 } }
    org = dataverse.connect { emulator = emu }
    local tasks = {}
    for i = 1, 10 do
      tasks[i] = function()
        for _ = 1, 5 do org:call("GET", "WhoAmI") end
        return i
      end
    end
    local ticks, seen_throttled = 0, 0
    local r = org:parallel(tasks, { on_progress = function()
      ticks = ticks + 1
      seen_throttled = org:stats().throttled
    end })
    for i = 1, 10 do assert.same({ ok = true, value = i }, r[i]) end
    assert.truthy(ticks >= 10)
    local s = org:stats()
    assert.equals(s.throttled, seen_throttled)
    assert.truthy(s.throttled > 0)
    assert.truthy(s.waited > 0)
    assert.truthy(s.concurrency < 8)
    assert.equals(s.throttled, s.retries)
    local e = emu:stats()
    assert.equals(50, e.requests) -- every request was served in the end
    assert.equals(s.throttled, e.throttled)
  end)

  it("grows the budget back slowly after a halving: one per 20 successful answers", function()
    emu = dataverse.emulator.start { db = ":memory:", dop_hint = 8, latency = { request_ms = 30 },
      limits = { concurrent = 1 } }
    org = dataverse.connect { emulator = emu }
    org:whoami()
    local tasks = {}
    for i = 1, 8 do tasks[i] = function() org:call("GET", "WhoAmI") return i end end
    for _, r in ipairs(org:parallel(tasks)) do assert.is_true(r.ok) end
    local c0 = org.concurrency
    assert.truthy(c0 < 8 and org:stats().throttled > 0)
    -- one request at a time from here: the concurrency limit is never met again
    for _ = 1, 20 do org:call("GET", "WhoAmI") end
    assert.equals(c0 + 1, org.concurrency)
    for _ = 1, 40 do org:call("GET", "WhoAmI") end
    assert.equals(math.min(8, c0 + 3), org.concurrency)
  end)

  it("refuses misuse", function()
    emu = dataverse.emulator.start { db = ":memory:" }
    org = dataverse.connect { emulator = emu }
    assert.has_error(function() org:parallel("x") end, nil)
    local ok, err = pcall(org.parallel, org, { 1 })
    assert.is_false(ok)
    assert.matches("tasks%[1%]: function expected", err)
    ok, err = pcall(org.parallel, org, {}, { bogus = 1 })
    assert.matches("unknown option 'bogus'", err)
    ok, err = pcall(org.parallel, org, {}, { concurrency = 0 })
    assert.matches("concurrency", err)
    assert.same({}, org:parallel {})
    local r = org:parallel { function() coroutine.yield("mine") end }
    assert.is_false(r[1].ok)
    assert.matches("yielded outside a request", tostring(r[1].error))
  end)

  it("lets a task use its own coroutines around requests", function()
    emu = dataverse.emulator.start { db = ":memory:" }
    org = dataverse.connect { emulator = emu }
    local r = org:parallel {
      function()
        local gen = coroutine.wrap(function()
          for _ = 1, 2 do coroutine.yield(select(3, org:call("GET", "WhoAmI")).UserId) end
        end)
        return gen() == gen()
      end,
    }
    assert.same({ ok = true, value = true }, r[1])
  end)
end)

describe("org:parallel and authentication", function()
  it("refreshes an expired token once for all the tasks it failed", function()
    local srv = fake.start [[
      local issued = 0
      return function(req)
        if req.path == "/mytenant/oauth2/v2.0/token" then
          issued = issued + 1
          return { status = 200, headers = { ["Content-Type"] = "application/json" },
            body = string.format('{"token_type":"Bearer","expires_in":3600,"access_token":"tok-%d"}', issued) }
        end
        local n = tonumber((req.headers.authorization or ""):match("^Bearer tok%-(%d+)$"))
        if n ~= 2 then
          return { status = 401, body = '{"error":{"code":"0x80072243","message":"The token is not valid."}}' }
        end
        return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"n":' .. n .. '}' }
      end]]
    local org = dataverse.connect { url = srv.url, tenant_id = "mytenant", client_id = "app",
      client_secret = "s3cret", authority_host = srv.url, concurrency = 4 }
    local tasks = {}
    for i = 1, 4 do tasks[i] = function() return select(3, org:call("GET", "WhoAmI")).n end end
    local r = org:parallel(tasks)
    for i = 1, 4 do assert.same({ ok = true, value = 2 }, r[i]) end
    local tokens = 0
    for _, req in ipairs(srv:requests()) do
      if req.path == "/mytenant/oauth2/v2.0/token" then tokens = tokens + 1 end
    end
    assert.equals(2, tokens) -- the first token, then one refresh shared by the four tasks
    org:close()
    srv:stop()
  end)
end)

describe("org:sleep", function()
  it("lets the other tasks run while one sleeps", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local org = dataverse.connect { emulator = emu }
    org:whoami()
    emu:stats(true)
    local r = org:parallel {
      function()
        org:sleep(2)
        return emu:stats().requests -- what the other task did meanwhile
      end,
      function()
        for _ = 1, 3 do org:call("GET", "WhoAmI") end
        return "done"
      end,
    }
    assert.same({ ok = true, value = 3 }, r[1])
    assert.same({ ok = true, value = "done" }, r[2])
    org:sleep(0) -- outside a task it simply waits
    assert.equals(0, org:stats().queued)
    local ok, err = pcall(org.sleep, org, -1)
    assert.is_false(ok)
    assert.matches("seconds", err)
    org:close()
    emu:stop()
  end)
end)

describe("org:spawn and org:wait", function()
  it("run spawned tasks together, tasks may spawn more, results in spawn order", function()
    local emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 600 }, dop_hint = 8 }
    local org = dataverse.connect { emulator = emu }
    org:whoami()
    emu:stats(true)
    assert.same({}, org:wait())
    for i = 1, 3 do
      assert.equals(i, org:spawn(function()
        org:call("GET", "WhoAmI")
        if i == 1 then org:spawn(function() org:call("GET", "WhoAmI") return "late" end) end
        return i
      end))
    end
    local r = org:wait()
    assert.same({ { ok = true, value = 1 }, { ok = true, value = 2 }, { ok = true, value = 3 },
      { ok = true, value = "late" } }, r)
    assert.equals(4, emu:stats().requests)
    assert.equals(3, emu:stats().peak_concurrent)
    assert.same({}, org:wait()) -- the group is gone once waited for
    local ok, err = pcall(org.spawn, org, 42)
    assert.is_false(ok)
    assert.matches("function expected", err)
    org:close()
    emu:stop()
  end)

  it("nests org:parallel inside a task, and blocks where a task cannot yield", function()
    local emu = dataverse.emulator.start { db = ":memory:", latency = { request_ms = 50 } }
    local org = dataverse.connect { emulator = emu }
    local r = org:parallel {
      function()
        local inner = org:parallel { function() return select(3, org:call("GET", "WhoAmI")).UserId end,
          function() return 2 end }
        return inner[1].ok and inner[2].value
      end,
      function()
        -- a callback of string.gsub cannot yield: the request blocks and still succeeds
        return (("x"):gsub("x", function() return select(3, org:call("GET", "WhoAmI")).UserId end))
      end,
    }
    assert.same({ ok = true, value = 2 }, r[1])
    assert.is_true(r[2].ok)
    assert.matches("^%x+%-", r[2].value)
    org:close()
    emu:stop()
  end)
end)
