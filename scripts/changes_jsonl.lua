#!/usr/bin/env dvlua
-- Write a Dataverse table's change feed as JSON lines, for piping elsewhere.
--
--   dvlua changes_jsonl.lua --table account [--columns name,revenue] [--since TOKEN_FILE]
--                           [--out FILE] [--page-size N] [--watch SECONDS] > changes.jsonl
--
-- One object per line:
--   {"type":"new_or_updated","id":"<guid>","row":{…current values…}}
--   {"type":"removed_or_deleted","id":"<guid>","table":"account"}
--   {"type":"full_sync","reason":"token expired"}   -- the token in TOKEN_FILE was too old:
--                                                   -- every row follows; rows not among them are gone
-- Lines go to stdout, or appended to FILE with --out. Each line reaches the output whole
-- (one write per line); with --out, a partial last line left by a killed run is cut off
-- before anything is appended. With --since, the feed starts at the token saved in
-- TOKEN_FILE (everything when the file does not exist yet), and the new token replaces the
-- file (written to FILE.tmp, synced, renamed) only after every line was written: a run that
-- dies half way is repeated whole next time, never skipped. A consumer that applies lines by
-- id therefore ends exact. See docs/SYNC.md.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"
local J = require "dataverse.sync_jsonl"

local USAGE = "usage: changes_jsonl.lua --table NAME [--columns a,b,c] [--since TOKEN_FILE] [--out FILE] " ..
  "[--page-size N] [--watch SECONDS]"

sync.main("changes_jsonl", function()
  local o = sync.options(arg, { table = "value", columns = "value", since = "value", out = "value",
    ["page-size"] = "number", watch = "number", help = "flag" }, USAGE)
  if o.help then return print(USAGE) end
  if not o.table then error(USAGE, 0) end

  local org = dataverse.connect()
  local meta, cols = sync.plan(org, { table = o.table, columns = sync.split(o.columns) })
  local names = {}
  for i, c in ipairs(cols) do names[i] = sync.wire_name(c) end

  -- One run at a time per feed (its output file, or its token file when it writes to stdout).
  local lock <close> = (o.out or o.since) and J.lock(o.out or o.since) or nil
  local out
  if o.out then
    out = J.open_output(o.out)
  else
    out = io.stdout
    out:setvbuf("no")
  end

  sync.repeat_every(o.watch, function()
    local stats = sync.new_stats(meta.name)
    local prog = sync.progress(1, nil, org)
    prog:add(stats)
    stats.state = "running"
    local function emit(change)
      assert(out:write(J.line(change, meta.id)))
      if change.type == "removed_or_deleted" then
        stats.deleted = stats.deleted + 1
      elseif stats.full then
        stats.inserted = stats.inserted + 1
      else
        stats.updated = stats.updated + 1
      end
    end
    local function feed(since)
      local req = { entity = meta.name, columns = names, since = since, page_size = o["page-size"] }
      local n0 = 0
      return sync.each_change(org, req, emit, function()
        stats.pages = stats.pages + 1
        local n = stats.inserted + stats.updated + stats.deleted
        prog:rows(stats, n - n0)
        n0 = n
      end)
    end

    local since = nil
    if o.since then
      local st = J.read_state(o.since)
      since = st and st.token
    end
    stats.full = since == nil
    local ok, token = pcall(feed, since)
    if not ok and since and stats.pages == 0 and sync.is_expired(token) then
      stats.expired, stats.full = true, true
      assert(out:write(dataverse.json.encode { type = "full_sync", reason = "token expired" } .. "\n"))
      token = feed(nil)
    elseif not ok then
      error(token, 0)
    end
    assert(out:flush())
    if o.since then J.write_atomic(o.since, token .. "\n") end
    prog:finish()
    stats.state = "done"
    stats.elapsed = sync.now() - stats.started
    io.stderr:write(sync.stamped(sync.summary_line(stats), o.watch), "\n")
  end)
end)
