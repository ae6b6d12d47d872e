-- Bulk operation messages over the emulator's Web API: the requests of "Use bulk operation
-- messages" and the CreateMultiple/UpdateMultiple/UpsertMultiple reference pages, replayed on
-- the sample's books table.
local E = require "emulator"

local T = "Microsoft.Dynamics.CRM.sample_book"

local function books(n, from, extra)
  local t = {}
  for i = from or 1, (from or 1) + n - 1 do
    local r = { ["@odata.type"] = T, sample_name = ("book %07d"):format(i), sample_bookcode = ("B%07d"):format(i) }
    for k, v in pairs(extra or {}) do r[k] = v end
    t[#t + 1] = r
  end
  return t
end

describe("emulator bulk operation messages", function()
  local api

  local function count(filter)
    local r = api.get("sample_books/$count" .. (filter and ("?$filter=" .. api.enc(filter)) or ""))
    return tonumber(r.body)
  end

  setup(function()
    api = E.start { key_delay = 0 }
    assert.equals(204, api.post("ImportSolution", E.import_body(E.books)).status)
  end)
  teardown(function() api.stop() end)

  it("CreateMultiple creates every target and answers their Ids in order", function()
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = books(3) })
    assert.equals(200, r.status)
    assert.matches("%$metadata#Microsoft%.Dynamics%.CRM%.CreateMultipleResponse$", r.json["@odata.context"])
    assert.equals(3, #r.json.Ids)
    for i, id in ipairs(r.json.Ids) do
      local row = api.get("sample_books(" .. id .. ")").json
      assert.equals(("book %07d"):format(i), row.sample_name)
    end
  end)

  it("gives every row of one call its own version, visible to change tracking", function()
    local first = api.get("sample_books?$select=sample_name", { headers = { Prefer = "odata.track-changes" } }).json
    local delta = first["@odata.deltaLink"]
    assert.is_string(delta)
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = books(5, 100) })
    assert.equals(200, r.status)
    local changes = api.get(delta).json.value
    assert.equals(5, #changes)
    local seen = {}
    for _, c in ipairs(changes) do
      local row = api.get("sample_books(" .. c.sample_bookid .. ")?$select=versionnumber").json
      assert.is_nil(seen[row.versionnumber])
      seen[row.versionnumber] = true
    end
  end)

  it("refuses a target without @odata.type, writing nothing", function()
    local before = count()
    local t = books(3, 200)
    t[2]["@odata.type"] = nil
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = t })
    assert.equals(400, r.status)
    assert.matches("Targets%[1%]", r.json.error.message)
    assert.matches("@odata.type", r.json.error.message)
    t[2]["@odata.type"] = "Microsoft.Dynamics.CRM.account"
    r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = t })
    assert.equals(400, r.status)
    assert.equals(before, count())
  end)

  it("rolls back the whole call when one row fails (standard tables)", function()
    local before = count()
    local t = books(4, 300)
    t[3].sample_bookcode = t[1].sample_bookcode -- duplicate alternate key
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = t })
    assert.equals(412, r.status)
    assert.equals("0x80060892", r.json.error.code)
    assert.equals(before, count())
    t = books(2, 310)
    t[2].sample_name = ("x"):rep(200)
    r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = t })
    assert.equals(400, r.status)
    assert.equals(before, count())
  end)

  it("refuses a body without Targets, or with an empty one", function()
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Records = {} })
    assert.equals(400, r.status)
    assert.matches("Targets", r.json.error.message)
    r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", '{"Targets":[]}')
    assert.equals(400, r.status)
    r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", '{"Targets":[1]}')
    assert.equals(400, r.status)
  end)

  it("UpdateMultiple updates rows by primary key and answers 204", function()
    local ids = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = books(3, 400) }).json.Ids
    local t = {}
    for i, id in ipairs(ids) do
      t[i] = { ["@odata.type"] = T, sample_name = "updated " .. i, sample_bookid = id }
    end
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.UpdateMultiple?tag=CreateUpdateMultiple", { Targets = t })
    assert.equals(204, r.status)
    assert.equals("", r.body)
    for i, id in ipairs(ids) do
      assert.equals("updated " .. i, api.get("sample_books(" .. id .. ")").json.sample_name)
    end
    -- a missing row fails the call and nothing of it is kept
    t[1].sample_name = "not kept"
    t[2].sample_bookid = "00000000-0000-0000-0000-00000000dead"
    r = api.post("sample_books/Microsoft.Dynamics.CRM.UpdateMultiple", { Targets = t })
    assert.equals(404, r.status)
    assert.equals("updated 1", api.get("sample_books(" .. ids[1] .. ")").json.sample_name)
    t[2].sample_bookid = nil
    r = api.post("sample_books/Microsoft.Dynamics.CRM.UpdateMultiple", { Targets = t })
    assert.equals(400, r.status)
    assert.matches("sample_bookid", r.json.error.message)
  end)

  it("UpsertMultiple creates or updates rows addressed by alternate key in @odata.id", function()
    local function targets(suffix)
      local t = {}
      for i = 1, 3 do
        t[i] = {
          ["@odata.type"] = T,
          sample_name = ("sample record %07d%s"):format(i, suffix),
          ["@odata.id"] = ("sample_books(sample_bookcode='U%07d')"):format(i),
        }
      end
      return t
    end
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.UpsertMultiple", { Targets = targets("") })
    assert.equals(204, r.status)
    assert.equals(3, count("startswith(sample_bookcode,'U')"))
    r = api.post("sample_books/Microsoft.Dynamics.CRM.UpsertMultiple", { Targets = targets(" again") })
    assert.equals(204, r.status)
    assert.equals(3, count("startswith(sample_bookcode,'U')"))
    local row = api.get("sample_books(sample_bookcode='U0000002')").json
    assert.equals("sample record 0000002 again", row.sample_name)
    -- an absolute @odata.id works as well
    local t = targets(" abs")
    t[1]["@odata.id"] = api.base .. "sample_books(sample_bookcode='U0000001')"
    assert.equals(204, api.post("sample_books/Microsoft.Dynamics.CRM.UpsertMultiple", { Targets = t }).status)
    assert.equals("sample record 0000001 abs", api.get("sample_books(sample_bookcode='U0000001')").json.sample_name)
  end)

  it("does not offer DeleteMultiple on a standard table, and refuses unknown actions", function()
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.DeleteMultiple", { Targets = {} })
    assert.equals(404, r.status)
    assert.matches("DeleteMultiple", r.json.error.message)
    r = api.post("sample_books/Microsoft.Dynamics.CRM.Frobnicate", { Targets = {} })
    assert.equals(404, r.status)
    r = api.get("sample_books/Microsoft.Dynamics.CRM.CreateMultiple")
    assert.equals(405, r.status)
  end)

  it("serves bulk messages inside a $batch change set", function()
    local body = table.concat({
      "--b", "Content-Type: multipart/mixed; boundary=cs", "",
      "--cs", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "Content-ID: 1", "",
      "POST /api/data/v9.2/sample_books/Microsoft.Dynamics.CRM.CreateMultiple HTTP/1.1",
      "Content-Type: application/json", "",
      '{"Targets":[{"@odata.type":"' .. T .. '","sample_name":"in batch","sample_bookcode":"BATCH1"}]}',
      "--cs--", "--b--", "" }, "\r\n")
    local r = api.call("POST", "$batch", { body = body, headers = { ["Content-Type"] = "multipart/mixed; boundary=b" } })
    assert.equals(200, r.status)
    assert.matches("HTTP/1%.1 200", r.body)
    assert.matches('"Ids":%["', r.body)
    assert.equals(1, count("sample_bookcode eq 'BATCH1'"))
  end)
  it("hands out versions in commit order around bulk calls, whole or rolled back", function()
    local function version(code)
      return api.get("sample_books(sample_bookcode='" .. code .. "')?$select=versionnumber").json.versionnumber
    end
    local function upsert(code, name)
      return api.patch("sample_books(sample_bookcode='" .. code .. "')", { sample_name = name })
    end
    assert.equals(204, api.patch("sample_books(sample_bookcode='V0')", { sample_name = "before" }).status)
    local v0 = version("V0")
    local t = books(3, 500)
    assert.equals(200, api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = t }).status)
    local prev = v0
    for _, r in ipairs(t) do
      local v = version(r.sample_bookcode)
      assert.is_true(v > prev)
      prev = v
    end
    -- a call that fails on its third row took versions for four; none of them is handed out
    -- after the rollback, or a later write would sort before an earlier one
    local bad = books(4, 600)
    bad[3].sample_bookcode = bad[1].sample_bookcode
    assert.equals(412, api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", { Targets = bad }).status)
    local delta = api.get("sample_books?$select=sample_name", { headers = { Prefer = "odata.track-changes" } })
      .json["@odata.deltaLink"]
    for k = 1, 3 do
      assert.equals(204, upsert("V" .. k, "after " .. k).status)
      local v = version("V" .. k)
      assert.is_true(v > prev, ("write %d got version %d, not above %d"):format(k, v, prev))
      prev = v
    end
    local changes = api.get(delta).json.value
    assert.equals(3, #changes)
  end)

  it("reads records outside the plain form (escapes, spacing, numbers) as written", function()
    local body = '{ "Targets" : [\n'
      .. '  {"@odata.type":"' .. T .. '", "sample_name":"say \\"hi\\"\\n\\u00e9", "sample_bookcode":"ESC1", "sample_pages": -12},\n'
      .. '  {"@odata.type":"' .. T .. '","sample_name":"plain","sample_bookcode":"ESC2","sample_pages":0,"sample_edition":null}\n'
      .. '] }'
    local r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", body)
    assert.equals(200, r.status)
    local row = api.get("sample_books(sample_bookcode='ESC1')?$select=sample_name,sample_pages").json
    assert.equals('say "hi"\n\u{e9}', row.sample_name)
    assert.equals(-12, row.sample_pages)
    row = api.get("sample_books(sample_bookcode='ESC2')?$select=sample_name,sample_pages,sample_edition").json
    assert.equals("plain", row.sample_name)
    assert.equals(0, row.sample_pages)
    assert.equals(require("cjson").null, row.sample_edition)
    -- a fraction for a whole-number column, or a number JSON does not allow, is refused
    for _, pages in ipairs { "1.5", "007", "1e2" } do
      local bad = '{"Targets":[{"@odata.type":"' .. T .. '","sample_bookcode":"ESC3","sample_pages":' .. pages .. '}]}'
      r = api.post("sample_books/Microsoft.Dynamics.CRM.CreateMultiple", bad)
      assert.equals(400, r.status, pages)
    end
    assert.equals(0, count("sample_bookcode eq 'ESC3'"))
    -- the same forms in a single PATCH
    r = api.patch("sample_books(sample_bookcode='ESC2')", '{\n "sample_name" : "tab\\there" ,"sample_pages":7 }')
    assert.equals(204, r.status)
    row = api.get("sample_books(sample_bookcode='ESC2')?$select=sample_name,sample_pages").json
    assert.equals("tab\there", row.sample_name)
    assert.equals(7, row.sample_pages)
  end)
end)

describe("emulator ids", function()
  it("are GUIDs that sort in the order the rows were made, as Dataverse's sequential ids do", function()
    local dataverse = require "dataverse"
    local emu = dataverse.emulator.start { db = ":memory:" }
    local org = dataverse.connect { emulator = emu }
    local ids = {}
    for i = 1, 300 do ids[i] = org:create("account", { name = "seq " .. i }) end
    emu:stop()
    local seen = {}
    for i, id in ipairs(ids) do
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id)
      assert.is_nil(seen[id])
      seen[id] = true
      if i > 1 then assert.is_true(ids[i - 1] < id, "id " .. i .. " sorts before the one made before it") end
    end
  end)
end)
