-- dataverse.so: the same bindings, emulator included, as a C module for any Lua 5.4.
-- Everything here runs under Debian's plain lua5.4 with LUA_CPATH pointing at the build.
local dv = require "dv"

local q = dv.quote
local CPATH = "./?.so;;"

-- Runs a shell command line; returns its status and what it printed (stdout and stderr).
local sh = dv.sh

local function lua54(code)
  return sh("env LUA_CPATH=" .. q(CPATH) .. " DVLUA_QUIET=1 lua5.4 -e " .. q(code))
end

describe("the dataverse module", function()
  it("is built next to dvlua and leaves liblua to its host", function()
    assert.is_truthy(io.open("dataverse.so", "rb"))
    local status, needed = sh("readelf -d dataverse.so")
    assert.equals(0, status)
    assert.matches("NEEDED", needed)
    -- Debian's lua5.4 links Lua statically: a module carrying its own liblua would run a
    -- second Lua on the host's states.
    assert.is_nil(needed:find("liblua5.4.so", 1, true))
    assert.matches("luaopen_dataverse", select(2, sh("nm -D --defined-only dataverse.so")))
  end)

  it("loads in plain lua5.4 and answers the same version as dvlua", function()
    local status, out = lua54([[
      local d = require "dataverse"
      print(package.searchpath("dataverse", package.cpath), d.version)
    ]])
    assert.equals(0, status, out)
    local version = dv.run({ "-e", "io.write(require'dataverse'.version)" }).stdout
    assert.equals("./dataverse.so\t" .. version .. "\n", out)
  end)

  it("loads any submodule first, from the same file", function()
    for _, name in ipairs { "dataverse.sync", "dataverse.pretty", "dataverse.json", "dataverse.emulator" } do
      local status, out = lua54(([[
        local sub = require "%s"
        local d = require "dataverse"
        print(sub ~= nil, package.loaded["%s"] == sub, type(d.connect), d.pretty { 1 })
      ]]):format(name, name))
      assert.equals(0, status, out)
      assert.equals("true\ttrue\tfunction\t{ 1 }\n", out, name)
    end
  end)

  it("starts the built-in emulator and connects, creates, queries and follows changes", function()
    local status, out = lua54([[
      local dataverse = require "dataverse"
      local emu = dataverse.emulator.start { db = ":memory:" }
      local org = dataverse.connect { emulator = emu }
      local id = org:create("account", { name = "From lua5.4" })
      local it = org:changes { entity = "account", columns = { "name" } }
      local seen = {}
      for c in it do seen[#seen + 1] = c.type .. " " .. c.row.name end
      local names = {}
      for row in org:query("account", { columns = { "name" }, filter = "name eq 'From lua5.4'" }) do
        names[#names + 1] = row.name
      end
      print(dataverse.odata.is_guid(id), table.concat(seen, ","), table.concat(names, ","),
        it.token ~= nil, dataverse.pretty { n = dataverse.json.null })
      org:close()
      emu:stop()
    ]])
    assert.equals(0, status, out)
    assert.equals("true\tnew_or_updated From lua5.4\tFrom lua5.4\ttrue\t{ n = null }\n", out)
  end)

  it("works in a C program that embeds Lua", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. q(dir))
    dv.write_file(dir .. "/host.c", [[
#include <lauxlib.h>
#include <lualib.h>
int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    int rc = luaL_dostring(L,
        "local d = require 'dataverse'\n"
        "local emu = d.emulator.start { db = ':memory:' }\n"
        "local org = d.connect { emulator = emu }\n"
        "org:create('account', { name = 'embedded' })\n"
        "print(d.pretty(org:query('account', { columns = { 'name' } })().name))\n"
        "org:close() emu:stop()");
    if (rc != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return rc;
}
]])
    local status, out = sh(("cc -o %s %s $(pkg-config --cflags --libs lua5.4)")
      :format(q(dir .. "/host"), q(dir .. "/host.c")))
    assert.equals(0, status, out)
    status, out = sh("env LUA_CPATH=" .. q(CPATH) .. " " .. q(dir .. "/host"))
    os.execute("rm -rf " .. q(dir))
    assert.equals(0, status, out)
    assert.equals('"embedded"\n', out)
  end)

  it("passes the API specs (connect, rows, changes, OData helpers) under plain lua5.4", function()
    local status, out = sh("env LUA_CPATH=" .. q(CPATH) .. " lua5.4 spec/run.lua"
      .. " spec/api_connect_spec.lua spec/api_rows_spec.lua spec/api_changes_spec.lua spec/api_odata_spec.lua")
    assert.equals(0, status, out)
    local passed, failed = out:match("(%d+) passed, (%d+) failed")
    assert.equals("0", failed, out)
    assert.is_true(tonumber(passed) >= 40, out)
  end)

  it("builds and installs with luarocks from the rockspec (make backend)", function()
    local status, out = sh("luarocks lint rockspecs/dvlua-scm-1.rockspec")
    assert.equals(0, status, out)
    local tree = os.tmpname()
    os.remove(tree)
    status, out = sh("luarocks --lua-version=5.4 --tree=" .. q(tree) .. " make rockspecs/dvlua-scm-1.rockspec")
    assert.equals(0, status, out)
    assert.is_truthy(io.open(tree .. "/lib/lua/5.4/dataverse.so", "rb"))
    assert.is_truthy(io.open(tree .. "/bin/dvlua", "rb"))
    assert.is_truthy(io.open(tree .. "/lib/luarocks/rocks-5.4/dvlua/scm-1/share/man/man1/dvlua.1", "rb"))
    status, out = sh("env LUA_CPATH=" .. q(tree .. "/lib/lua/5.4/?.so") .. " lua5.4 -e "
      .. q([[print(require "dataverse".version)]]))
    assert.equals(0, status, out)
    assert.matches("^%d+%.%d+%.%d+\n$", out)
    os.execute("rm -rf " .. q(tree))
  end)
end)
