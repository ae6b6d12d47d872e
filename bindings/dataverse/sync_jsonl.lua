-- dataverse.sync_jsonl: change feeds as JSON-lines files, for scripts/sync.lua --to jsonl:DIR
-- and scripts/changes_jsonl.lua.
--
-- Each table gets DIR/<table>.jsonl (one change per line) and DIR/<table>.state (the token,
-- or the continuation of a load under way). Lines reach the file whole: the file is
-- unbuffered and each line is one write. A run that finds a partial last line (a process
-- killed inside a write) cuts it off before appending. The state file is replaced only after
-- the page's lines are written, through a temporary file that is synced and renamed, so it
-- always holds a whole state: delivery is at least once (a page may be written twice), never
-- a gap, and a consumer that applies lines by id ends exact. One run at a time writes a
-- feed (DIR/<table>.jsonl.lock; see M.lock).
local sync = require "dataverse.sync"

local M = {}

local function fail(fmt, ...)
  error(string.format(fmt, ...), 0)
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function json()
  return require("dataverse").json
end

-- Flushes a file's data to the disk (coreutils sync FILE calls fsync on it).
local function fsync(path)
  local ok = os.execute("sync " .. q(path) .. " 2>/dev/null")
  return ok == true or ok == 0
end

-- Writes `text` to path through path.tmp: written, synced, renamed, directory synced.
function M.write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then fail("cannot write %s: %s", tmp, err) end
  local ok, werr = f:write(text)
  if ok then ok, werr = f:close() else f:close() end
  if not ok then
    os.remove(tmp)
    fail("cannot write %s: %s", tmp, tostring(werr))
  end
  fsync(tmp)
  local rok, rerr = os.rename(tmp, path)
  if not rok then fail("cannot replace %s: %s", path, tostring(rerr)) end
  fsync(path:match("^(.*)/[^/]*$") or ".")
end

-- Size of the file up to its last complete line, and its full size.
local function whole_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  local keep = size
  local pos = size
  while pos > 0 do
    local step = math.min(4096, pos)
    pos = pos - step
    f:seek("set", pos)
    local chunk = f:read(step)
    local at = chunk:find("\n[^\n]*$")
    if at then
      keep = pos + at
      break
    end
    keep = 0
  end
  f:close()
  return keep, size
end

-- Cuts a partial last line off a file; returns how many bytes went.
function M.repair(path)
  local keep, size = whole_size(path)
  if not keep or keep == size then return 0 end
  local ok = os.execute("truncate -s " .. string.format("%d", keep) .. " " .. q(path))
  if not (ok == true or ok == 0) then fail("cannot repair the partial last line of %s", path) end
  return size - keep
end

-- Opens a JSON-lines output for appending, repaired first; unbuffered (one write per line).
function M.open_output(path)
  M.repair(path)
  local f, err = io.open(path, "ab")
  if not f then fail("cannot open %s for appending: %s", path, tostring(err)) end
  f:setvbuf("no")
  return f
end

-- Claims the feed at `path` for this process: a lock on path.lock (fcntl, through
-- LuaFileSystem), held until the returned handle is closed or the process ends, however it
-- ends. A second run on the same feed would append the same changes again, and a slower
-- one could append an old update after a newer deletion (a replay would bring the row
-- back); so it is refused, naming the feed. Returns the handle to close.
function M.lock(path)
  local ok, lfs = pcall(require, "lfs")
  if not ok then fail("LuaFileSystem is not installed (Debian package lua-filesystem); JSON-lines feeds need its lock") end
  local f, err = io.open(path .. ".lock", "ab")
  if not f then fail("cannot create the lock file %s.lock: %s", path, tostring(err)) end
  if not lfs.lock(f, "w") then
    f:close()
    fail("another run is writing %s; this one leaves it alone (the next run goes on from where that one ends)", path)
  end
  return f
end

function M.read_state(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  if not s:match("%S") then return nil end
  if s:sub(1, 1) ~= "{" then
    -- A bare token, as changes_jsonl.lua's --since files hold it.
    return { token = (s:gsub("%s+$", "")) }
  end
  local ok, t = pcall(json().decode, s)
  -- The content is not repeated: it holds a token.
  if not ok or type(t) ~= "table" then fail("the state file %s is damaged (not a JSON object)", path) end
  return t
end

function M.write_state(path, t)
  M.write_atomic(path, json().encode(t) .. "\n")
end

-- One line per change. change: a change from org:changes / retrieve_entity_changes.
function M.line(change, idcol)
  local line
  if change.type == "new_or_updated" then
    line = { type = change.type, id = change.row[idcol], row = change.row }
  else
    line = change
  end
  return json().encode(line) .. "\n"
end

-- Checks that dir is a writable directory (before anything is fetched).
function M.check_dir(dir)
  local probe = dir .. "/.dvlua-probe"
  local f = io.open(probe, "wb")
  if not f then fail("cannot write into directory %s", dir) end
  f:close()
  os.remove(probe)
end

-- Syncs one planned job into DIR/<table>.jsonl with its state in DIR/<table>.state.
function M.sync_table(org, dir, job, o, stats)
  local meta = job.meta
  local name = job.into or meta.name
  stats = stats or sync.new_stats(name)
  stats.state = "running"
  local out_path, state_path = dir .. "/" .. name .. ".jsonl", dir .. "/" .. name .. ".state"
  local lock <close> = M.lock(out_path)
  local out <close> = M.open_output(out_path)
  local st = M.read_state(state_path) or {}
  local wanted = {}
  for _, c in ipairs(job.cols) do wanted[#wanted + 1] = sync.wire_name(c) end
  local function write(s)
    local ok, err = out:write(s)
    if not ok then fail("cannot write %s: %s", out_path, tostring(err)) end
  end
  local function run(load, resume, reason)
    local req = { entity = meta.name, columns = wanted, since = (not load) and st.token or nil, page_size = o.page_size,
      resume = resume }
    if load and not resume then write(json().encode { type = "full_sync", reason = reason } .. "\n") end
    local n = 0
    local token = sync.each_change(org, req, function(change)
      write(M.line(change, meta.id))
      n = n + 1
      if change.type == "removed_or_deleted" then
        stats.deleted = stats.deleted + 1
      elseif load then
        stats.inserted = stats.inserted + 1
      else
        stats.updated = stats.updated + 1
      end
    end, function()
      stats.pages = stats.pages + 1
      stats.rows = stats.rows + n
      if o.progress then o.progress:rows(stats, n) end
      n = 0
      if req.next_link then
        M.write_state(state_path, { token = st.token, phase = load and "load" or "delta", cursor = req.next_link })
      else
        M.write_state(state_path, { token = req.token })
      end
    end)
    return token
  end
  local load = st.token == nil or o.full
  local resume = st.cursor
  if resume then
    stats.resumed = true
    load = st.phase == "load"
  end
  stats.full = load
  local ok, err = pcall(run, load, resume, st.token and "reload" or "first load")
  if not ok and resume and stats.pages == 0 and not sync.is_interrupt(err) and type(err) == "table"
    and tonumber(err.status) and tonumber(err.status) >= 400 and tonumber(err.status) < 500 then
    stats.restarted, stats.resumed = true, false
    ok, err = pcall(run, load, nil, st.token and "reload" or "first load")
  end
  if not ok and not load and stats.pages == 0 and sync.is_expired(err) then
    stats.expired, stats.full = true, true
    st.token = nil
    ok, err = pcall(run, true, nil, "token expired")
  end
  if not ok then error(err, 0) end
  stats.token = err
  if stats.resumed then
    -- The resumed stage ended at the snapshot its first page pinned: catch up to now.
    st = { token = stats.token }
    stats.token = run(false, nil)
  end
  stats.state = "done"
  stats.elapsed = sync.now() - stats.started
  return stats
end

return M
