-- Per-call request options (headers, impersonation, bypass, If-Match, return_row,
-- annotations), the event hooks, and Ctrl-C during a call.
local dataverse = require "dataverse"
local E = require "emulator"
local dv = require "dv"
local fake = require "fake_server"

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local USER = "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d01"
local OBJECT = "11111111-2222-3333-4444-555555555555"
local ROW = "00000000-0000-0000-0000-0000000000aa"

describe("request options on the wire", function()
  local srv, org

  setup(function()
    srv = fake.start [[
      local ROW = "00000000-0000-0000-0000-0000000000aa"
      local meta = '{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}'
      return function(req)
        local json = { ["Content-Type"] = "application/json" }
        local p, m = req.path, req.method
        if p:find("EntityDefinitions", 1, true) then return { status = 200, headers = json, body = meta } end
        if p:find("/$count", 1, true) then return { status = 200, headers = { ["Content-Type"] = "text/plain" }, body = "3" } end
        if p:find("WhoAmI", 1, true) then return { status = 200, headers = json, body = '{"UserId":"' .. ROW .. '"}' } end
        local row = '{"@odata.etag":"W/\\"7\\"","accountid":"' .. ROW .. '","name":"n"}'
        local wants_row = (req.headers.prefer or ""):find("return=representation", 1, true)
        if m == "POST" or m == "PATCH" then
          local h = { ["OData-EntityId"] = "http://x/api/data/v9.2/accounts(" .. ROW .. ")", ["Content-Type"] = "application/json" }
          if wants_row then return { status = m == "POST" and 201 or 200, headers = h, body = row } end
          return { status = 204, headers = h, body = "" }
        end
        if m == "DELETE" then return { status = 204, body = "" } end
        if p:find("accounts%(") then return { status = 200, headers = json, body = row } end
        return { status = 200, headers = json, body = '{"value":[' .. row .. ']}' }
      end
    ]]
    org = dataverse.connect { url = srv.url, token = "t" }
  end)
  teardown(function()
    org:close()
    srv:stop()
  end)

  local function last() local all = srv:requests() return all[#all] end

  it("sends extra headers, impersonation and the bypass header on a create", function()
    org:create("account", { name = "n" }, {
      headers = { ["X-Trace-Id"] = "abc", Prefer = "odata.include-annotations=\"x.y\"" },
      caller_id = USER, caller_object_id = OBJECT, bypass_custom_logic = true,
    })
    local h = last().headers
    assert.equals("abc", h["x-trace-id"])
    assert.equals(USER, h["mscrmcallerid"])
    assert.equals(OBJECT, h["callerobjectid"])
    assert.equals("CustomSync,CustomAsync", h["mscrm.bypassbusinesslogicexecution"])
    assert.equals('odata.include-annotations="x.y"', h.prefer)
    org:create("account", { name = "n" }, { bypass_custom_logic = "CustomAsync" })
    assert.equals("CustomAsync", last().headers["mscrm.bypassbusinesslogicexecution"])
  end)

  it("combines Prefer preferences and lets a caller's header replace dvlua's own", function()
    local it = org:query("account", { page_size = 7, annotations = "*", headers = { Accept = "application/json;odata.metadata=full" } })
    it()
    local h = last().headers
    assert.equals('odata.maxpagesize=7,odata.include-annotations="*"', h.prefer)
    assert.equals("application/json;odata.metadata=full", h.accept)
  end)

  it("sends If-Match on update and delete", function()
    org:update("account", ROW, { name = "x" })
    assert.equals("*", last().headers["if-match"])
    org:update("account", ROW, { name = "x" }, { if_match = 'W/"7"' })
    assert.equals('W/"7"', last().headers["if-match"])
    assert.equals("PATCH", last().method)
    org:delete("account", ROW, { if_match = 'W/"7"' })
    assert.equals('W/"7"', last().headers["if-match"])
    assert.equals("DELETE", last().method)
  end)

  it("asks for the written row with return_row and returns it", function()
    local id, row = org:create("account", { name = "n" }, { return_row = true, columns = { "name" } })
    assert.equals(ROW, id)
    assert.equals("n", row.name)
    assert.matches("%?%$select=name$", last().path)
    assert.equals("return=representation", last().headers.prefer)
    local updated = org:update("account", ROW, { name = "n" }, { return_row = true })
    assert.equals(ROW, updated.accountid)
  end)

  it("carries request options on retrieve, count and execute", function()
    org:retrieve("account", ROW, { caller_id = USER, annotations = "OData.Community.Display.V1.FormattedValue" })
    assert.equals(USER, last().headers["mscrmcallerid"])
    assert.equals('odata.include-annotations="OData.Community.Display.V1.FormattedValue"', last().headers.prefer)
    org:count("account", { headers = { ["X-N"] = 1 } })
    assert.equals("1", last().headers["x-n"])
    org:execute("WhoAmI", nil, { caller_object_id = OBJECT })
    assert.equals(OBJECT, last().headers["callerobjectid"])
  end)
end)

describe("request options against the emulator", function()
  local emu, org
  setup(function() emu, org = E.open() end)
  teardown(function() E.close(emu, org) end)

  it("updates and deletes only the version named by if_match", function()
    local id, row = org:create("account", { name = "v1" }, { return_row = true })
    local etag = row["@odata.etag"]
    assert.matches('^W/"%d+"$', etag)
    local fresh = org:update("account", id, { name = "v2" }, { if_match = etag, return_row = true })
    assert.equals("v2", fresh.name)
    local err = err_of(org.update, org, "account", id, { name = "v3" }, { if_match = etag })
    assert.equals(412, err.status)
    assert.equals("0x80060882", err.code)
    err = err_of(org.delete, org, "account", id, { if_match = etag })
    assert.equals(412, err.status)
    org:delete("account", id, { if_match = fresh["@odata.etag"] })
    assert.is_nil(org:retrieve("account", id))
  end)

  it("returns the row of an upsert as a third result", function()
    local id, created, row = org:upsert("account", "00000000-0000-0000-0000-00000000beef", { name = "U" },
      { return_row = true })
    assert.equals("00000000-0000-0000-0000-00000000beef", id)
    assert.is_true(created)
    assert.equals("U", row.name)
  end)

  it("returns lookup targets and formatted values when annotations are asked for", function()
    local c = org:create("contact", { firstname = "Ann", lastname = "Lee" })
    local a = org:create("account", { name = "Annotated", creditonhold = true,
      ["primarycontactid@odata.bind"] = "/contacts(" .. c .. ")" })
    local row = org:retrieve("account", a, { annotations = "*" })
    assert.equals("contact", row["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"])
    assert.equals("Ann Lee", row["_primarycontactid_value@OData.Community.Display.V1.FormattedValue"])
    assert.equals("Yes", row["creditonhold@OData.Community.Display.V1.FormattedValue"])
    local plain = org:retrieve("account", a)
    assert.is_nil(plain["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"])
    local some = org:retrieve("account", a, { annotations = "Microsoft.Dynamics.CRM.*" })
    assert.equals("contact", some["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"])
    assert.is_nil(some["_primarycontactid_value@OData.Community.Display.V1.FormattedValue"])
    local seen
    for r in org:query("account", { filter = "name eq 'Annotated'", annotations = true }) do seen = r end
    assert.equals("Ann Lee", seen["_primarycontactid_value@OData.Community.Display.V1.FormattedValue"])
  end)
end)

describe("event hooks", function()
  it("tells on_request about every try and on_retry about every wait", function()
    local emu = dataverse.emulator.start { db = ":memory:", faults = "" }
    local tries, waits = {}, {}
    local org = dataverse.connect { emulator = emu, retries = 3,
      on_request = function(ev) tries[#tries + 1] = ev end,
      on_retry = function(ev) waits[#waits + 1] = ev end }
    org:whoami()
    assert.equals(1, #tries)
    local ev = tries[1]
    assert.equals("GET", ev.method)
    assert.equals(emu.url .. "/api/data/v9.2/WhoAmI", ev.url)
    assert.equals(200, ev.status)
    assert.equals(1, ev.attempt)
    assert.is_true(ev.elapsed >= 0)
    assert.is_nil(ev.error)
    emu:faults("429=0")
    org:whoami()
    assert.equals(3, #tries)
    assert.equals(429, tries[2].status)
    assert.equals(2, tries[3].attempt)
    assert.equals(200, tries[3].status)
    assert.equals(1, #waits)
    assert.equals(429, waits[1].status)
    assert.equals(1, waits[1].attempt)
    assert.equals(0, waits[1].retry_after)
    assert.equals(0, waits[1].wait)
    org:close()
    emu:stop()
  end)

  it("tells on_page about every page of a query and of change tracking", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local pages = {}
    local org = dataverse.connect { emulator = emu, on_page = function(ev) pages[#pages + 1] = ev end }
    for i = 1, 5 do org:create("account", { name = "p" .. i }) end
    local n = 0
    for _ in org:query("account", { page_size = 2 }) do n = n + 1 end
    assert.equals(5, n)
    assert.equals(3, #pages)
    assert.same({ 2, 2, 1 }, { pages[1].rows, pages[2].rows, pages[3].rows })
    assert.same({ 1, 2, 3 }, { pages[1].page, pages[2].page, pages[3].page })
    assert.is_true(pages[1].more)
    assert.is_false(pages[3].more)
    assert.equals("account", pages[1].table)
    assert.matches("^" .. emu.url:gsub("%p", "%%%0") .. "/api/data/v9%.2/accounts", pages[1].url)
    org:close()
    emu:stop()
  end)

  it("sees the requests and pages of org:parallel's tasks too", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local tries, pages = {}, 0
    local org = dataverse.connect { emulator = emu, on_request = function(ev) tries[#tries + 1] = ev.url end,
      on_page = function() pages = pages + 1 end }
    for i = 1, 4 do org:create("account", { name = "t" .. i }) end
    local before = #tries
    local res = org:parallel {
      function() local n = 0 for _ in org:query("account", { page_size = 2 }) do n = n + 1 end return n end,
      function() local me = org:whoami() return me.UserId end,
    }
    assert.equals(4, res[1].value)
    assert.is_true(res[2].ok)
    assert.equals(3, #tries - before) -- two pages and WhoAmI
    assert.equals(2, pages)
    org:close()
    emu:stop()
  end)

  it("calls only the hooks that are set, request after request", function()
    local emu = dataverse.emulator.start { db = ":memory:", faults = "" }
    local waits = 0
    local org = dataverse.connect { emulator = emu, on_retry = function() waits = waits + 1 end }
    for _ = 1, 30 do assert.is_table(org:whoami()) end
    emu:faults("429=0")
    local id = org:create("account", { name = "after" })
    assert.equals("after", org:retrieve("account", id).name)
    assert.equals(1, waits)
    org:close()
    emu:stop()
  end)

  it("refuses a request from a hook on the connection it observes", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local org
    org = dataverse.connect { emulator = emu, on_request = function() org:whoami() end }
    local err = err_of(org.whoami, org)
    assert.matches("an event hook cannot send requests on its own connection", tostring(err))
    org:close()
    emu:stop()
  end)

  it("ends the call with a hook's error and stays usable", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local fail = true
    local org = dataverse.connect { emulator = emu, on_request = function()
      if fail then error("hook said no") end
    end }
    local err = err_of(org.whoami, org)
    assert.matches("hook said no", tostring(err))
    fail = false
    assert.is_table(org:whoami())
    org:close()
    emu:stop()
  end)
end)

describe("Ctrl-C during a call", function()
  -- Runs a script that starts a slow request once `ready` exists, sends SIGINT to it, and
  -- returns its exit status and stderr.
  local function interrupt(fault, call)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dv.quote(dir)))
    local script = dv.write_file(dir .. "/slow.lua", ([[
local dataverse = require "dataverse"
local emu = dataverse.emulator.start { db = ":memory:", faults = "" }
local org = dataverse.connect { emulator = emu }
org:whoami()
emu:faults(%q)
local f = assert(io.open(arg[1], "w")) f:write("ready") f:close()
print(%s)
print("not reached")
]]):format(fault, call or 'org:count("account")'))
    local ready, status = dir .. "/ready", dir .. "/status"
    local cmd = ("%s %s %s >%s/out 2>%s/err & pid=$!; i=0; " ..
      "while [ ! -s %s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; sleep 0.3; " ..
      "kill -INT $pid; wait $pid; echo $? >%s"):format(dv.quote(dv.bin), dv.quote(script),
      dv.quote(ready), dir, dir, dv.quote(ready), dv.quote(status))
    os.execute(cmd)
    local r = { status = tonumber(dv.read_file(status)), stderr = dv.read_file(dir .. "/err"),
      stdout = dv.read_file(dir .. "/out"), script = script }
    os.execute("rm -rf " .. dv.quote(dir))
    return r
  end

  local function plain(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

  it("aborts a request in flight with the interrupt message and status 130", function()
    local r = interrupt("delay=4000")
    assert.equals(130, r.status, r.stderr)
    assert.matches(plain(r.script) .. ":7: interrupted!", r.stderr)
    assert.is_nil(r.stderr:lower():find("json", 1, true))
    assert.is_nil(r.stdout:find("not reached", 1, true))
  end)

  it("ends every task of org:parallel and the script, not just one task", function()
    local r = interrupt("delay=4000*4",
      'org:parallel { function() local n = org:count("account") return n end, function() local me = org:whoami() return me end }')
    assert.equals(130, r.status, r.stderr)
    assert.matches(plain(r.script) .. ":%d+: interrupted!", r.stderr)
    assert.is_nil(r.stdout:find("not reached", 1, true))
  end)

  it("ends org:sleep the same way", function()
    local r = interrupt("", "org:sleep(30)")
    assert.equals(130, r.status, r.stderr)
    assert.matches(plain(r.script) .. ":7: interrupted!", r.stderr)
    assert.is_nil(r.stdout:find("not reached", 1, true))
  end)

  it("ends a wait between retries the same way", function()
    local r = interrupt("429=8*5")
    assert.equals(130, r.status, r.stderr)
    assert.matches(plain(r.script) .. ":7: interrupted!", r.stderr)
    assert.is_nil(r.stdout:find("not reached", 1, true))
  end)
end)
