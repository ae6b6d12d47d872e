-- `make CFLAGS=… LDFLAGS=…` adds the user's flags to the project's own instead of replacing
-- them (the project's live in DV_CFLAGS / DV_LDFLAGS).
local dv = require "dv"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("make with the user's CFLAGS", function()
  it("keeps the project's flags in every compile and link line", function()
    local out, code = sh("make -n -B CFLAGS=-O1 LDFLAGS=-Wl,--as-needed dvlua")
    assert.equals(0, code, out)
    local compiles, links = 0, 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^%S*cc .* %-c ") then
        compiles = compiles + 1
        assert.matches("-std=gnu11", line, 1, true)
        assert.matches("-Isrc", line, 1, true)
        assert.matches(" -O1", line, 1, true)
      elseif line:match("%-o dvlua ") then
        links = links + 1
        assert.matches("-Wl,-E", line, 1, true)
        assert.matches("-Wl,--as-needed", line, 1, true)
      end
    end
    assert.is_true(compiles > 20, out)
    assert.equals(1, links)
  end)

  it("really compiles with CFLAGS=-O0 given on the command line", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/scripts && cp -R Makefile src bindings tools " .. dir ..
      " && cp scripts/install-deps.sh " .. dir .. "/scripts/"))
    local out, code = sh("make -C " .. dv.quote(dir) .. " CFLAGS=-O0 build/src/main.o build/bindings/lua_connection.o")
    os.execute("rm -rf " .. dv.quote(dir))
    assert.equals(0, code, out)
    assert.matches("-O0", out, 1, true)
  end)
end)
