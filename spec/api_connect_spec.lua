-- dataverse.connect: options, the environment, the built-in emulator, the connection object.
local dataverse = require "dataverse"
local dv = require "dv"

describe("connect", function()
  it("connects to a running emulator given as an object, and to its URL", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local a = dataverse.connect { emulator = emu }
    local b = dataverse.connect { url = emu.url, token = "any" }
    assert.equals(a:whoami().UserId, b:whoami().UserId)
    a:close()
    b:close()
    emu:stop()
  end)

  it("starts an emulator from options and stops it when the connection closes", function()
    local org = dataverse.connect { emulator = { db = ":memory:" } }
    local url = org:url()
    assert.matches("^http://127%.0%.0%.1:%d+$", url)
    org:create("account", { name = "x" })
    org:close()
    local other = dataverse.connect { url = url, token = "t", retries = 0, timeout = 5 }
    local ok, err = pcall(other.whoami, other)
    assert.is_false(ok)
    assert.equals(0, err.status)
    assert.equals("transport", err.code)
    other:close()
  end)

  it("describes itself without secrets, and says when it is closed", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local org = dataverse.connect { url = emu.url, token = "very-secret-token" }
    local s = tostring(org)
    assert.equals("dataverse.connection (" .. emu.url .. ")", s)
    assert.is_nil(s:find("very-secret-token", 1, true))
    assert.is_nil(org:auth():find("very-secret-token", 1, true))
    org:close()
    assert.equals("dataverse.connection (closed)", tostring(org))
    assert.has_error(function() org:whoami() end)
    emu:stop()
  end)

  it("closes at the end of a to-be-closed scope", function()
    local emu = dataverse.emulator.start { db = ":memory:" }
    local keep
    do
      local org <close> = dataverse.connect { emulator = emu }
      keep = org
      assert.is_table(org:whoami())
    end
    assert.equals("dataverse.connection (closed)", tostring(keep))
    emu:stop()
  end)

  it("signs in with client credentials against the emulator's token endpoint", function()
    local emu = dataverse.emulator.start { db = ":memory:", token = "issued-token" }
    local org = dataverse.connect { url = emu.url, tenant_id = "contoso", client_id = "app",
      client_secret = "s3cret-value", authority_host = emu.url }
    assert.is_true(dataverse.odata.is_guid(org:whoami().UserId))
    assert.matches("client credentials", org:auth())
    assert.is_nil(org:auth():find("s3cret-value", 1, true))
    assert.is_nil(tostring(org):find("s3cret-value", 1, true))
    org:close()
    emu:stop()
  end)

  it("rejects bad options with a message naming them", function()
    assert.has_error(function() dataverse.connect { url = 1 } end,
      "bad argument #1 to 'connect' (option 'url': string expected, got number)")
    assert.has_error(function() dataverse.connect("x") end,
      "bad argument #1 to 'connect' (table or nil expected, got string)")
    assert.has_error(function() dataverse.connect { url = "http://x", emulator = {} } end,
      "bad argument #1 to 'connect' (give either option 'url' or option 'emulator', not both)")
    local ok, err = pcall(dataverse.connect, { url = "ftp://example.com", token = "t" })
    assert.is_false(ok)
    assert.equals("config", err.code)
  end)

  it("takes the URL and token from DATAVERSE_URL and DATAVERSE_TOKEN", function()
    local emu = dataverse.emulator.start { db = ":memory:", token = "env-token" }
    local r = dv.run({ "-e", [[local o = require"dataverse".connect(); print(o:url(), o:whoami().UserId ~= nil)]] },
      { env = { DATAVERSE_URL = emu.url, DATAVERSE_TOKEN = "env-token" } })
    assert.equals(0, r.status)
    assert.equals(emu.url .. "\ttrue\n", r.stdout)
    r = dv.run({ "-e", [[local o = require"dataverse".connect{retries=0}; print(pcall(o.whoami, o))]] },
      { env = { DATAVERSE_URL = emu.url, DATAVERSE_TOKEN = "wrong" } })
    assert.matches("HTTP 401", r.stdout)
    assert.is_nil(r.stdout:find("wrong", 1, true))
    emu:stop()
  end)

  it("starts the built-in emulator with data under XDG_DATA_HOME when no URL is set, and says so once", function()
    local dir = os.tmpname()
    os.remove(dir)
    local script = [[
      local dataverse = require "dataverse"
      local a = dataverse.connect()
      a:create("account", { name = "kept" })
      a:close()
      local b = dataverse.connect()
      print(b:count("account"))
      b:close()
    ]]
    local env = { XDG_DATA_HOME = dir, DATAVERSE_URL = "", DATAVERSE_TOKEN = "", HOME = dir }
    local r = dv.run({ "-e", script }, { env = env })
    assert.equals(0, r.status, r.stderr)
    assert.equals("1\n", r.stdout)
    local _, lines = r.stderr:gsub("built%-in emulator", "")
    assert.equals(1, lines)
    assert.matches(dir .. "/dvlua/emulator.sqlite", r.stderr, 1, true)
    assert.is_truthy(io.open(dir .. "/dvlua/emulator.sqlite"))
    -- the data survives the process
    r = dv.run({ "-e", [[print(require"dataverse".connect():count("account"))]] }, { env = env })
    assert.equals("1\n", r.stdout)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
