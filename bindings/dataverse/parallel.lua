-- org:parallel(tasks [, opts]): runs functions as coroutines whose requests overlap. Every
-- request a task makes through the connection (conn:send, conn:call, conn:change_page, so every
-- operation built on them) is queued on the connection's multi driver (src/multi.c) and the
-- task yields until its answer is in; this scheduler resumes tasks as their answers arrive.
-- The number of requests in flight is the connection's budget (x-ms-dop-hint, 429s), not the
-- number of tasks.
local core = require "dataverse.core"
local U = require "dataverse.util"
local O = require "dataverse.options"

local M = {}

local WAITING = core.waiting

-- Task keys in a stable order: 1..#tasks, then the other keys sorted by their text.
local function task_keys(tasks)
  local keys, n = {}, #tasks
  for i = 1, n do keys[i] = i end
  local others = {}
  for k in pairs(tasks) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then others[#others + 1] = k end
  end
  table.sort(others, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(others) do keys[#keys + 1] = k end
  return keys
end

-- A group of tasks run by one scheduler loop. Tasks can be added while it runs.
local function new_group(org, limit)
  local st = org:state()
  st.tasks = st.tasks or setmetatable({}, { __mode = "k" })
  return { org = org, registry = st.tasks, limit = limit, keys = {}, fns = {}, results = {},
    waiting = {}, running = 0, nexti = 1 }
end

local function add(g, key, fn)
  g.keys[#g.keys + 1] = key
  g.fns[#g.keys] = fn
end

local function settle(g, co, key, ok, a, b)
  if not ok and U.is_interrupt(a) then
    -- Ctrl-C ends the whole group and the script, not just this task.
    for _, w in pairs(g.waiting) do
      g.registry[w[1]] = nil
      coroutine.close(w[1])
    end
    g.registry[co] = nil
    error(a:find(":%d+: interrupted!$") and a or U.where() .. a, 0)
  end
  if coroutine.status(co) == "dead" then
    g.registry[co] = nil
    g.running = g.running - 1
    if ok then
      g.results[key] = { ok = true, value = a }
    else
      g.results[key] = { ok = false, error = a }
    end
  elseif ok and a == WAITING then
    g.waiting[b] = { co, key }
  else
    -- The task yielded for its own reasons: this scheduler cannot know when to resume it.
    g.registry[co] = nil
    g.running = g.running - 1
    coroutine.close(co)
    g.results[key] = { ok = false, error = U.new_error(0, "usage",
      "a task yielded outside a request (wrap your own coroutines with coroutine.wrap inside the task)") }
  end
end

local function run(g)
  while true do
    while g.running < (g.limit or math.huge) and g.nexti <= #g.keys do
      local i = g.nexti
      g.nexti = i + 1
      local co = coroutine.create(g.fns[i])
      g.fns[i] = nil
      g.registry[co] = true
      g.running = g.running + 1
      settle(g, co, g.keys[i], coroutine.resume(co))
    end
    if g.running == 0 then break end
    local ids = {}
    for id in pairs(g.waiting) do ids[#ids + 1] = id end
    for _, id in ipairs(g.org:_pump(ids)) do
      local w = g.waiting[id]
      g.waiting[id] = nil
      settle(g, w[1], w[2], coroutine.resume(w[1]))
    end
    if g.on_progress then g.on_progress() end
  end
  return g.results
end

function M.install(methods)
  function methods:parallel(tasks, opts)
    U.check_table(tasks, 1, "parallel")
    opts = U.check_options(opts, O.parallel, "parallel", 2)
    local limit, on_progress = opts.concurrency, opts.on_progress
    if limit and limit < 1 then
      U.argerror(2, "parallel", "option 'concurrency': 1 or more expected")
    end
    local keys = task_keys(tasks)
    for _, k in ipairs(keys) do
      if type(tasks[k]) ~= "function" then
        U.argerror(1, "parallel", ("tasks[%s]: function expected, got %s"):format(tostring(k), type(tasks[k])))
      end
    end
    local g = new_group(self, math.tointeger(limit))
    g.on_progress = on_progress
    for _, k in ipairs(keys) do add(g, k, tasks[k]) end
    return run(g)
  end

  -- org:spawn(fn) -> n: queues fn as the n-th task of the connection's own group, which
  -- org:wait() runs; a running task may spawn more.
  function methods:spawn(fn)
    if type(fn) ~= "function" then U.argerror(1, "spawn", "function expected, got " .. type(fn)) end
    local st = self:state()
    st.spawned = st.spawned or new_group(self, nil)
    add(st.spawned, #st.spawned.keys + 1, fn)
    return #st.spawned.keys
  end

  -- org:wait([{concurrency=}]) -> results of every spawned task, in spawn order.
  function methods:wait(opts)
    opts = U.check_options(opts, O.wait, "wait", 1)
    local limit, on_progress = opts.concurrency, opts.on_progress
    if limit and limit < 1 then U.argerror(1, "wait", "option 'concurrency': 1 or more expected") end
    local st = self:state()
    local g = st.spawned
    if not g then return {} end
    if g.active then U.argerror(1, "wait", "already waiting (a spawned task may spawn, not wait)") end
    g.limit = math.tointeger(limit)
    g.on_progress = on_progress
    g.active = true
    local ok, res = pcall(run, g)
    st.spawned = nil
    if not ok then error(res, 0) end
    return res
  end
end

return M
