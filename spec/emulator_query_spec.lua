-- Collection queries: $select, $filter, $orderby, $top, $count, paging.
local E = require "emulator"

describe("emulator queries", function()
  local api

  local function names(r)
    local out = {}
    for _, row in ipairs(r.json.value) do out[#out + 1] = row.name end
    return out
  end

  local function q(filter, extra)
    return api.get("accounts?$select=name&$orderby=name&$filter=" .. api.enc(filter) .. (extra or ""))
  end

  setup(function()
    api = E.start {}
    local rows = {
      { name = "Alpha", numberofemployees = 5, revenue = 10.5, address1_city = "Oslo", donotemail = true, description = "50% off" },
      { name = "Bravo", numberofemployees = 50, revenue = 200, address1_city = "Paris", donotemail = false },
      { name = "Charlie", numberofemployees = 500, address1_city = "Oslo", donotemail = false },
      { name = "O'Neil", numberofemployees = 7 },
      { name = "delta", numberofemployees = 70, address1_city = "Rome" },
    }
    for _, row in ipairs(rows) do api.create("accounts", row) end
  end)
  teardown(function() api.stop() end)

  it("selects columns and names them in @odata.context", function()
    local r = api.get("accounts?$select=name,numberofemployees")
    assert.equals(200, r.status)
    assert.equals(api.base .. "$metadata#accounts(name,numberofemployees)", r.json["@odata.context"])
    local row = r.json.value[1]
    assert.truthy(row.name)
    assert.truthy(row.accountid)
    assert.truthy(row["@odata.etag"])
    assert.is_nil(row.telephone1)
    assert.is_nil(row.revenue)
  end)

  it("refuses an unknown column in $select", function()
    local r = api.get("accounts?$select=name,bogus")
    assert.equals(400, r.status)
    assert.equals("0x80060888", r.json.error.code)
    assert.equals("Could not find a property named 'bogus' on type 'Microsoft.Dynamics.CRM.account'.", r.json.error.message)
  end)

  it("compares with eq ne gt ge lt le", function()
    assert.same({ "Bravo" }, names(q("numberofemployees eq 50")))
    assert.same({ "Alpha", "Charlie", "delta", "O'Neil" }, names(q("numberofemployees ne 50")))
    assert.same({ "Charlie", "delta" }, names(q("numberofemployees gt 50")))
    assert.same({ "Bravo", "Charlie", "delta" }, names(q("numberofemployees ge 50")))
    assert.same({ "Alpha", "O'Neil" }, names(q("numberofemployees lt 50")))
    assert.same({ "Alpha", "Bravo", "O'Neil" }, names(q("numberofemployees le 50")))
    assert.same({ "Alpha" }, names(q("revenue lt 100.25")))
  end)

  it("combines with and, or, not and parentheses", function()
    assert.same({ "Charlie" }, names(q("address1_city eq 'Oslo' and numberofemployees gt 10")))
    assert.same({ "Alpha", "Bravo", "Charlie" }, names(q("address1_city eq 'Paris' or address1_city eq 'Oslo'")))
    assert.same({ "Bravo", "Charlie" }, names(q("(address1_city eq 'Paris' or address1_city eq 'Oslo') and not (numberofemployees lt 10)")))
    assert.same({ "Bravo", "Charlie", "delta", "O'Neil" }, names(q("not startswith(name,'A')")))
  end)

  it("matches strings case-insensitively, with contains/startswith/endswith", function()
    assert.same({ "delta" }, names(q("name eq 'DELTA'")))
    assert.same({ "Charlie" }, names(q("contains(name,'arl')")))
    assert.same({ "Bravo" }, names(q("startswith(name,'bra')")))
    assert.same({ "Charlie" }, names(q("endswith(name,'lie')")))
    assert.same({ "Alpha" }, names(q("contains(description,'50%')")))
  end)

  it("reads doubled quotes in string literals", function()
    assert.same({ "O'Neil" }, names(q("name eq 'O''Neil'")))
  end)

  it("compares with null, booleans, GUIDs and dates", function()
    assert.same({ "delta", "O'Neil" }, names(q("donotemail eq null")))
    assert.same({ "Alpha", "Bravo", "Charlie" }, names(q("donotemail ne null")))
    assert.same({ "Alpha" }, names(q("donotemail eq true")))
    local id = api.get("accounts?$select=name&$filter=" .. api.enc("name eq 'Bravo'")).json.value[1].accountid
    assert.same({ "Bravo" }, names(q("accountid eq " .. id)))
    assert.same({ "Bravo" }, names(q("accountid eq " .. id:upper())))
    assert.equals(5, #names(q("createdon gt 2000-01-01T00:00:00Z")))
    assert.equals(0, #names(q("createdon lt 2000-01-01")))
  end)

  it("answers bad syntax with 400 in Dataverse's shape", function()
    for _, bad in ipairs { "name eq", "name eq 'x' and", "(name eq 'x'", "name xx 'x'", "name eq 'unterminated",
      "numberofemployees eq 'text'", "contains(numberofemployees,'1')", "nosuch eq 1", "name eq 1 2" } do
      local r = q(bad)
      assert.equals(400, r.status, bad)
      assert.equals("0x80060888", r.json.error.code, bad)
      assert.truthy(#r.json.error.message > 0)
    end
  end)

  it("orders by several columns, ascending and descending", function()
    local r = api.get("accounts?$select=name&$orderby=" .. api.enc("address1_city desc,name asc"))
    assert.same({ "delta", "Bravo", "Alpha", "Charlie", "O'Neil" }, names(r))
    assert.equals(400, api.get("accounts?$orderby=bogus").status)
  end)

  it("limits with $top and counts with $count", function()
    local r = api.get("accounts?$select=name&$orderby=name&$top=2&$count=true")
    assert.same({ "Alpha", "Bravo" }, names(r))
    assert.equals(5, r.json["@odata.count"])
    assert.is_nil(r.json["@odata.nextLink"])
    assert.equals(400, api.get("accounts?$top=-1").status)
    local c = api.get("accounts/$count")
    assert.equals(200, c.status)
    assert.equals("5", c.body)
  end)

  it("pages with odata.maxpagesize and a nextLink that keeps the query", function()
    local seen, pages = {}, 0
    local url = "accounts?$select=name&$filter=" .. api.enc("numberofemployees ge 5")
    local r = api.get(url, { headers = { Prefer = "odata.maxpagesize=2" } })
    assert.equals("odata.maxpagesize=2", r.headers["preference-applied"])
    while true do
      pages = pages + 1
      assert.equals(200, r.status)
      assert.is_true(#r.json.value <= 2)
      for _, row in ipairs(r.json.value) do
        assert.is_nil(seen[row.accountid])
        seen[row.accountid] = true
      end
      local nl = r.json["@odata.nextLink"]
      if not nl then break end
      assert.equals(1, select(2, nl:gsub("^" .. api.base:gsub("%p", "%%%0"), "")))
      assert.matches("%$filter=", nl)
      r = api.get(nl, { headers = { Prefer = "odata.maxpagesize=2" } })
    end
    assert.equals(3, pages)
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equals(5, n)
  end)

  it("pages an ordered query too", function()
    local r = api.get("accounts?$select=name&$orderby=" .. api.enc("name desc"), { headers = { Prefer = "odata.maxpagesize=3" } })
    local got = names(r)
    r = api.get(r.json["@odata.nextLink"], { headers = { Prefer = "odata.maxpagesize=3" } })
    for _, n in ipairs(names(r)) do got[#got + 1] = n end
    assert.same({ "O'Neil", "delta", "Charlie", "Bravo", "Alpha" }, got)
  end)

  it("expands single-valued lookups with a nested $select (Microsoft's tutorial query)", function()
    local cid = api.create("contacts", { firstname = "Yvonne", lastname = "McKay" })
    api.create("accounts", { name = "Redmond One", address1_city = "Redmond", revenue = 100000,
      ["primarycontactid@odata.bind"] = "/contacts(" .. cid .. ")" })
    api.create("accounts", { name = "Redmond Two", address1_city = "Redmond" })
    local r = api.get("accounts?$top=3&$select=name,revenue,address1_city&$expand=" ..
      api.enc("primarycontactid($select=fullname)") .. "&$filter=" .. api.enc("address1_city eq 'Redmond'") .. "&$orderby=name",
      { headers = { ["If-None-Match"] = "null", Prefer = 'odata.include-annotations="*"' } })
    assert.equals(200, r.status, r.body)
    assert.equals(api.base .. "$metadata#accounts(name,revenue,address1_city,primarycontactid(fullname))", r.json["@odata.context"])
    assert.equals(2, #r.json.value)
    local one = r.json.value[1]
    assert.equals("Yvonne McKay", one.primarycontactid.fullname)
    assert.equals(cid, one.primarycontactid.contactid)
    assert.equals(require("cjson").null, r.json.value[2].primarycontactid)
    local single = api.get("contacts(" .. cid .. ")?$select=fullname&$expand=ownerid($select=fullname)")
    assert.equals("Emulator User", single.json.ownerid.fullname)
    assert.equals(400, api.get("accounts?$expand=bogus").status)
    assert.equals(400, api.get("accounts?$expand=" .. api.enc("primarycontactid($select=bogus)")).status)
  end)

  it("refuses a skiptoken it did not issue", function()
    assert.equals(400, api.get("accounts?$skiptoken=garbage").status)
  end)
end)
