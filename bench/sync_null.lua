-- A full or incremental sync of `account` into a null sink, timed from the first request
-- to the last change delivered.
--
--   dvlua bench/sync_null.lua URL TOKEN COLUMNS [--since FILE] [--save FILE]
--
-- --since reads the data token to start from (an incremental sync); --save writes the new
-- token after the loop. Prints one JSON line: rows delivered, new/updated and deleted
-- counts, seconds of the sync phase.
local cjson = require "cjson"
local dataverse = require "dataverse"
local system = require "system"

local url, token, columns = arg[1], arg[2], arg[3]
if not (url and token and columns) then
  io.stderr:write("usage: dvlua bench/sync_null.lua URL TOKEN COLUMNS [--since FILE] [--save FILE]\n")
  os.exit(2)
end
local since_file, save_file
local i = 4
while arg[i] do
  if arg[i] == "--since" then
    since_file = assert(arg[i + 1], "--since needs a file")
  elseif arg[i] == "--save" then
    save_file = assert(arg[i + 1], "--save needs a file")
  else
    error("unknown argument " .. arg[i])
  end
  i = i + 2
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return (s:gsub("%s+$", ""))
end

local cols = {}
for c in columns:gmatch("[^,]+") do
  cols[#cols + 1] = c
end

local org = dataverse.connect { url = url, token = token }
local since = since_file and slurp(since_file) or nil

local t0 = system.monotime()
local upserts, deletes = 0, 0
local it = org:changes { entity = "account", columns = cols, since = since, page_size = 5000 }
for change in it do
  if change.type == "removed_or_deleted" then
    deletes = deletes + 1
  else
    upserts = upserts + 1
  end
end
local seconds = system.monotime() - t0
local new_token = it.token -- set once every page was delivered

if save_file then
  assert(new_token, "the change iterator gave no data token")
  local f = assert(io.open(save_file, "wb"))
  f:write(new_token, "\n")
  f:close()
end

print(cjson.encode { rows = upserts + deletes, upserts = upserts, deletes = deletes, seconds = seconds })
