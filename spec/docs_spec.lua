-- The docs agree with the code: every option and every error code docs/API.md and
-- docs/CONFIG.md name is checked against what the code accepts and raises, so the two
-- cannot drift apart again.
local dataverse = require "dataverse"
local dv = require "dv"

local api = dv.read_file("docs/API.md")
local config = dv.read_file("docs/CONFIG.md")

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Backticked words of a text ("`a`, `b`" -> {"a", "b"}).
local function ticked(text)
  local out = {}
  for w in text:gmatch("`([%w_%.]+)`") do out[#out + 1] = w end
  return out
end

-- The rows of the first markdown table after the first match of the pattern heading: a
-- list of cell lists (header and separator skipped).
local function table_after(doc, heading)
  local start = doc:find(heading)
  assert(start, "no '" .. heading .. "' in the docs")
  local rows, in_table = {}, false
  for line in doc:sub(start):gmatch("[^\n]*") do
    if line:match("^|") then
      if in_table then
        local cells = {}
        for cell in line:gmatch("|([^|]*)") do cells[#cells + 1] = cell end
        if not line:match("^|%-%-%-") then rows[#rows + 1] = cells end
      end
      in_table = true
    elseif in_table then
      break
    end
  end
  return rows
end

-- The section of doc from the heading to the next heading of the same or a higher level.
local function section(doc, heading)
  local s = doc:find(heading, 1, true)
  assert(s, "no section " .. heading)
  local level = heading:match("^#+")
  local rest = doc:sub(s + #heading)
  local e = rest:find("\n" .. level .. " ") or #rest
  return rest:sub(1, e)
end

describe("docs/API.md", function()
  it("lists, for every function, exactly the options the code accepts", function()
    local documented = {}
    for _, cells in ipairs(table_after(api, "| function | options |")) do
      local fname = cells[1]:match("`([%w_]+)`")
      assert.is_not_nil(fname, "a row without a function name")
      documented[fname] = ticked(cells[2])
    end
    assert.same(keys(dataverse._options), keys(documented))
    for fname, spec in pairs(dataverse._options) do
      table.sort(documented[fname])
      assert.same(keys(spec), documented[fname], "options of " .. fname)
    end
  end)

  it("names in each heading only options its function takes", function()
    local n = 0
    for fname, args in api:gmatch("\n### `[%w_]+[:%.]([%w_]+)([^\n]*)") do
      args = args:gsub("%->.*", "") -- what it returns is no option
      for name in args:gmatch("([%w_]+)=") do
        local spec = dataverse._options[fname]
        assert.is_not_nil(spec, "heading of " .. fname .. " names options")
        assert.is_not_nil(spec[name], ("heading of %s names option '%s'"):format(fname, name))
        n = n + 1
      end
    end
    assert.is_true(n >= 10)
  end)

  it("describes every option of connect in its table", function()
    local names = {}
    for _, cells in ipairs(table_after(api, "### `dataverse.connect")) do
      for _, n in ipairs(ticked(cells[1])) do names[#names + 1] = n end
    end
    table.sort(names)
    assert.same(keys(dataverse._options.connect), names)
  end)

  it("describes every request option the row functions take", function()
    local described = {}
    for _, cells in ipairs(table_after(api, "## Request options")) do
      for _, n in ipairs(ticked(cells[1])) do described[n] = true end
    end
    for _, fname in ipairs { "create", "update", "upsert", "delete" } do
      for name in pairs(dataverse._options[fname]) do
        assert.is_true(described[name] == true, "request option '" .. name .. "' of " .. fname .. " is not described")
      end
    end
    for name in pairs(described) do
      local known = false
      for _, spec in pairs(dataverse._options) do known = known or spec[name] ~= nil end
      assert.is_true(known, "'" .. name .. "' is described but no function takes it")
    end
  end)

  it("names the hook events' fields the code fills in", function()
    -- Every field of the documented events, observed on a real connection.
    local emu = dataverse.emulator.start { db = ":memory:", faults = "" }
    local seen = { on_request = {}, on_retry = {}, on_page = {} }
    local function keep(kind) return function(ev) for k in pairs(ev) do seen[kind][k] = true end end end
    local org = dataverse.connect { emulator = emu, on_request = keep("on_request"),
      on_retry = keep("on_retry"), on_page = keep("on_page") }
    emu:faults("429=0")
    for _ in org:query("account", { page_size = 1 }) do end
    emu:faults("drop")
    pcall(org.whoami, org)
    org:close()
    emu:stop()
    for _, cells in ipairs(table_after(api, "## Event hooks")) do
      local field = cells[1]:match("`([%w_]+)`")
      for i, kind in ipairs { "on_request", "on_retry", "on_page" } do
        local says = cells[i + 1]:match("yes") ~= nil
        assert.equals(says, seen[kind][field] == true, ("field '%s' of %s"):format(field, kind))
        seen[kind][field] = nil
      end
    end
    for kind, left in pairs(seen) do
      assert.same({}, keys(left), "undocumented fields of " .. kind)
    end
  end)
end)

describe("error codes", function()
  -- The codes the code raises: dv_error_set(err, status, "code", …) in C,
  -- U.raise(status, "code", …) in Lua, and the "http" fallback of src/http.c.
  local function raised()
    local codes = {}
    local files = {}
    for _, pattern in ipairs { "src/*.c", "bindings/*.c", "bindings/dataverse/*.lua" } do
      local p = io.popen("ls " .. pattern)
      for f in p:lines() do files[#files + 1] = f end
      p:close()
    end
    for _, f in ipairs(files) do
      local text = dv.read_file(f)
      for c in text:gmatch('dv_error_set%([^,]+,%s*[^,]+,%s*"([%w_]+)"') do codes[c] = true end
      for c in text:gmatch('U%.raise%([^,]+,%s*"([%w_]+)"') do codes[c] = true end
      for c in text:gmatch('%?%s*code%s*:%s*"([%w_]+)"') do codes[c] = true end
    end
    for c in pairs(codes) do
      if c:match("^0x") then codes[c] = nil end
    end
    return codes
  end

  it("documents in API.md exactly the codes dvlua raises", function()
    local documented = {}
    for _, cells in ipairs(table_after(api, "dvlua's own codes:")) do
      documented[#documented + 1] = cells[1]:match("`([%w_]+)`")
    end
    table.sort(documented)
    local codes = keys(raised())
    assert.is_true(#codes >= 12)
    assert.same(codes, documented)
  end)

  it("names in CONFIG.md only codes that exist", function()
    local codes = raised()
    local n = 0
    for c in config:gmatch("code `([%w_]+)`") do
      assert.is_true(codes[c] == true, "CONFIG.md names code '" .. c .. "'")
      n = n + 1
    end
    assert.is_true(n >= 2)
    assert.matches("API.md](API.md#errors)", section(config, "## Errors"), 1, true)
  end)
end)

describe("retries", function()
  -- The statuses src/http.c retries: for every method, and for idempotent methods only.
  local http_c = dv.read_file("src/http.c")
  local function statuses(fn)
    local body = http_c:match("static int " .. fn .. "%(long s%)%s*{(.-)}")
    assert.is_not_nil(body, fn)
    local out = {}
    for n in body:gmatch("(%d%d%d)") do out[#out + 1] = n end
    assert.is_true(#out > 0)
    return out
  end
  local every, idempotent = statuses("status_refused"), statuses("status_gateway")

  it("are described the same way in API.md and CONFIG.md", function()
    local row
    for _, cells in ipairs(table_after(api, "### `dataverse.connect")) do
      if cells[1]:match("`retries`") then row = cells[2] end
    end
    assert.is_not_nil(row)
    local every_part, get_part = row:match("^(.-)for every method(.-)$")
    assert.is_not_nil(every_part, "the retries row says which statuses are retried for every method")
    for _, s in ipairs(every) do assert.matches("`" .. s .. "`", every_part) end
    for _, s in ipairs(idempotent) do
      assert.is_nil(every_part:find(s, 1, true))
      assert.matches("`" .. s .. "`", get_part)
    end
    local every_line = config:match("%*%*Retried for every method:%*%*([^\n]*\n[^\n]*)")
    local get_line = config:match("%*%*Retried for `GET`[^\n]*\n[^\n]*")
    assert.is_not_nil(every_line)
    assert.is_not_nil(get_line)
    for _, s in ipairs(every) do assert.matches(s, every_line) end
    for _, s in ipairs(idempotent) do
      assert.is_nil(every_line:find(s, 1, true))
      assert.matches(s, get_line)
    end
  end)
end)

describe("docs/CONFIG.md", function()
  local http = require "dataverse.http"

  it("names only environment variables the code reads", function()
    local read = {}
    local p = io.popen("cat src/*.c src/emulator/*.c bindings/*.c bindings/dataverse/*.lua")
    local code = p:read("a")
    p:close()
    for name in code:gmatch('env%("([%u_]+)"%)') do read[name] = true end
    local n = 0
    for _, cells in ipairs(table_after(config, "| Variable | Meaning |")) do
      local name = cells[1]:match("`([%u_]+)`")
      assert.is_true(read[name] == true, "CONFIG.md documents " .. tostring(name) .. ", which nothing reads")
      n = n + 1
    end
    assert.is_true(n >= 7)
  end)
  it("shows every option of dataverse.http.new, and only those", function()
    local block = config:match("http%.new{\n(.-)\n}")
    assert.is_not_nil(block)
    local names = {}
    for name in block:gmatch("([%w_]+) =") do names[name] = true end
    assert.same(keys(http._options), keys(names))
  end)

  it("says which timeout and retry options connect takes, truthfully", function()
    local said = config:match("`dataverse%.connect` takes (`[^;]+);")
    assert.is_not_nil(said)
    local takes = set(ticked(said))
    for _, cells in ipairs(table_after(config, "| Option %(Lua, seconds%)")) do
      for _, name in ipairs(ticked(cells[1])) do
        assert.is_true(http._options[name] == true, "http.new has no option " .. name)
        assert.equals(takes[name] == true, dataverse._options.connect[name] ~= nil, "connect and " .. name)
      end
    end
  end)
end)

describe("the docs", function()
  it("hold no merge conflict markers", function()
    local p = io.popen("ls README.md docs/*.md")
    for f in p:lines() do
      local text = dv.read_file(f)
      assert.is_nil(text:find("\n<<<<<<< ", 1, true), f)
      assert.is_nil(text:find("\n>>>>>>> ", 1, true), f)
    end
    p:close()
  end)
end)

describe("device code sign-in", function()
  it("is chosen the same way in the code and both docs", function()
    assert.equals("boolean", dataverse._options.connect.device_code)
    assert.matches("`device_code = true`", section(config, "## Authentication"), 1, true)
    assert.matches("`device_code`", section(api, "## Connecting"), 1, true)
    assert.is_nil(api:find("no secret: device code", 1, true))
    -- and the code refuses the old spelling (a client id alone) instead of guessing
    local ok, err = pcall(dataverse.connect, { url = "http://127.0.0.1:9", client_id = "app" })
    assert.is_false(ok)
    assert.equals("config", err.code)
  end)
end)

describe("docs/SYNC.md", function()
  it("lists exactly the options push.lua takes, and its usage line names them all", function()
    local script = dv.read_file("scripts/push.lua")
    local opts = script:match("sync%.options%(arg, (%b{})")
    assert.is_not_nil(opts, "push.lua's option table")
    local takes = {}
    for name in opts:gmatch('%["([%w-]+)"%]%s*=') do takes[#takes + 1] = name end
    for name in opts:gmatch('[{,]%s*([%w_]+)%s*=') do takes[#takes + 1] = name end
    table.sort(takes)
    assert.is_true(#takes >= 7)
    local listed = {}
    local doc = section(dv.read_file("docs/SYNC.md"), "## push: ")
    for name in (doc:match("\nOptions: (.-)%.\n") or ""):gmatch("`%-%-([%w-]+)") do listed[#listed + 1] = name end
    table.sort(listed)
    assert.same(takes, listed)
    local usage = script:match('local USAGE = (.-)\n\n')
    for _, name in ipairs(takes) do
      if name ~= "help" then assert.matches("--" .. name, usage, 1, true) end
    end
  end)
end)
