-- What `dvlua -i` adds to a session (src/repl.c calls it with the global table):
-- `dataverse` as a global, `org` as a global connected on first use (saying where it
-- points on stderr), the history file's path, the function that prints results and the
-- one that completes names on Tab.
local dataverse = require "dataverse"
local core = require "dataverse.core"
local pretty = dataverse.pretty

-- Values print through dataverse.pretty; a string prints as itself, as lua5.4 prints it.
local function show(...)
  local n = select("#", ...)
  local parts, sep = {}, "\t"
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = type(v) == "string" and v or pretty(v)
    if parts[i]:find("\n", 1, true) then sep = "\n" end
  end
  io.stdout:write(table.concat(parts, sep), "\n")
  io.stdout:flush()
end

local function connect_org()
  local org = dataverse.connect()
  local st = org:state()
  io.stderr:write(("dvlua: org is connected to %s%s\n"):format(org:url(),
    st.emulator and " (the built-in emulator; set DATAVERSE_URL for an organization)" or ""))
  return org
end

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

-- Looks a field up without running code: no __index function is called (completing
-- `org:` must not connect), only __index tables are followed.
local function peek(v, k)
  for _ = 1, 10 do
    if type(v) == "table" then
      local x = rawget(v, k)
      if x ~= nil then return x end
    end
    local mt = getmetatable(v)
    local idx = type(mt) == "table" and rawget(mt, "__index") or nil
    if type(idx) ~= "table" then return nil end
    v = idx
  end
end

-- The names a value offers: its string keys and those of its __index tables.
local function fields(v, out)
  for _ = 1, 10 do
    if type(v) == "table" then
      for k in next, v do
        if type(k) == "string" and k:match("^[%a_][%w_]*$") then out[k] = out[k] or rawget(v, k) end
      end
    end
    local mt = getmetatable(v)
    local idx = type(mt) == "table" and rawget(mt, "__index") or nil
    if type(idx) ~= "table" then return out end
    v = idx
  end
  return out
end

-- Completions of the word `text` (`pri`, `dataverse.js`, `org:cre`): whole words, sorted.
local function completer(G)
  return function(text)
    local head, sep, tail = text:match("^(.-)([.:]?)([%a_]?[%w_]*)$")
    if not head then return {} end
    local names = {}
    if sep == "" then
      if head ~= "" then return {} end
      fields(G, names)
      names.org = names.org or true -- there before its first use
      for _, k in ipairs(KEYWORDS) do names[k] = true end
    else
      local v
      for name in (head .. "."):gmatch("(.-)%.") do
        if not name:match("^[%a_][%w_]*$") then return {} end
        if v == nil then
          v = rawget(G, name)
          -- `org` before its first use: the connection's methods, without connecting
          if v == nil and name == "org" and head == "org" then v = dataverse.connection end
        else
          v = peek(v, name)
        end
        if v == nil then return {} end
      end
      fields(v, names)
    end
    local out = {}
    for k, x in pairs(names) do
      if k:sub(1, #tail) == tail and (sep ~= ":" or type(x) == "function") then
        out[#out + 1] = head .. sep .. k
      end
    end
    table.sort(out)
    return out
  end
end

return function(G)
  if rawget(G, "dataverse") == nil then rawset(G, "dataverse", dataverse) end
  -- Chains to a metatable already on _G (a strict-globals module from LUA_INIT, say).
  local mt = getmetatable(G)
  if mt == nil then
    mt = {}
    setmetatable(G, mt)
  end
  local previous = mt.__index
  mt.__index = function(t, k)
    if k == "org" then
      local org = connect_org()
      rawset(t, "org", org)
      return org
    end
    if type(previous) == "function" then return previous(t, k) end
    if previous ~= nil then return previous[k] end
    return nil
  end

  local dir = dataverse.data_dir()
  local history = core.mkdir_p(dir) and (dir .. "/history") or nil
  return { history = history, show = show, complete = completer(G) }
end
