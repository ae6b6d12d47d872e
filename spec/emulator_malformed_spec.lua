-- Every refusal is Dataverse's status, code and message: a corpus of malformed requests
-- against the emulator, none of which may get a 500 or an error status without an error body.
local E = require "emulator"

describe("emulator under malformed requests", function()
  local api
  setup(function() api = E.start() end)
  teardown(function() api.stop() end)

  local function check(r, what)
    assert.are_not.equal(500, r.status, what .. ": " .. tostring(r.body))
    assert.are_not.equal(0, r.status, what .. ": no answer")
    if r.status >= 400 and r.status ~= 401 then
      assert.is_table(r.json, what .. ": error without a JSON body (" .. r.status .. ")")
      assert.is_table(r.json.error, what)
      assert.is_string(r.json.error.code, what)
      assert.is_string(r.json.error.message, what)
      assert.is_true(#r.json.error.message > 0, what)
    end
  end

  it("answers a JSON object or array given as a system column with 400 0x80048d19", function()
    for _, col in ipairs { "createdon", "modifiedon", "versionnumber" } do
      local r = api.post("contacts", '{"' .. col .. '":{}}')
      check(r, col)
      assert.equals(400, r.status, col)
      assert.equals("0x80048d19", r.json.error.code)
      assert.matches("Error identified in Payload provided by the user for Entity :'contacts'",
        r.json.error.message, 1, true)
      assert.matches(col, r.json.error.message, 1, true)
    end
  end)

  it("never answers 500 or an empty refusal for wrong-typed values of any column", function()
    local values = { "{}", '{"a":1}', "[]", "[1,2]", '"x"', "1", "-1.5e308", "true", "null",
      '"2024-13-45"', '"00000000-0000-0000-0000-00000000000g"', string.format("%q", string.rep("x", 5000)) }
    local columns = { "createdon", "modifiedon", "versionnumber", "contactid", "firstname", "birthdate",
      "numberofchildren", "annualincome", "donotemail", "statecode", "parentcustomerid",
      "_parentcustomerid_value", "parentcustomerid_account@odata.bind", "ownerid", "fullname", "nosuchcolumn" }
    for _, c in ipairs(columns) do
      for _, v in ipairs(values) do
        local body = '{"' .. c .. '":' .. v .. '}'
        check(api.post("contacts", body), "POST contacts " .. body)
      end
    end
    local id = api.create("contacts", { lastname = "Target" })
    for _, c in ipairs(columns) do
      for _, v in ipairs { "{}", "[]", '"x"' } do
        local body = '{"' .. c .. '":' .. v .. '}'
        check(api.patch("contacts(" .. id .. ")", body), "PATCH " .. body)
      end
    end
  end)

  it("never answers 500 for broken bodies, paths and query options", function()
    for _, body in ipairs { "", "{", "[]", "null", "1", '{"a":}', '{"lastname":"x"', "\0\1\2", '{"":1}',
      string.rep("[", 10000), '{"lastname":"\\ud800"}' } do
      check(api.post("contacts", body), "POST contacts " .. ("%q"):format(body:sub(1, 40)))
    end
    for _, path in ipairs { "contacts(", "contacts()", "contacts(1)", "contacts(x=)", "contacts('a')",
      "contacts(00000000-0000-0000-0000-000000000000)/nosuch", "contacts/$count/x", "nosuch",
      "contacts?$filter=", "contacts?$filter=(((", "contacts?$orderby=,", "contacts?$select=,,",
      "contacts?$expand=(", "contacts?$top=-1", "contacts?$top=x", "contacts?$skiptoken=%00",
      "contacts?$deltatoken=", "contacts?$apply=x", "EntityDefinitions(", "EntityDefinitions(LogicalName=)",
      "EntityDefinitions?$filter=x", "$batch", "contacts?$filter=" .. api.enc(string.rep("(", 5000)) } do
      check(api.get(path), "GET " .. path)
      check(api.delete(path), "DELETE " .. path)
      check(api.patch(path, "{}"), "PATCH " .. path)
      check(api.post(path, "{}"), "POST " .. path)
    end
  end)
end)
