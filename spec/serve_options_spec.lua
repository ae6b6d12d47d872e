-- `dvlua --serve` options that used to be silently misread or exposed: --listen's port, the
-- token (never on the command line), token files whose content never shows in an error.
local curl = require "curl"
local dv = require "dv"

-- Starts `dvlua --serve args` in the background with env; returns url, pid, log file.
local function serve(args, env)
  return dv.serve(args, { env = env })
end

local function stop(pid, out)
  os.execute("kill " .. pid .. " 2>/dev/null; for i in $(seq 100); do kill -0 " .. pid ..
    " 2>/dev/null || break; sleep 0.05; done")
  os.remove(out)
end

local function whoami(url, token)
  return curl.request { url = url .. "/api/data/v9.2/WhoAmI", headers = { Authorization = "Bearer " .. token } }.status
end

describe("dvlua --serve", function()
  it("refuses a --listen port that is not a number instead of picking a random one", function()
    for _, listen in ipairs { "127.0.0.1:notaport", "127.0.0.1:", "127.0.0.1:80x", "127.0.0.1:70000", "127.0.0.1:-1" } do
      local r = dv.run({ "--serve", "--listen", listen })
      assert.equals(2, r.status, listen)
      assert.matches("port must be a number", r.stderr, 1, true)
      assert.equals("", r.stdout, listen)
    end
  end)

  it("reads the token from --token-file", function()
    local tf = dv.write_file(os.tmpname(), "file-token-1\n")
    local url, pid, out = serve("--token-file " .. dv.quote(tf))
    finally(function() stop(pid, out) end)
    assert.truthy(url, dv.read_file(out))
    assert.equals(200, whoami(url, "file-token-1"))
    assert.equals(401, whoami(url, "other"))
    assert.not_matches("file%-token%-1", dv.read_file(out))
    os.remove(tf)
  end)

  it("reads the token from DVLUA_EMULATOR_TOKEN", function()
    local url, pid, out = serve("", { DVLUA_EMULATOR_TOKEN = "env-token-2" })
    finally(function() stop(pid, out) end)
    assert.truthy(url, dv.read_file(out))
    assert.equals(200, whoami(url, "env-token-2"))
    assert.equals(401, whoami(url, "other"))
  end)

  it("warns that --token shows in ps", function()
    local url, pid, out = serve("--token cli-token-3")
    finally(function() stop(pid, out) end)
    assert.truthy(url)
    assert.equals(200, whoami(url, "cli-token-3"))
    assert.matches("warning: --token shows the token", dv.read_file(out), 1, true)
  end)

  it("refuses a malformed token file without echoing its content", function()
    local cases = {
      { "SECRET-PASSWORD-1 with spaces\n", "space or a control character" },
      { "\n", "first line is empty" },
      { "", "first line is empty" },
      { "SECRET-PASSWORD-2\tx\n", "control character" },
      { string.rep("S", 5000) .. "\n", "longer than" },
    }
    for _, c in ipairs(cases) do
      local tf = dv.write_file(os.tmpname(), c[1])
      local r = dv.run({ "--serve", "--listen", "127.0.0.1:0", "--token-file", tf })
      os.remove(tf)
      assert.equals(2, r.status)
      assert.matches(c[2], r.stderr, 1, true)
      assert.not_matches("SECRET", r.stderr)
      assert.not_matches("SSSSSSSS", r.stderr)
    end
    local r = dv.run({ "--serve", "--listen", "127.0.0.1:0", "--token-file", "/nonexistent/tok" })
    assert.equals(2, r.status)
    assert.matches("No such file", r.stderr)
  end)
end)

describe("a malformed delta token file", function()
  it("is reported without its content", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local tf = dv.write_file(dir .. "/token", "SECRET-PASSWORD-123 garbage\n")
    local r = dv.run({ "scripts/changes_jsonl.lua", "--table", "contact", "--since", tf },
      { env = { XDG_DATA_HOME = dir, DATAVERSE_URL = "" } })
    os.execute("rm -rf " .. dv.quote(dir))
    assert.are_not.equal(0, r.status)
    assert.matches("delta token is not valid", r.stderr, 1, true)
    assert.not_matches("SECRET", r.stdout .. r.stderr)
  end)
end)
