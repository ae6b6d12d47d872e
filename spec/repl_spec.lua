-- The interactive interpreter, driven through a pseudo-terminal by script(1) (bsdutils):
-- whatever is typed is fed to the terminal, and what a user would see is read back.
local dv = require "dv"

local q = dv.quote

local tmpdir = dv.tmpdir

-- Types `input` into `dvlua <args>` on a terminal; returns what the terminal showed
-- (stdout and stderr together, as a user sees them) with the CRs removed, and the status.
local function session(input, o)
  o = o or {}
  local infile, outfile = os.tmpname(), os.tmpname()
  dv.write_file(infile, input)
  local env = { "XDG_DATA_HOME=" .. q(o.data), "DATAVERSE_URL=", "DATAVERSE_TOKEN=", "TERM=dumb" }
  for k, v in pairs(o.env or {}) do env[#env + 1] = k .. "=" .. q(v) end
  local cmd = q(dv.bin) .. " " .. table.concat(o.args or { "-i" }, " ")
  local _, _, status = os.execute(("env %s timeout 60 script -qfec %s /dev/null <%s >%s 2>&1")
    :format(table.concat(env, " "), q(cmd), infile, outfile))
  local out = dv.read_file(outfile):gsub("\r", "")
  os.remove(infile)
  os.remove(outfile)
  return out, status
end

-- Waits (bounded) until the file holds text matching `pattern`; returns the text.
local function wait_for(path, pattern)
  local deadline = os.time() + 30
  repeat
    local s = dv.read_file(path):gsub("\r", "")
    if s:find(pattern) then return s end
    os.execute("sleep 0.1")
  until os.time() > deadline
  return dv.read_file(path):gsub("\r", "")
end

describe("dvlua -i", function()
  local data

  before_each(function() data = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. q(data)) end)

  it("edits the line being typed (Ctrl-A goes to its start) and runs it", function()
    -- typed: `2)`, Ctrl-A, `print(4`: only an editor turns that into print(42)
    local out, status = session("2)\1print(4\n", { data = data })
    assert.equals(0, status)
    assert.matches("\n42\n", out, 1, true)
    assert.is_nil(out:find("unexpected symbol", 1, true))
  end)

  it("completes names on Tab: globals, fields, methods, org's before it is connected", function()
    local out = session(table.concat({
      "dataverse.pre\t({ 3, 1 })",
      'x = "org:whoa\t"',
      'print(x, rawget(_G, "org"))',
      "",
    }, "\n"), { data = data })
    assert.matches("\n{ 3, 1 }\n", out, 1, true)
    assert.matches("\norg:whoami\tnil\n", out, 1, true) -- completing did not connect
  end)

  -- A session typed into as it goes: returns the keyboard (a file) and the screen's path.
  local function live()
    local fifo, out = os.tmpname(), os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. q(fifo)))
    os.execute(("env XDG_DATA_HOME=%s TERM=dumb DVLUA_QUIET=1 timeout 60 script -qfec %s /dev/null <%s >%s 2>&1 &")
      :format(q(data), q(q(dv.bin) .. " -i"), q(fifo), q(out)))
    local keyboard = assert(io.open(fifo, "w"))
    keyboard:setvbuf("no")
    os.remove(fifo) -- both ends are open
    return keyboard, out
  end

  it("stops a running statement on Ctrl-C and goes on with the next", function()
    local typing, out = live()
    -- the statement says when it is running; the echo of what was typed does not match
    typing:write('io.write("loop", "ing\\n") io.flush() while true do end\n')
    assert.matches("\nlooping\n", wait_for(out, "\nlooping\n"), 1, true)
    typing:write("\3")
    wait_for(out, "interrupted")
    typing:write('print("still " .. "alive")\n')
    typing:close()
    local text = wait_for(out, "\nstill alive\n")
    os.remove(out)
    assert.matches("looping\n.*interrupted.*\nstill alive\n", text)
    assert.matches("\nstill alive\n", text, 1, true)
  end)

  it("drops the line (or the statement) being typed on Ctrl-C, not the session", function()
    local typing, out = live()
    wait_for(out, "\n> $")
    typing:write("abc\3")
    wait_for(out, "\n> [^\n]*\n> $") -- a fresh prompt
    typing:write("for i = 1, 2 do\n")
    wait_for(out, "\n>> $")
    typing:write("\3")
    wait_for(out, ">> \n> $")
    typing:write('print("still " .. "here")\n')
    typing:close()
    local text = wait_for(out, "\nstill here\n")
    os.remove(out)
    assert.matches("\nstill here\n", text, 1, true)
    assert.is_nil(text:find("\nnil\n", 1, true)) -- `abc` was never run
    assert.is_nil(text:find("'end' expected", 1, true))
  end)

  it("keeps history in the data directory, across sessions, readable by its owner only", function()
    session('print("from history " .. 6*7)\n', { data = data })
    local hist = dv.read_file(data .. "/dvlua/history")
    assert.matches("6*7", hist, 1, true)
    local p = io.popen("stat -c %a " .. q(data .. "/dvlua/history"))
    assert.equals("600", p:read("l"))
    p:close()
    -- a new session: Ctrl-P recalls the previous line, Enter runs it again
    local out = session("\16\n", { data = data })
    assert.matches("from history 42", out, 1, true)
  end)

  it("starts on a bare `dvlua` when stdin is a terminal", function()
    local out, status = session("1+2\n", { data = data, args = {} })
    assert.equals(0, status)
    assert.matches("^dvlua %d+%.%d+%.%d+ %(Lua 5%.4", out:match("dvlua %d.-\n"))
    assert.matches("\n3\n", out, 1, true)
  end)

  it("reports errors as lua5.4 does, starting with stdin:1:", function()
    local out = session(table.concat({
      "x = = 1",
      "error('boom')",
      "local t = nil; t.x = 1",
      -- the API's errors too, though a call typed alone is the value to print
      "org:query('account', { filtr = 'x' })",
      "org:create('no_such_table', {})",
      "",
    }, "\n"), { data = data, env = { DVLUA_QUIET = "1" } })
    assert.matches("\nstdin:1: unexpected symbol near '='", out, 1, true)
    assert.matches("\nstdin:1: boom", out, 1, true)
    assert.matches("\nstdin:1: attempt to index a nil value", out, 1, true)
    assert.matches("\nstdin:1: query: unknown option 'filtr'", out, 1, true)
    assert.matches("\nstdin:1: HTTP 404 ", out, 1, true)
    assert.is_nil(out:find("tail calls", 1, true))
    assert.is_nil(out:find("(null)", 1, true))
  end)

  it("takes its prompts from _PROMPT and _PROMPT2, on a terminal or not", function()
    local typed = '_PROMPT = "dv> "; _PROMPT2 = "..> "\nfor i = 1, 1 do\nprint("in loop")\nend\n'
    local out = session(typed, { data = data })
    assert.matches("\ndv> for i = 1, 1 do\n..> print(\"in loop\")\n..> end\nin loop\ndv> ", out, 1, true)
    local r = dv.run({ "-i" }, { stdin = typed, env = { XDG_DATA_HOME = data } })
    assert.equals(0, r.status, r.stderr)
    assert.matches("> dv> ..> ..> in loop\ndv> \n$", r.stdout)
  end)

  it("prints tables as sorted Lua-like literals, json null as null, long lists cut", function()
    local out = session(table.concat({
      "{ zeta = 1, alpha = { 2, 3 }, none = dataverse.json.null }",
      "(function() local t = {} for i = 1, 200 do t[i] = i * 10 end return t end)()",
      "'plain string', 7",
      "",
    }, "\n"), { data = data })
    assert.matches("\n{ alpha = { 2, 3 }, none = null, zeta = 1 }\n", out, 1, true)
    assert.matches("\n  500,\n  -- ... 150 more (200 in all)\n}\n", out, 1, true)
    assert.matches("\nplain string\t7\n", out, 1, true)
  end)

  it("has dataverse as a global and connects org on first use, saying where it points", function()
    local out = session(table.concat({
      "print('before', dataverse.version)",
      "org:create('account', { name = 'From the REPL' })",
      "org:query('account', { columns = { 'name' } })()",
      "",
    }, "\n"), { data = data, env = { DVLUA_QUIET = "1" } })
    local before = out:find("\nbefore\t%d")
    local connected = out:find("dvlua: org is connected to http://127.0.0.1:%d+ %(the built%-in emulator")
    assert.is_truthy(before, out)
    assert.is_truthy(connected, out)
    assert.is_true(before < connected) -- not before `org` was used
    assert.matches("name = \"From the REPL\"", out, 1, true)
    -- the row went into the data directory's emulator database
    assert.is_truthy(io.open(data .. "/dvlua/emulator.sqlite"))
  end)
end)

describe("dataverse.pretty", function()
  it("is available to scripts and returns a string", function()
    local r = dv.run({ "-e", [[
      local dataverse = require "dataverse"
      local s = dataverse.pretty({ b = { x = true }, a = "q\"uote", [1] = 1.5, ["not id"] = dataverse.json.null })
      io.write(type(s), "\n", s, "\n")
      io.write(dataverse.pretty({ deep = { deeper = { deepest = { 1 } } } }, { depth = 2 }), "\n")
      local t = {} t.self = t
      io.write(dataverse.pretty(t), "\n")
      io.write(dataverse.pretty({ 1, 2, 3, 4 }, { items = 2 }), "\n")
      io.write(dataverse.pretty({ ("\u{e9}"):rep(10) }, { text = 5 }), "\n")
      print(pcall(dataverse.pretty, {}, { dept = 1 }))
    ]] })
    assert.equals(0, r.status, r.stderr)
    assert.equals(table.concat({
      "string",
      '{ 1.5, a = "q\\"uote", b = { x = true }, ["not id"] = null }',
      "{ deep = { deeper = {...} } }",
      "{ self = <cycle> }",
      "{\n  1,\n  2,\n  -- ... 2 more (4 in all)\n}",
      '{ "\u{e9}\u{e9}"... (20 bytes) }',
      "false\tpretty: unknown option 'dept' (did you mean 'depth'?)",
      "",
    }, "\n"), r.stdout)
  end)
end)

describe("the built-in emulator's banner", function()
  local data

  before_each(function() data = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. q(data)) end)

  local script = [[local o = require "dataverse".connect(); print(o:whoami().UserId ~= nil)]]

  it("is printed once per data directory", function()
    local env = { XDG_DATA_HOME = data, DATAVERSE_URL = "" }
    local r = dv.run({ "-e", script }, { env = env })
    assert.equals("true\n", r.stdout)
    assert.matches("using the built%-in emulator at http://127%.0%.0%.1:%d+", r.stderr)
    assert.is_truthy(io.open(data .. "/dvlua/emulator-banner-shown"))
    r = dv.run({ "-e", script }, { env = env })
    assert.equals("true\n", r.stdout)
    assert.equals("", r.stderr)
    -- another data directory sees it again
    local other = tmpdir()
    r = dv.run({ "-e", script }, { env = { XDG_DATA_HOME = other, DATAVERSE_URL = "" } })
    assert.matches("built%-in emulator", r.stderr)
    os.execute("rm -rf " .. q(other))
  end)

  it("is silenced by DVLUA_QUIET=1", function()
    local r = dv.run({ "-e", script }, { env = { XDG_DATA_HOME = data, DATAVERSE_URL = "", DVLUA_QUIET = "1" } })
    assert.equals("true\n", r.stdout)
    assert.equals("", r.stderr)
    assert.is_nil(io.open(data .. "/dvlua/emulator-banner-shown"))
  end)
end)
