-- `make install` into a staging directory, then the installed tree used as a user would:
-- the commands from PATH, the man page through man(1), the module from lua5.4.
local dataverse = require "dataverse"
local dv = require "dv"

local q, sh, tmpdir = dv.quote, dv.sh, dv.tmpdir

local function first_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local l = f:read("l")
  f:close()
  return l
end

local function mode(path)
  local p = io.popen("stat -L -c %a " .. q(path) .. " 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end

local function cmod_dir()
  local p = io.popen("pkg-config --variable=INSTALL_CMOD lua5.4")
  local d = p:read("l")
  p:close()
  return d
end

describe("make install", function()
  local root, usr

  setup(function()
    root = tmpdir()
    usr = root .. "/usr"
    local status, out = sh("make install DESTDIR=" .. q(root) .. " PREFIX=/usr")
    assert.equals(0, status, out)
  end)
  teardown(function()
    os.execute("rm -rf " .. q(root))
  end)

  it("installs the interpreter, the module, the man page, the docs and the solutions", function()
    assert.equals("755", mode(usr .. "/bin/dvlua"))
    assert.is_truthy(io.open(root .. cmod_dir() .. "/dataverse.so", "rb"))
    assert.is_truthy(io.open(root .. cmod_dir() .. "/dataverse_pg.so", "rb"))
    assert.is_truthy(io.open(usr .. "/share/man/man1/dvlua.1", "rb"))
    for _, doc in ipairs { "README.md", "API.md", "CONFIG.md", "TESTING.md" } do
      assert.is_truthy(io.open(usr .. "/share/doc/dvlua/" .. doc, "rb"), doc)
    end
    assert.is_truthy(io.open(usr .. "/share/dvlua/solutions/ChangeTrackingSample/solution.xml", "rb"))
  end)

  it("installs every script as an executable dvlua-* command with a dvlua shebang", function()
    local names = { "dvlua-sample", "dvlua-changes", "dvlua-sync", "dvlua-sync-sqlite", "dvlua-sync-postgres" }
    for _, name in ipairs(names) do
      local path = usr .. "/bin/" .. name
      assert.equals("#!/usr/bin/env dvlua", first_line(path), name)
      assert.equals("755", mode(path), name)
    end
    -- a command for every script, each one a dvlua script
    local p = io.popen("ls scripts/*.lua | wc -l")
    local scripts = tonumber(p:read("l"))
    p:close()
    p = io.popen("ls " .. q(usr .. "/bin") .. " | grep '^dvlua-'")
    local commands = 0
    for name in p:lines() do
      commands = commands + 1
      assert.equals("#!/usr/bin/env dvlua", first_line(usr .. "/bin/" .. name), name)
      assert.equals("755", mode(usr .. "/bin/" .. name), name)
    end
    p:close()
    assert.is_true(commands >= scripts)
    -- the installed script is the script: line for line after the #! line
    assert.equals(dv.read_file("scripts/changes_jsonl.lua"), dv.read_file(usr .. "/bin/dvlua-changes"))
  end)

  it("runs the installed sample from PATH, away from the source tree, with its solution found", function()
    local emu = dataverse.emulator.start { db = ":memory:", token = "install-spec", key_delay = 0 }
    local status, out = sh(("cd / && env PATH=%s DATAVERSE_URL=%s DATAVERSE_TOKEN=install-spec dvlua-sample --delete")
      :format(q(usr .. "/bin:" .. os.getenv("PATH")), q(emu.url)))
    emu:stop()
    assert.equals(0, status, out)
    assert.matches("\nSetup\n", out, 1, true)
    assert.matches("\nDemonstrate\n", out, 1, true)
    assert.matches("\nClean up\n", out, 1, true)
    assert.is_nil(out:find("cannot find the solution source", 1, true))
  end)

  it("shows a man page with every section", function()
    local status, out = sh("MANWIDTH=80 man -l " .. q(usr .. "/share/man/man1/dvlua.1"))
    assert.equals(0, status, out)
    for _, section in ipairs { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "FILES",
      "EXIT STATUS", "EXAMPLES" } do
      assert.matches("\n" .. section .. "\n", out, 1, true)
    end
    for _, word in ipairs { "DATAVERSE_URL", "DVLUA_QUIET", "XDG_DATA_HOME", "dvlua-sample", "--help" } do
      assert.matches(word, out, 1, true)
    end
    -- groff finds nothing to warn about
    status, out = sh("groff -man -Tutf8 -ww -z " .. q(usr .. "/share/man/man1/dvlua.1"))
    assert.equals(0, status)
    assert.equals("", out)
  end)

  it("puts the module where Debian's lua5.4 finds it", function()
    local dir = root .. cmod_dir()
    local status, out = sh("env LUA_CPATH=" .. q(dir .. "/?.so") .. " lua5.4 -e "
      .. q([[print(require "dataverse".version)]]))
    assert.equals(0, status, out)
    assert.matches("^%d+%.%d+%.%d+\n$", out)
    -- The PostgreSQL module beside it, for the installed interpreter and for lua5.4.
    status, out = sh("cd / && env LUA_CPATH=" .. q(dir .. "/?.so") .. " " .. q(usr .. "/bin/dvlua") .. " -e "
      .. q([[print(require "dataverse_pg".driver, package.searchpath("dataverse_pg", package.cpath))]]))
    assert.equals(0, status, out)
    assert.equals("libpq\t" .. dir .. "/dataverse_pg.so\n", out)
    status, out = sh("env LUA_CPATH=" .. q(dir .. "/?.so") .. " lua5.4 -e " .. q([[print(require "dataverse_pg".driver)]]))
    assert.equals(0, status, out)
    assert.equals("libpq\n", out)
    -- /usr/local (the default PREFIX) is in lua5.4's own package.cpath
    status, out = sh("lua5.4 -e " .. q([[print(package.cpath)]]))
    assert.matches("/usr/local/lib/lua/5.4/?.so", out, 1, true)
    local other = tmpdir()
    status, out = sh("make install DESTDIR=" .. q(other) .. " PREFIX=/usr/local")
    assert.equals(0, status, out)
    assert.is_truthy(io.open(other .. "/usr/local/lib/lua/5.4/dataverse.so", "rb"))
    assert.is_truthy(io.open(other .. "/usr/local/lib/lua/5.4/dataverse_pg.so", "rb"))
    status, out = sh("make uninstall DESTDIR=" .. q(other) .. " PREFIX=/usr/local")
    assert.equals(0, status, out)
    local p = io.popen("find " .. q(other) .. " -type f -o -type l")
    local left = p:read("a")
    p:close()
    assert.equals("", left)
    os.execute("rm -rf " .. q(other))
  end)
end)

describe("running a user's own specs (docs/TESTING.md)", function()
  local dir, bin

  setup(function()
    dir = tmpdir()
    os.execute("mkdir -p " .. q(dir .. "/spec"))
    -- the example spec, exactly as the docs show it
    local doc = dv.read_file("docs/TESTING.md")
    local example = doc:match("```lua\n(%-%- spec/accounts_spec%.lua\n.-)```")
    assert.is_string(example)
    dv.write_file(dir .. "/spec/accounts_spec.lua", example)
    local p = io.popen("realpath " .. q(dv.bin))
    bin = p:read("l")
    p:close()
  end)
  teardown(function() os.execute("rm -rf " .. q(dir)) end)

  local function passes(cmd)
    local status, out = sh("cd " .. q(dir) .. " && env DVLUA_QUIET=1 " .. cmd)
    assert.equals(0, status, out)
    assert.matches("3 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
  end

  it("runs the example with busted --lua=dvlua", function()
    passes("busted --lua=" .. q(bin) .. " spec/accounts_spec.lua")
  end)

  it("runs the example with dvlua -l dataverse.busted, busted options after --", function()
    passes(q(bin) .. " -l dataverse.busted spec/accounts_spec.lua")
    passes(q(bin) .. " -l dataverse.busted") -- ./spec by default
    local status, out = sh("cd " .. q(dir) .. " && " .. q(bin) .. " -l dataverse.busted -- -o TAP spec")
    assert.equals(0, status, out)
    assert.matches("ok 3 - ", out, 1, true)
  end)

  it("exits non-zero when a spec fails", function()
    dv.write_file(dir .. "/spec/failing_spec.lua",
      [[describe("f", function() it("fails", function() assert.equals(1, 2) end) end)]])
    local status, out = sh("cd " .. q(dir) .. " && " .. q(bin) .. " -l dataverse.busted spec")
    os.remove(dir .. "/spec/failing_spec.lua")
    assert.equals(1, status, out)
    assert.matches("3 successes / 1 failure", out, 1, true)
  end)
end)
