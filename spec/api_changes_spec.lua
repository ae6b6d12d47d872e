-- Change tracking through the public API: retrieve_entity_changes page by page, the
-- streaming changes iterator and its token, expired tokens, failures mid-stream.
local dataverse = require "dataverse"

local function drain(it)
  local out = {}
  for c in it do out[#out + 1] = c end
  return out
end

describe("change tracking", function()
  local emu, org

  before_each(function()
    emu = dataverse.emulator.start { db = ":memory:", faults = "" }
    org = dataverse.connect { emulator = emu, retries = 0 }
    for i = 1, 5 do org:create("account", { name = "Row" .. i, accountnumber = "N" .. i }) end
  end)
  after_each(function()
    org:close()
    emu:stop()
  end)

  it("streams a full load page by page and hands out the token only after the last row", function()
    local it = org:changes { entity = "account", columns = { "name" }, page_size = 2 }
    local names = {}
    for c in it do
      assert.is_nil(it.token)
      assert.equals("new_or_updated", c.type)
      assert.is_nil(c.row["@odata.context"])
      names[#names + 1] = c.row.name
    end
    table.sort(names)
    assert.same({ "Row1", "Row2", "Row3", "Row4", "Row5" }, names)
    assert.matches("^%d+!", it.token) -- the deltaLink's $deltatoken, percent-decoded
    assert.equals(3, it.pages)
  end)

  it("asks for the next page as soon as a page arrives, and for no page twice", function()
    local it = org:changes { entity = "account", columns = { "name" }, page_size = 2 }
    local before = org:stats().requests
    local first = it()
    assert.equals("new_or_updated", first.type)
    -- Page 1 was answered and page 2 was sent before the first change was handed out.
    assert.equals(before + 2, org:stats().requests)
    local n = 1
    for _ in it do n = n + 1 end
    assert.equals(5, n)
    assert.equals(3, it.pages)
    assert.equals(before + 3, org:stats().requests) -- three pages, three requests
    assert.equals(0, org:stats().in_flight)
    assert.equals(0, org:stats().queued)
  end)

  it("drops the request for the next page when a loop is left early", function()
    local it = org:changes { entity = "account", columns = { "name" }, page_size = 2 }
    local before = org:stats().requests
    for _ in it do break end
    assert.equals(before + 2, org:stats().requests) -- page 2 was asked for
    local s = org:stats()
    assert.equals(1, s.in_flight + s.held)
    it = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    s = org:stats()
    assert.equals(0, s.in_flight + s.queued + s.held)
    -- The connection goes on as before.
    assert.equals(5, #drain(org:changes { entity = "account", columns = { "name" }, page_size = 2 }))
    assert.equals(0, org:stats().held)
  end)

  it("streams the changes since a token: updates first, then deletions", function()
    local it = org:changes { entity = "account", columns = { "name" } }
    drain(it)
    local ids = {}
    for row in org:query("account", { columns = { "name" }, orderby = "name" }) do ids[#ids + 1] = row.accountid end
    org:update("account", ids[1], { name = "Row1 changed" })
    org:delete("account", ids[2])
    org:create("account", { name = "Row6" })
    local it2 = org:changes { entity = "account", columns = { "name" }, since = it.token }
    local got = drain(it2)
    assert.equals(3, #got)
    assert.equals("new_or_updated", got[1].type)
    assert.equals("new_or_updated", got[2].type)
    local changed = {}
    for i = 1, 2 do changed[got[i].row.name] = true end
    assert.same({ ["Row1 changed"] = true, Row6 = true }, changed)
    assert.same({ type = "removed_or_deleted", id = ids[2], table = "account" }, got[3])
    assert.is_string(it2.token)
    assert.are_not.equal(it.token, it2.token)
    -- nothing happened since: an empty delta, and a token again
    local it3 = org:changes { entity = "account", columns = { "name" }, since = it2.token }
    assert.same({}, drain(it3))
    assert.is_string(it3.token)
  end)

  it("returns one page per call with a paging cookie, and the data token only on the last page", function()
    local pages, cookie, token = 0, nil, nil
    local total = 0
    repeat
      local r = org:retrieve_entity_changes { entity = "account", columns = { "name" }, page_size = 2, paging_cookie = cookie }
      pages = pages + 1
      total = total + #r.changes
      if r.more_records then
        assert.is_string(r.paging_cookie)
        assert.is_nil(r.data_token)
      else
        assert.is_nil(r.paging_cookie)
        token = r.data_token
      end
      cookie = r.paging_cookie
    until not r.more_records
    assert.equals(3, pages)
    assert.equals(5, total)
    assert.is_string(token)
    org:create("account", { name = "Later" })
    local r = org:retrieve_entity_changes { entity = "account", columns = { "name" }, data_version = token }
    assert.equals(1, #r.changes)
    assert.equals("Later", r.changes[1].row.name)
    assert.is_false(r.more_records)
  end)

  it("raises on a failed page and produces no token", function()
    local it = org:changes { entity = "account", columns = { "name" }, page_size = 2 }
    -- Pages 1 and 2 are answered, page 3 fails: page 2 is asked for as soon as page 1
    -- arrives, so the failure must not depend on when the loop gets to it.
    emu:faults("delay=1*2,503*5")
    local n = 0
    local ok, err = pcall(function()
      for _ in it do n = n + 1 end
    end)
    assert.is_false(ok)
    assert.equals(503, err.status)
    assert.equals(4, n)
    assert.is_nil(it.token)
  end)

  it("reports Retry-After on a throttled request that ran out of retries", function()
    emu:faults("429=7*5")
    local ok, err = pcall(org.whoami, org)
    assert.is_false(ok)
    assert.equals(429, err.status)
    assert.equals(7, err.retry_after)
  end)

  it("recognises an expired token so that a script can fall back to a full sync", function()
    local it = org:changes { entity = "account", columns = { "name" } }
    drain(it)
    emu:retention(60)
    emu:advance(3600)
    local ok, err = pcall(function() drain(org:changes { entity = "account", since = it.token }) end)
    assert.is_false(ok)
    assert.equals("0x80044352", err.code)
    assert.is_true(dataverse.is_expired_token(err))
    assert.is_false(dataverse.is_expired_token({ code = "0x80040217" }))
    assert.is_false(dataverse.is_expired_token("0x80044352"))
  end)

  it("checks its arguments", function()
    assert.has_error(function() org:changes() end, "bad argument #1 to 'changes' (table expected, got nil)")
    assert.has_error(function() org:changes { entity = 5 } end)
    assert.has_error(function() org:retrieve_entity_changes { entity = "account", page_size = "x" } end)
  end)
end)
