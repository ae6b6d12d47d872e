-- Change tracking: Prefer: odata.track-changes, delta links, deletions, paging, refusals.
local E = require "emulator"

describe("emulator change tracking", function()
  local api
  local TRACK = { Prefer = "odata.track-changes" }

  local function paged(track, size)
    return { Prefer = "odata.track-changes,odata.maxpagesize=" .. size }
  end

  -- Follows nextLinks (repeating the Prefer header as DynamicsWebApi does) and returns
  -- every row, the page count and the final deltaLink.
  local function all_pages(url, headers)
    local rows, pages = {}, 0
    local r = api.get(url, { headers = headers })
    while true do
      assert.equals(200, r.status, r.body)
      pages = pages + 1
      for _, row in ipairs(r.json.value) do rows[#rows + 1] = row end
      if r.json["@odata.nextLink"] then
        assert.is_nil(r.json["@odata.deltaLink"])
        r = api.get(r.json["@odata.nextLink"], { headers = headers })
      else
        return rows, pages, r.json["@odata.deltaLink"], r
      end
    end
  end

  before_each(function()
    api = E.start {}
  end)
  after_each(function() api.stop() end)

  it("starts with all rows, Preference-Applied and a deltaLink in Dataverse's token format", function()
    api.create("accounts", { name = "A" })
    api.create("accounts", { name = "B" })
    local r = api.get("accounts?$select=name", { headers = TRACK })
    assert.equals(200, r.status)
    assert.equals("odata.track-changes", r.headers["preference-applied"])
    assert.equals(api.base .. "$metadata#accounts(name)", r.json["@odata.context"])
    assert.equals(2, #r.json.value)
    local dl = r.json["@odata.deltaLink"]
    assert.matches("^" .. api.base:gsub("%p", "%%%0") .. "accounts%?%$select=name&%$deltatoken=", dl)
    assert.matches("%$deltatoken=%d+%%21%d%d%%2f%d%d%%2f%d%d%d%d%%20%d%d%%3a%d%d%%3a%d%d$", dl)
    assert.is_nil(r.json["@odata.nextLink"])
  end)

  it("returns new and updated rows with current values, then deletions, with a fresh deltaLink", function()
    local keep = api.create("accounts", { name = "keep", telephone1 = "1" })
    local upd = api.create("accounts", { name = "old name", telephone1 = "2" })
    local del = api.create("accounts", { name = "to delete" })
    local _, _, dl = all_pages("accounts?$select=name", TRACK)
    api.patch("accounts(" .. upd .. ")", { name = "new name" }, { headers = { ["If-Match"] = "*" } })
    api.delete("accounts(" .. del .. ")")
    local new = api.create("accounts", { name = "brand new" })
    local r = api.get(dl)
    assert.equals(200, r.status)
    assert.equals(api.base .. "$metadata#accounts(name)/$delta", r.json["@odata.context"])
    local v = r.json.value
    assert.equals(3, #v)
    assert.equals(upd, v[1].accountid)
    assert.equals("new name", v[1].name)
    assert.is_nil(v[1].telephone1) -- $select carried by the delta link
    assert.equals(new, v[2].accountid)
    assert.same({ ["@odata.context"] = api.base .. "$metadata#accounts/$deletedEntity", id = del, reason = "deleted" }, v[3])
    local dl2 = r.json["@odata.deltaLink"]
    assert.truthy(dl2)
    assert.not_equals(dl, dl2)
    for _, row in ipairs(v) do assert.not_equals(keep, row.accountid) end
    -- nothing changed since: an empty delta
    r = api.get(dl2)
    assert.equals(0, #r.json.value)
    assert.truthy(r.json["@odata.deltaLink"])
  end)

  it("reports a row created and deleted between syncs only as deleted", function()
    local _, _, dl = all_pages("accounts", TRACK)
    local id = api.create("accounts", { name = "short-lived" })
    api.delete("accounts(" .. id .. ")")
    local r = api.get(dl)
    assert.equals(1, #r.json.value)
    assert.equals("deleted", r.json.value[1].reason)
    assert.equals(id, r.json.value[1].id)
  end)

  it("pages the initial load and the delta, accepting the Prefer header again on nextLinks", function()
    for i = 1, 7 do api.create("accounts", { name = "row" .. i }) end
    local rows, pages, dl = all_pages("accounts?$select=name", paged(true, 3))
    assert.equals(7, #rows)
    assert.equals(3, pages)
    local ids = {}
    for i = 1, 5 do ids[i] = api.create("accounts", { name = "more" .. i }) end
    api.delete("accounts(" .. rows[1].accountid .. ")")
    api.delete("accounts(" .. rows[2].accountid .. ")")
    local changes, dpages, dl2, last = all_pages(dl, paged(true, 3))
    assert.equals(7, #changes)
    assert.equals(3, dpages)
    assert.equals(api.base .. "$metadata#accounts(name)/$delta", last.json["@odata.context"])
    assert.equals("deleted", changes[6].reason)
    assert.equals("deleted", changes[7].reason)
    for i = 1, 5 do assert.equals(ids[i], changes[i].accountid) end
    assert.truthy(dl2)
    -- nextLinks also work without the header
    local plain = api.get("accounts", { headers = paged(true, 4) })
    local r2 = api.get(plain.json["@odata.nextLink"])
    assert.equals(200, r2.status)
    assert.equals(10, #plain.json.value + #r2.json.value) -- 7 + 5 - 2 rows; the rest on one page
  end)

  it("never loses a change made while a client pages through the initial load", function()
    for i = 1, 4 do api.create("accounts", { name = "p" .. i }) end
    local r = api.get("accounts?$select=name", { headers = paged(true, 2) })
    local first = r.json.value
    -- change a row already delivered and add one while the client is between pages
    api.patch("accounts(" .. first[1].accountid .. ")", { name = "changed meanwhile" }, { headers = { ["If-Match"] = "*" } })
    local during = api.create("accounts", { name = "created meanwhile" })
    local rest, _, dl = all_pages(r.json["@odata.nextLink"], paged(true, 2))
    assert.equals(2, #rest)
    local delta = api.get(dl).json.value
    local seen = {}
    for _, row in ipairs(delta) do seen[row.accountid] = row.name end
    assert.equals("changed meanwhile", seen[first[1].accountid])
    assert.equals("created meanwhile", seen[during])
  end)

  it("counts changes with $count and a delta token", function()
    local a = api.create("accounts", { name = "a" })
    local _, _, dl = all_pages("accounts", TRACK)
    api.create("accounts", { name = "b" })
    api.delete("accounts(" .. a .. ")")
    local tok = dl:match("%$deltatoken=(.*)$")
    local r = api.get("accounts/$count?$deltatoken=" .. tok)
    assert.equals(200, r.status)
    assert.equals("2", r.body)
  end)

  it("takes versions from one organization-wide counter", function()
    local a = api.create("accounts", { name = "a" })
    local c = api.create("contacts", { firstname = "c" })
    local b = api.create("accounts", { name = "b" })
    local va = api.get("accounts(" .. a .. ")").json.versionnumber
    local vc = api.get("contacts(" .. c .. ")").json.versionnumber
    local vb = api.get("accounts(" .. b .. ")").json.versionnumber
    assert.is_true(va < vc and vc < vb)
  end)

  describe("refusals", function()
    for _, opt in ipairs { "$filter=name eq 'x'", "$orderby=name", "$expand=primarycontactid", "$top=1" } do
      local name = opt:match("^([^=]+)")
      it("refuses " .. name .. " with track-changes", function()
        local r = api.get("accounts?" .. opt:gsub(" ", "%%20"), { headers = TRACK })
        assert.equals(400, r.status)
        assert.equals('The "' .. name .. "\" query parameter isn't supported when Change Tracking is enabled.", r.json.error.message)
      end)
    end

    it("refuses a table without change tracking", function()
      local r = api.get("organizations", { headers = TRACK })
      assert.equals(400, r.status)
      assert.matches("Change tracking is not enabled for the entity 'organization'", r.json.error.message, 1, true)
      assert.is_nil(r.json.value)
    end)

    it("answers 0x80044352 for a token older than the retention", function()
      local _, _, dl = all_pages("accounts", TRACK)
      assert.equals(200, api.get(dl).status)
      api.emu:advance(7 * 86400 + 60)
      local r = api.get(dl)
      assert.equals(400, r.status)
      assert.equals("0x80044352", r.json.error.code)
      assert.equals("Version stamp associated with the client has expired. Please perform a full sync.", r.json.error.message)
      -- a full sync gets a new, working token
      local _, _, fresh = all_pages("accounts", TRACK)
      assert.equals(200, api.get(fresh).status)
    end)

    it("honours a retention set in seconds", function()
      local short = E.start { retention = 3600 }
      local r = short.get("accounts", { headers = TRACK })
      local dl = r.json["@odata.deltaLink"]
      short.emu:advance(1800)
      assert.equals(200, short.get(dl).status)
      short.emu:advance(3600)
      assert.equals("0x80044352", short.get(dl).json.error.code)
      short.emu:retention(86400)
      assert.equals(200, short.get(dl).status)
      short.stop()
    end)

    it("refuses a malformed token with 400", function()
      for _, tok in ipairs { "garbage", "12", "12%21", "99999999%2101%2f01%2f2020%2000%3a00%3a00", "12%2113%2f45%2f2020%2000%3a00%3a00" } do
        local r = api.get("accounts?$deltatoken=" .. tok)
        assert.equals(400, r.status, tok)
        assert.truthy(r.json.error.code)
      end
    end)
  end)
end)
