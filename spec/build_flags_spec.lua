-- `make CFLAGS=… LDFLAGS=…` adds the user's flags to the project's own instead of replacing
-- them (the project's live in DV_CFLAGS / DV_LDFLAGS).
local dv = require "dv"

-- Runs a shell command line; returns what it printed and its exit status.
local function sh(cmd)
  local code, out = dv.sh(cmd)
  return out, code
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

describe("make after a change of flags or headers", function()
  local dir

  local function make(args)
    return sh("make -C " .. dv.quote(dir) .. " CHECK_DEPS= " .. args .. " build/src/base64.o")
  end

  local function compiles(out)
    local n = 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^%S*cc .* %-c %-o build/src/base64%.o") then n = n + 1 end
    end
    return n
  end

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && cp -R Makefile src bindings tools " .. dir))
  end)

  after_each(function()
    os.execute("rm -rf " .. dv.quote(dir))
  end)

  it("rebuilds an object when CFLAGS change, and only then", function()
    local out, code = make("CFLAGS=-O0")
    assert.equals(0, code, out)
    assert.equals(1, compiles(out), out)
    out = make("CFLAGS=-O0")
    assert.equals(0, compiles(out), out)
    out = make("CFLAGS=-O1")
    assert.equals(1, compiles(out), out)
    assert.matches(" -O1", out, 1, true)
    assert.matches("-O1", dv.read_file(dir .. "/build/flags"), 1, true)
  end)

  it("rebuilds an object when the project's own flags change", function()
    assert.equals(1, compiles(make("")))
    local out = make("DV_CFLAGS='-std=gnu11 -Isrc -DDV_SPEC_FLAG'")
    assert.equals(1, compiles(out), out)
    assert.matches("-DDV_SPEC_FLAG", out, 1, true)
    assert.is_nil(dv.read_file(dir .. "/build/flags"):find("-fPIC", 1, true))
    out = make("")
    assert.equals(1, compiles(out), out)
    assert.matches("-fPIC", dv.read_file(dir .. "/build/flags"), 1, true)
  end)

  it("relinks dvlua and dataverse.so when LDFLAGS change, and only then, recompiling nothing", function()
    -- The objects of this checkout, dates kept, so that only the link steps have work to do.
    assert(os.execute("cp -a Makefile src bindings tools build " .. dv.quote(dir)))
    local function build(ldflags)
      return sh("make -C " .. dv.quote(dir) .. " CHECK_DEPS= LDFLAGS=" .. ldflags .. " dvlua dataverse.so")
    end
    local function count(out, pattern)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        if line:match(pattern) then n = n + 1 end
      end
      return n
    end
    local out, code = build("-Wl,-O1")
    assert.equals(0, code, out)
    assert.equals(1, count(out, "%-o dvlua "), out)
    assert.equals(1, count(out, "%-o dataverse%.so "), out)
    out = build("-Wl,-O1")
    assert.equals(0, count(out, "%-o dvlua "), out)
    assert.equals(0, count(out, "%-o dataverse%.so "), out)
    out, code = build("-Wl,-O2")
    assert.equals(0, code, out)
    assert.equals(1, count(out, "^%S*cc .*%-Wl,%-O2 .*%-o dvlua "), out)
    assert.equals(1, count(out, "^%S*cc .*%-Wl,%-O2 .*%-o dataverse%.so "), out)
    assert.equals(0, count(out, " %-c "), out)
    assert.matches("-Wl,-O2", dv.read_file(dir .. "/build/ldflags"), 1, true)
  end)

  it("rebuilds an object when a header it includes changes", function()
    assert.equals(1, compiles(make("")))
    local function touch(when, ...)
      for _, f in ipairs { ... } do
        assert(os.execute("touch " .. (when and "-d " .. when .. " " or "") .. dv.quote(dir .. "/" .. f)))
      end
    end
    touch("2000-01-01", "src/base64.c", "src/base64.h", "build/flags")
    touch("2001-01-01", "build/src/base64.o")
    assert.equals(0, compiles(make("")))
    touch(nil, "src/base64.h")
    local out = make("")
    assert.equals(1, compiles(out), out)
  end)
end)
