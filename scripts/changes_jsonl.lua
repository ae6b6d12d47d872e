#!/usr/bin/env dvlua
-- Write a Dataverse table's change feed to stdout as JSON lines, for piping elsewhere.
--
--   dvlua changes_jsonl.lua --table account [--columns name,revenue] [--since TOKEN_FILE]
--                           [--page-size N] > changes.jsonl
--
-- One object per line:
--   {"type":"new_or_updated","id":"<guid>","row":{…current values…}}
--   {"type":"removed_or_deleted","id":"<guid>","table":"account"}
--   {"type":"full_sync","reason":"token expired"}   -- the token in TOKEN_FILE was too old:
--                                                   -- every row follows; rows not among them are gone
-- With --since, the feed starts at the token saved in TOKEN_FILE (everything when the file
-- does not exist yet), and the new token replaces the file only after stdout was flushed:
-- a run that dies half way is repeated whole next time, never skipped. A consumer that
-- applies lines by id therefore ends exact. See docs/SYNC.md.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"
local json = dataverse.json

local USAGE = "usage: changes_jsonl.lua --table NAME [--columns a,b,c] [--since TOKEN_FILE] [--page-size N]"

local function read_token(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local token = f:read("l")
  f:close()
  if token and token:match("%S") then return token end
end

-- Written next to the file and renamed over it, so the file always holds a whole token.
local function write_token(path, token)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  assert(f:write(token, "\n"))
  assert(f:close())
  assert(os.rename(tmp, path))
end

sync.main("changes_jsonl", function()
  local o = sync.options(arg, { table = "value", columns = "value", since = "value", ["page-size"] = "number",
    help = "flag" }, USAGE)
  if o.help then return print(USAGE) end
  if not o.table then error(USAGE, 0) end

  local org = dataverse.connect()
  local meta, cols = sync.plan(org, { table = o.table, columns = sync.split(o.columns) })
  local names = {}
  for i, c in ipairs(cols) do names[i] = sync.wire_name(c) end

  local count = 0
  local function emit(change)
    local line
    if change.type == "new_or_updated" then
      line = { type = change.type, id = change.row[meta.id], row = change.row }
    else
      line = change
    end
    assert(io.stdout:write(json.encode(line), "\n"))
    count = count + 1
  end
  local function feed(since)
    return sync.each_change(org, { entity = meta.name, columns = names, since = since, page_size = o["page-size"] },
      emit, function() end)
  end

  local since = o.since and read_token(o.since)
  local ok, token = pcall(feed, since)
  if not ok and since and sync.is_expired(token) then
    emit { type = "full_sync", reason = "token expired" }
    token = feed(nil)
  elseif not ok then
    error(token, 0)
  end
  assert(io.stdout:flush())
  if o.since then write_token(o.since, token) end
  io.stderr:write(string.format("changes_jsonl: %s, %d changes\n", meta.name, count))
end)
