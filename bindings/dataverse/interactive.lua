-- What `dvlua -i` adds to a session (src/repl.c calls it with the global table):
-- `dataverse` as a global, `org` as a global connected on first use (saying where it
-- points on stderr), the history file's path and the function that prints results.
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
  return { history = history, show = show }
end
