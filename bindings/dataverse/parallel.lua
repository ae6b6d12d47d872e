-- org:parallel(tasks [, opts]): runs functions as coroutines whose requests overlap. Every
-- request a task makes through the connection (conn:send, conn:call, conn:change_page, so every
-- operation built on them) is queued on the connection's multi driver (src/multi.c) and the
-- task yields until its answer is in; this scheduler resumes tasks as their answers arrive.
-- The number of requests in flight is the connection's budget (x-ms-dop-hint, 429s), not the
-- number of tasks.
local core = require "dataverse.core"
local U = require "dataverse.util"

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

function M.install(methods)
  function methods:parallel(tasks, opts)
    U.check_table(tasks, 1, "parallel")
    opts = U.opt_table(opts, 2, "parallel")
    for k in pairs(opts) do
      if k ~= "concurrency" then U.argerror(2, "parallel", "unknown option '" .. tostring(k) .. "'") end
    end
    local limit = U.opt(opts, "concurrency", "integer", "parallel", 2)
    if limit and limit < 1 then
      U.argerror(2, "parallel", "option 'concurrency': 1 or more expected")
    end
    local keys = task_keys(tasks)
    for _, k in ipairs(keys) do
      if type(tasks[k]) ~= "function" then
        U.argerror(1, "parallel", ("tasks[%s]: function expected, got %s"):format(tostring(k), type(tasks[k])))
      end
    end
    limit = math.tointeger(limit) or #keys

    local st = self:state()
    st.tasks = st.tasks or setmetatable({}, { __mode = "k" })
    local registry = st.tasks
    local results = {}
    local waiting = {} -- request id -> { co, key }
    local running, nexti = 0, 1

    local function settle(co, key, ok, a, b)
      if coroutine.status(co) == "dead" then
        registry[co] = nil
        running = running - 1
        if ok then
          results[key] = { ok = true, value = a }
        else
          results[key] = { ok = false, error = a }
        end
      elseif ok and a == WAITING then
        waiting[b] = { co, key }
      else
        -- The task yielded for its own reasons: this scheduler cannot know when to resume it.
        registry[co] = nil
        running = running - 1
        coroutine.close(co)
        results[key] = { ok = false, error = U.new_error(0, "usage",
          "a task of parallel yielded outside a request (wrap your own coroutines with coroutine.wrap inside the task)") }
      end
    end

    while true do
      while running < limit and nexti <= #keys do
        local key = keys[nexti]
        nexti = nexti + 1
        local co = coroutine.create(tasks[key])
        registry[co] = true
        running = running + 1
        settle(co, key, coroutine.resume(co))
      end
      if running == 0 then break end
      local ids = {}
      for id in pairs(waiting) do ids[#ids + 1] = id end
      for _, id in ipairs(self:_pump(ids)) do
        local w = waiting[id]
        waiting[id] = nil
        settle(w[1], w[2], coroutine.resume(w[1]))
      end
    end
    return results
  end
end

return M
