-- Solutions, alternate keys, rows addressed by alternate key, and a round trip of every
-- column type, through the public API against an in-process emulator.
local dataverse = require "dataverse"
local E = require "emulator"

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

describe("solutions and keys", function()
  local emu, org, zip

  setup(function()
    emu = dataverse.emulator.start { db = ":memory:", key_delay = 0.3 }
    org = dataverse.connect { emulator = emu }
    zip = write(os.tmpname(), E.zip(E.solution_files(E.books)))
  end)
  teardown(function()
    org:close()
    emu:stop()
    os.remove(zip)
  end)

  it("imports a solution zip, finds it by unique name, and uninstalls it", function()
    assert.is_nil(org:solution("ChangeTrackingSample"))
    org:import_solution(zip)
    local s = org:solution("ChangeTrackingSample")
    assert.equals("ChangeTrackingSample", s.uniquename)
    assert.is_true(dataverse.odata.is_guid(s.solutionid))
    org:create("sample_book", { sample_name = "A book", sample_bookcode = "B1" })
    assert.equals(1, org:count("sample_book"))
    assert.is_true(org:uninstall_solution("ChangeTrackingSample"))
    assert.is_nil(org:solution("ChangeTrackingSample"))
    assert.is_false(org:uninstall_solution("ChangeTrackingSample"))
    local ok, err = pcall(org.count, org, "sample_book")
    assert.is_false(ok)
    assert.equals(404, err.status)
  end)

  it("imports a solution source folder, packed in memory", function()
    org:import_solution("scripts/solutions/ChangeTrackingSample", { overwrite = true })
    assert.is_table(org:solution("ChangeTrackingSample"))
    assert.is_true(org:uninstall_solution("ChangeTrackingSample"))
  end)

  it("raises with the server's message when an import fails, and for a missing file", function()
    local bad = write(os.tmpname(), E.zip { { name = "solution.xml", data = "<nope/>" } })
    local ok, err = pcall(org.import_solution, org, bad)
    os.remove(bad)
    assert.is_false(ok)
    assert.is_true(err.status >= 400)
    assert.is_true(#err.message > 0)
    ok, err = pcall(org.import_solution, org, "/nonexistent/solution.zip")
    assert.is_false(ok)
    assert.equals("solution", err.code)
    assert.matches("/nonexistent/solution.zip", err.message, 1, true)
    assert.has_error(function() org:import_solution(nil) end,
      "bad argument #1 to 'import_solution' (non-empty string expected, got nil)")
  end)

  describe("with the books table", function()
    before_each(function()
      org:import_solution(zip)
    end)
    after_each(function()
      org:uninstall_solution("ChangeTrackingSample")
    end)

    it("lists keys with their index status and waits until one is Active", function()
      local keys = org:entity_keys("sample_book")
      local by = {}
      for _, k in ipairs(keys) do by[k.name] = k end
      assert.same({ "sample_bookcode" }, by.sample_bookcode.attributes)
      assert.same({ "sample_author", "sample_edition" }, by.sample_titleedition.attributes)
      assert.is_truthy(({ Pending = 1, InProgress = 1, Active = 1 })[by.sample_bookcode.status])
      local seen = {}
      local key = org:wait_for_key("sample_book", "sample_bookcode", {
        timeout = 30, interval = 0.05, on_progress = function(status) seen[#seen + 1] = status end })
      assert.equals("Active", key.status)
      assert.equals("Active", seen[#seen])
      for i = 1, #seen - 1 do assert.is_truthy(({ Pending = 1, InProgress = 1 })[seen[i]]) end
    end)

    it("reactivates a failed index once", function()
      org:wait_for_key("sample_book", "sample_bookcode", { timeout = 30, interval = 0.05 })
      emu:fail_key("sample_book", "sample_bookcode")
      assert.equals("Failed", (function()
        for _, k in ipairs(org:entity_keys("sample_book")) do
          if k.name == "sample_bookcode" then return k.status end
        end
      end)())
      local seen = {}
      local key = org:wait_for_key("sample_book", "sample_bookcode", {
        timeout = 30, interval = 0.05, on_progress = function(s) seen[#seen + 1] = s end })
      assert.equals("Active", key.status)
      assert.equals("Failed", seen[1])
    end)

    it("raises when the index fails again after reactivation", function()
      emu:fail_key("sample_book", "sample_bookcode")
      local failed_once = false
      local ok, err = pcall(org.wait_for_key, org, "sample_book", "sample_bookcode", {
        timeout = 30, interval = 0.05,
        on_progress = function(s)
          if s == "Failed" then failed_once = true
          elseif failed_once then emu:fail_key("sample_book", "sample_bookcode") end
        end })
      assert.is_false(ok)
      assert.equals("key_failed", err.code)
    end)

    it("raises on timeout, and for a key that does not exist", function()
      emu:fail_key("sample_book", "sample_bookcode") -- reactivated, but not Active at once
      local ok, err = pcall(org.wait_for_key, org, "sample_book", "sample_bookcode", { timeout = 0, interval = 0.01 })
      assert.is_false(ok)
      assert.equals("timeout", err.code)
      ok, err = pcall(org.entity_keys, org, "no_such_table")
      assert.is_false(ok)
      assert.equals(404, err.status)
      ok, err = pcall(org.wait_for_key, org, "sample_book", "no_such_key", { timeout = 1 })
      assert.is_false(ok)
      assert.matches("no_such_key", err.message)
    end)

    it("addresses rows by alternate key, quoting values safely", function()
      org:wait_for_key("sample_book", "sample_bookcode", { timeout = 30, interval = 0.05 })
      local code = "O'Brien & Co/1?#%"
      local id = org:create("sample_book", { sample_name = "Quoted", sample_bookcode = code })
      local row = org:retrieve("sample_book", { sample_bookcode = code }, { columns = { "sample_name" } })
      assert.equals("Quoted", row.sample_name)
      assert.equals(id, row.sample_bookid)
      org:update("sample_book", { sample_bookcode = code }, { sample_author = "Someone" })
      assert.equals("Someone", org:retrieve("sample_book", id).sample_author)
      local uid, created = org:upsert("sample_book", { sample_bookcode = code }, { sample_name = "Again" })
      assert.equals(id, uid)
      assert.is_false(created)
      uid, created = org:upsert("sample_book", { sample_bookcode = "New'One" }, { sample_name = "Fresh" })
      assert.is_true(created)
      assert.equals("New'One", org:retrieve("sample_book", uid).sample_bookcode)
      org:delete("sample_book", { sample_bookcode = code })
      assert.is_nil(org:retrieve("sample_book", { sample_bookcode = code }))
      assert.is_nil(org:retrieve("sample_book", id))
    end)

    it("addresses rows by a key of several columns, numbers unquoted", function()
      org:wait_for_key("sample_book", "sample_titleedition", { timeout = 30, interval = 0.05 })
      local id = org:create("sample_book", { sample_name = "Multi", sample_author = "Ann", sample_edition = 2 })
      local row = org:retrieve("sample_book", { sample_edition = 2, sample_author = "Ann" })
      assert.equals(id, row.sample_bookid)
      assert.is_nil(org:retrieve("sample_book", { sample_edition = 3, sample_author = "Ann" }))
    end)

    it("refuses a duplicate alternate key value with the server's code", function()
      org:wait_for_key("sample_book", "sample_bookcode", { timeout = 30, interval = 0.05 })
      org:create("sample_book", { sample_name = "One", sample_bookcode = "DUP" })
      local ok, err = pcall(org.create, org, "sample_book", { sample_name = "Two", sample_bookcode = "DUP" })
      assert.is_false(ok)
      assert.equals("0x80060892", err.code)
    end)
  end)

  it("round-trips every column type", function()
    local typed = {
      unique = "TypedSample",
      tables = { {
        name = "sample_typed", set = "sample_typeds",
        columns = {
          { name = "sample_name" }, { name = "sample_memo", type = "ntext" },
          { name = "sample_int", type = "int" }, { name = "sample_big", type = "bigint" },
          { name = "sample_dec", type = "decimal" }, { name = "sample_float", type = "float" },
          { name = "sample_money", type = "money" }, { name = "sample_bit", type = "bit" },
          { name = "sample_when", type = "datetime" }, { name = "sample_choice", type = "picklist" },
        },
      } },
    }
    local path = write(os.tmpname(), E.zip(E.solution_files(typed)))
    org:import_solution(path)
    os.remove(path)
    local values = {
      sample_name = "Ünïcödé \"quoted\" 'single' \\ / \n tab\t",
      sample_memo = string.rep("long text ", 200),
      sample_int = -2147483648,
      sample_big = 9007199254740993, -- 2^53 + 1: survives only as a Lua integer
      sample_dec = 12.345,
      sample_float = 0.125,
      sample_money = 19.99,
      sample_bit = true,
      sample_when = "2024-05-06T07:08:09Z",
      sample_choice = 100000001,
    }
    local id = org:create("sample_typed", values)
    local row = org:retrieve("sample_typed", id)
    for k, v in pairs(values) do
      assert.equals(v, row[k], k)
      assert.equals(math.type(v), math.type(row[k]), k)
    end
    assert.is_true(dataverse.odata.is_guid(row.sample_typedid))
    -- null clears a value; false is kept as false
    org:update("sample_typed", id, { sample_int = dataverse.json.null, sample_bit = false })
    row = org:retrieve("sample_typed", id, { columns = { "sample_int", "sample_bit" } })
    assert.is_false(row.sample_bit)
    assert.equals(dataverse.json.null, row.sample_int)
    -- the same values come through change tracking
    local it = org:changes { entity = "sample_typed", columns = { "sample_name", "sample_money", "sample_when" } }
    local seen = 0
    for c in it do
      seen = seen + 1
      assert.equals(values.sample_name, c.row.sample_name)
      assert.equals(values.sample_money, c.row.sample_money)
      assert.equals(values.sample_when, c.row.sample_when)
    end
    assert.equals(1, seen)
    org:uninstall_solution("TypedSample")
  end)
end)
