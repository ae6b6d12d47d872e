-- Bulk writes: create_many, update_many, upsert_many, delete_many. Rows go in chunks, each
-- chunk as a bulk operation message (CreateMultiple, UpdateMultiple, UpsertMultiple,
-- DeleteMultiple) where the table offers it and as a $batch change set otherwise; a chunk
-- the service refuses as a whole is retried row by row in a $batch with
-- odata.continue-on-error, so each row gets its own result. Chunks run through org:parallel
-- when the connection has it (one concurrency budget per connection), one by one otherwise.
--
-- Retries never write a row twice: create_many gives every row its primary id before the
-- first try, and a chunk retried after a dropped connection or throttling is sent as an
-- upsert by those ids; update and upsert are idempotent; a delete retried after a drop
-- counts "does not exist" as deleted.
local core = require "dataverse.core"
local U = require "dataverse.util"
local B = require "dataverse.batch"
local O = require "dataverse.options"

local M = {}

-- "Use bulk operation messages": about 1,000 records per request is the place to start for
-- standard tables; a $batch holds at most 1,000 requests.
M.DEFAULT_BATCH_SIZE = 1000
M.DEFAULT_RETRIES = 5

local ACTION = { create = "CreateMultiple", update = "UpdateMultiple", upsert = "UpsertMultiple",
  delete = "DeleteMultiple" }

-- Bounds the option checker does not know about.
local function check_options(fname, opts, n)
  opts = U.check_options(opts, O[fname], fname, n)
  local bs = opts.batch_size
  if bs and (bs < 1 or bs > B.MAX_REQUESTS) then
    U.argerror(n, fname, ("option 'batch_size': 1 to %d expected, got %s"):format(B.MAX_REQUESTS, tostring(bs)))
  end
  if opts.retries and opts.retries < 0 then
    U.argerror(n, fname, "option 'retries': 0 or more expected")
  end
  return opts
end

local function key_list(v)
  if v == nil then return nil end
  if type(v) == "string" then v = { v } end
  local out = {}
  for i, c in ipairs(v) do
    if not core.is_identifier(c) then
      U.argerror(3, "key", ("key[%d]: '%s' is not a column name"):format(i, tostring(c)))
    end
    out[i] = c
  end
  return out
end

-- Checks every row before anything is sent; returns the key columns (or nil).
local function validate(op, fname, e, rows, key)
  if type(rows) ~= "table" then U.argerror(2, fname, "table (a list of rows) expected, got " .. type(rows)) end
  local n = #rows
  for k in pairs(rows) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      U.argerror(2, fname, ("a list of rows expected (found key %s)"):format(tostring(k)))
    end
  end
  for i = 1, n do
    local row = rows[i]
    if op == "delete" then
      if type(row) == "table" and key then
        for _, c in ipairs(key) do
          if row[c] == nil then
            U.argerror(2, fname, ("rows[%d]: key column '%s' is missing"):format(i, c))
          end
        end
      else
        local k, msg = core.key(row)
        if not k then U.argerror(2, fname, ("rows[%d]: %s"):format(i, msg)) end
      end
    else
      if type(row) ~= "table" then
        U.argerror(2, fname, ("rows[%d]: table expected, got %s"):format(i, type(row)))
      end
      for f in pairs(row) do
        if type(f) ~= "string" or (not core.is_identifier(f) and not f:find("@", 1, true)) then
          U.argerror(2, fname, ("rows[%d]: '%s' is not a column name"):format(i, tostring(f)))
        end
      end
      if key then
        for _, c in ipairs(key) do
          if row[c] == nil then
            U.argerror(2, fname, ("rows[%d]: key column '%s' is missing"):format(i, c))
          end
        end
      elseif op == "update" or op == "upsert" then
        local id = row[e.id]
        if id == nil then
          U.argerror(2, fname, ("rows[%d]: the primary id column '%s' is missing (or give option 'key')")
            :format(i, e.id))
        end
      end
      local id = row[e.id]
      if id ~= nil and not core.is_guid(tostring(id)) then
        U.argerror(2, fname, ("rows[%d]: '%s' is not a GUID"):format(i, e.id))
      end
    end
  end
end

local function key_of(row, key)
  local t = {}
  for _, c in ipairs(key) do t[c] = row[c] end
  return t
end

-- The "(…)" text addressing row i of the job, or nil for a create.
local function address(job, i)
  local row = job.rows[i]
  if job.op == "delete" then
    if type(row) == "table" and job.key then return "(" .. core.key(key_of(row, job.key)) .. ")" end
    return "(" .. core.key(row) .. ")"
  end
  if job.key then return "(" .. core.key(key_of(row, job.key)) .. ")" end
  local id = job.ids[i]
  return id and ("(" .. id .. ")") or nil
end

local function target(job, i, with_id)
  local src, t = job.rows[i], {}
  for k, v in pairs(src) do t[k] = v end
  t["@odata.type"] = "Microsoft.Dynamics.CRM." .. job.e.logical
  if with_id and job.ids[i] then t[job.e.id] = job.ids[i] end
  return t
end

local function retryable(err)
  if type(err) ~= "table" then return false end
  local s = err.status or 0
  return (s == 0 and (err.code == "transport" or err.code == "maybe_applied" or err.code == "response"
    or err.code == "json"))
    or s == 429 or s == 503 or s == 502 or s == 504
end

local function set_ok(job, i, created)
  local r = { id = job.ids[i], created = created }
  if job.op == "delete" then r = { id = job.ids[i], deleted = true } end
  job.results[i] = r
end

-- The chunk as one bulk operation message; true when done, false when the message is not
-- offered for the table, or nil, err when the service refused the chunk as a whole.
local function send_bulk(org, job, c, retry)
  local op = job.op
  local action = ACTION[op]
  if op == "create" and retry then action = "UpsertMultiple" end
  -- Whether the table offers the message is learnt once per connection.
  local st = org:state()
  st.bulk_unsupported = st.bulk_unsupported or {}
  local cache_key = job.e.logical .. "/" .. action
  if st.bulk_unsupported[cache_key] then return false end
  local targets = {}
  for i = c.from, c.to do
    if op == "delete" then
      local t = { ["@odata.type"] = "Microsoft.Dynamics.CRM." .. job.e.logical }
      local row = job.rows[i]
      if type(row) == "table" then
        for k, v in pairs(row) do t[k] = v end
      else
        t[job.e.id] = row
      end
      targets[#targets + 1] = t
    else
      local t = target(job, i, op == "create" or not job.key)
      if job.key then t["@odata.id"] = job.e.set .. address(job, i) end
      targets[#targets + 1] = t
    end
  end
  local status, _, text = org:send("POST", job.e.set .. "/Microsoft.Dynamics.CRM." .. action,
    core.json_encode { Targets = targets })
  if status < 300 then
    local created
    if op == "create" and not retry then created = true elseif op == "update" then created = false end
    for i = c.from, c.to do set_ok(job, i, created) end
    return true
  end
  local ok, v = pcall(core.json_decode, text)
  local e = ok and type(v) == "table" and v.error or {}
  local err = U.new_error(status, e.code or "http", e.message or ("HTTP " .. status))
  if status == 404 and tostring(e.message):find("Microsoft.Dynamics.CRM." .. action, 1, true) then
    st.bulk_unsupported[cache_key] = true
    return false
  end
  if retryable(err) then error(err, 0) end
  return nil, err
end

-- The request that writes row i alone (in a change set or row by row).
local function row_request(job, i, retry)
  local set = job.e.set
  local op = job.op
  if op == "create" then
    if retry then return { method = "PATCH", path = set .. "(" .. job.ids[i] .. ")", body = target(job, i, true) } end
    return { method = "POST", path = set, body = target(job, i, true) }
  elseif op == "update" then
    return { method = "PATCH", path = set .. address(job, i), body = target(job, i, not job.key),
      headers = { ["If-Match"] = "*" } }
  elseif op == "upsert" then
    return { method = "PATCH", path = set .. address(job, i), body = target(job, i, not job.key) }
  else
    return { method = "DELETE", path = set .. address(job, i) }
  end
end

local function take_result(job, i, r, retry)
  if not r.error then
    local created = nil
    if job.op == "create" then created = not retry or nil end
    if job.op == "update" then created = false end
    set_ok(job, i, created)
    if not job.ids[i] and r.id then job.results[i].id = r.id end
  elseif job.op == "delete" and retry and r.status == 404 then
    set_ok(job, i) -- deleted by the try whose answer was lost
  else
    job.results[i] = { error = r.error }
  end
end

-- The chunk as one $batch change set: true when written, nil, err when rolled back.
local function send_changeset(org, job, c, retry)
  local reqs = {}
  for i = c.from, c.to do reqs[#reqs + 1] = row_request(job, i, retry) end
  local results = B.send(org, { { changeset = reqs } }, false)
  local first_err -- the failing request's own error, not a "rolled_back" of its neighbours
  for _, r in ipairs(results) do
    if r.error and (not first_err or first_err.code == "rolled_back") then first_err = r.error end
  end
  if not first_err then
    for k, r in ipairs(results) do take_result(job, c.from + k - 1, r, retry) end
    return true
  end
  if retryable(first_err) then error(first_err, 0) end
  return nil, first_err
end

-- Row by row, in a $batch that goes on after errors: every row gets its own result.
local function send_rows(org, job, c, retry)
  local reqs = {}
  for i = c.from, c.to do reqs[#reqs + 1] = row_request(job, i, retry) end
  local results = B.send(org, reqs, true)
  local again = false
  for _, r in ipairs(results) do
    if r.error and retryable(r.error) then again = r.error end
  end
  if again then error(again, 0) end
  for k, r in ipairs(results) do take_result(job, c.from + k - 1, r, retry) end
end

local function fail_chunk(job, c, err)
  for i = c.from, c.to do
    if not job.results[i] then job.results[i] = { error = err } end
  end
end

local function run_chunk(org, job, c)
  if job.stop then return end
  local tries, retry = 0, false
  while true do
    local ok, err = pcall(function()
      local done, whole_err = send_bulk(org, job, c, retry)
      if done == false then done = nil end
      if not done and not whole_err then
        done, whole_err = send_changeset(org, job, c, retry)
      end
      if done then return end
      if not job.continue_on_error then
        fail_chunk(job, c, whole_err)
        job.stop = job.stop or c.from
        return
      end
      send_rows(org, job, c, retry)
    end)
    if ok then return end
    if not retryable(err) or tries >= job.retries then
      if type(err) ~= "table" then err = U.new_error(0, "error", tostring(err)) end
      fail_chunk(job, c, err)
      if not job.continue_on_error then job.stop = job.stop or c.from end
      return
    end
    tries = tries + 1
    retry = true
    local wait = (type(err) == "table" and tonumber(err.retry_after)) or math.min(8, 0.25 * 2 ^ tries)
    core.sleep(wait)
  end
end

-- n random bytes in one read (an id per row would otherwise open /dev/urandom per row).
local function random_bytes(n)
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(n)
  if f then f:close() end
  return b and #b == n and b or nil
end

-- The i-th version 4 GUID from a block of random bytes (U.new_guid without a block).
local function guid_at(block, i)
  if not block then return U.new_guid() end
  local x = { block:byte(16 * (i - 1) + 1, 16 * i) }
  x[7] = (x[7] & 0x0f) | 0x40
  x[9] = (x[9] & 0x3f) | 0x80
  return ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"):format(table.unpack(x))
end

local function run(org, op, fname, tbl, rows, opts)
  opts = check_options(fname, opts, 3)
  local e = U.entity(org, tbl, fname, 1)
  local key = key_list(opts.key)
  validate(op, fname, e, rows, key)
  local job = {
    op = op, e = e, rows = rows, key = key, ids = {}, results = {},
    continue_on_error = opts.continue_on_error ~= false,
    retries = opts.retries and math.tointeger(opts.retries) or M.DEFAULT_RETRIES,
    done = 0,
  }
  local n = #rows
  local random = op == "create" and random_bytes(16 * n) or nil
  for i = 1, n do
    local row = rows[i]
    if op == "delete" then
      if type(row) == "string" then job.ids[i] = core.key(row) end
    else
      local id = row[e.id]
      if id ~= nil then
        job.ids[i] = tostring(id):lower()
      elseif op == "create" then
        job.ids[i] = guid_at(random, i) -- so that a retry can never create the row twice
      end
    end
  end
  local size = opts.batch_size and math.tointeger(opts.batch_size) or M.DEFAULT_BATCH_SIZE
  local tasks, chunks = {}, {}
  for from = 1, n, size do
    local c = { from = from, to = math.min(n, from + size - 1) }
    chunks[#chunks + 1] = c
    tasks[#tasks + 1] = function()
      run_chunk(org, job, c)
      job.done = job.done + (c.to - c.from + 1)
      if opts.on_progress and not job.progress_error then
        -- The rows are written whatever the callback does; its error is raised at the end.
        local ok, err = pcall(opts.on_progress, job.done, n)
        if not ok then job.progress_error = err end
      end
    end
  end
  -- Chunks overlap through org:parallel, within the connection's request budget. Stopping at
  -- the first failed chunk means sending them one by one.
  if org.parallel and #tasks > 1 and job.continue_on_error then
    for k, r in ipairs(org:parallel(tasks)) do
      if not r.ok then
        local err = r.error
        if type(err) ~= "table" then err = U.new_error(0, "error", tostring(err)) end
        fail_chunk(job, chunks[k], err)
      end
    end
  else
    for _, t in ipairs(tasks) do
      if job.stop then break end
      t()
    end
  end
  local results = job.results
  local written, failed = 0, 0
  for i = 1, n do
    local r = results[i]
    if not r then
      results[i] = { error = U.new_error(0, "not_run", "not sent: an earlier chunk failed and continue_on_error is false") }
      failed = failed + 1
    elseif r.error then
      failed = failed + 1
    else
      written = written + 1
    end
  end
  results.written, results.failed = written, failed
  if job.stop then results.stopped_at = job.stop end
  if job.progress_error then error(job.progress_error, 0) end
  return results
end

function M.install(methods)
  function methods:create_many(tbl, rows, opts) return run(self, "create", "create_many", tbl, rows, opts) end
  function methods:update_many(tbl, rows, opts) return run(self, "update", "update_many", tbl, rows, opts) end
  function methods:upsert_many(tbl, rows, opts) return run(self, "upsert", "upsert_many", tbl, rows, opts) end
  function methods:delete_many(tbl, rows, opts) return run(self, "delete", "delete_many", tbl, rows, opts) end
end

return M
