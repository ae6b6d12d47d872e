-- Solutions and alternate keys: import_solution, solution, uninstall_solution,
-- entity_keys, wait_for_key.
local core = require "dataverse.core"
local U = require "dataverse.util"
local O = require "dataverse.options"

local M = {}

local function solution_bytes(path)
  local data, err = core.read_solution(path)
  if not data then U.raise(0, "solution", err) end
  return data
end

local function find_solution(org, unique_name)
  local _, _, body = org:call("GET", "solutions" .. U.query {
    { "$filter", "uniquename eq " .. core.literal(unique_name) },
  })
  local row = body and body.value and body.value[1]
  return row and U.clean_row(row) or nil
end

function M.install(methods)
  function methods:import_solution(path, opts)
    U.check_string(path, 1, "import_solution")
    opts = U.check_options(opts, O.import_solution, "import_solution", 2)
    local overwrite, publish, timeout = opts.overwrite, opts.publish_workflows, opts.timeout
    local data = solution_bytes(path)
    local job = U.new_guid()
    local body = core.json_encode {
      OverwriteUnmanagedCustomizations = overwrite or false,
      PublishWorkflows = publish or false,
      CustomizationFile = core.base64(data),
      ImportJobId = job,
    }
    data = nil
    -- ImportSolution answers when the import has finished (or failed, with the reason).
    local t0 = core.now()
    local ok, err = pcall(self.call, self, "POST", "ImportSolution", body)
    if not ok then error(err, 2) end
    if timeout and core.now() - t0 > timeout then
      U.raise(0, "timeout", ("the import of %s took longer than %g s"):format(path, timeout))
    end
    return job
  end

  function methods:solution(unique_name)
    U.check_string(unique_name, 1, "solution")
    return find_solution(self, unique_name)
  end

  function methods:uninstall_solution(unique_name)
    U.check_string(unique_name, 1, "uninstall_solution")
    local row = find_solution(self, unique_name)
    if not row then return false end
    self:call("DELETE", "solutions(" .. row.solutionid .. ")")
    -- The tables the solution brought are gone: forget what was cached about them.
    local st = self:state()
    st.entities, st.all_sets = nil, nil
    return true
  end

  function methods:entity_keys(tbl)
    local e = U.entity(self, tbl, "entity_keys", 1)
    local _, _, body = self:call("GET", "EntityDefinitions(LogicalName="
      .. core.pct(core.literal(e.logical), "path") .. ")/Keys")
    local keys = {}
    for _, k in ipairs(body and body.value or {}) do
      keys[#keys + 1] = {
        name = k.LogicalName,
        schema_name = k.SchemaName,
        attributes = k.KeyAttributes,
        status = k.EntityKeyIndexStatus,
      }
    end
    return keys
  end

  function methods:wait_for_key(tbl, key_name, opts)
    local e = U.entity(self, tbl, "wait_for_key", 1)
    U.check_string(key_name, 2, "wait_for_key")
    opts = U.check_options(opts, O.wait_for_key, "wait_for_key", 3)
    local timeout = opts.timeout or 300
    local interval = opts.interval or 0.25
    local on_progress = opts.on_progress
    local t0 = core.now()
    local reactivated = false
    local pause = interval
    while true do
      local key
      for _, k in ipairs(self:entity_keys(e.logical)) do
        if k.name == key_name then key = k end
      end
      if not key then
        U.raise(404, "0x80040217", ("table '%s' has no alternate key '%s'"):format(e.logical, key_name))
      end
      local elapsed = core.now() - t0
      if on_progress then on_progress(key.status, elapsed, key) end
      if key.status == "Active" then return key end
      if key.status == "Failed" then
        if reactivated then
          U.raise(0, "key_failed", ("the index of key '%s' on '%s' failed again after reactivation")
            :format(key_name, e.logical))
        end
        self:call("POST", "ReactivateEntityKey",
          { EntityLogicalName = e.logical, EntityKeyLogicalName = key_name })
        reactivated = true
      end
      if elapsed >= timeout then
        U.raise(0, "timeout", ("key '%s' on '%s' is still %s after %g s")
          :format(key_name, e.logical, tostring(key.status), timeout))
      end
      core.sleep(math.min(pause, math.max(0, timeout - elapsed)))
      pause = math.min(pause * 1.5, 2)
    end
  end
end

return M
