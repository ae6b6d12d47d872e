-- The options each function of the API takes: name -> kind (the kinds U.check_options knows).
-- One table for the checker, for `dataverse._options` and for spec/docs_spec.lua, which
-- compares it with the option tables in docs/API.md so that code and docs cannot drift.
local M = {}

-- What every request can carry.
local REQUEST = { headers = "headers", caller_id = "guid", caller_object_id = "guid" }
-- What every write can carry on top.
local WRITE = { bypass_custom_logic = "boolean|string" }

local function spec(...)
  local out = {}
  for _, t in ipairs { ... } do
    for k, v in pairs(t) do out[k] = v end
  end
  return out
end

M.connect = {
  url = "string", token = "string", tenant_id = "string", client_id = "string",
  client_secret = "string", device_code = "boolean", authority_host = "string",
  emulator = "table|userdata", timeout = "number", retries = "integer", concurrency = "integer",
  page_size = "integer",
  trace = "boolean", on_request = "function", on_retry = "function", on_page = "function",
  allow_insecure_http = "boolean",
}

M.create = spec(REQUEST, WRITE, { return_row = "boolean", columns = "list", annotations = "boolean|string" })
M.retrieve = spec(REQUEST, { columns = "list", annotations = "boolean|string" })
M.update = spec(REQUEST, WRITE, {
  if_match = "string", return_row = "boolean", columns = "list", annotations = "boolean|string",
})
M.upsert = spec(REQUEST, WRITE, {
  if_match = "string", return_row = "boolean", columns = "list", annotations = "boolean|string",
})
M.delete = spec(REQUEST, WRITE, { if_match = "string" })
M.query = spec(REQUEST, {
  columns = "list", filter = "string", orderby = "list", top = "integer", page_size = "integer",
  annotations = "boolean|string",
})
M.count = spec(REQUEST, { filter = "string" })
M.execute = spec(REQUEST, WRITE, { method = "string" })
M.changes = { entity = "string", columns = "list", since = "string", page_size = "integer", headers = "headers" }
M.retrieve_entity_changes = {
  entity = "string", columns = "list", data_version = "string", page_size = "integer",
  paging_cookie = "string", headers = "headers",
}
M.import_solution = { overwrite = "boolean", publish_workflows = "boolean", timeout = "number" }
M.wait_for_key = { timeout = "number", interval = "number", on_progress = "function" }
M.pretty = { depth = "number", items = "number", width = "number", indent = "string", text = "number" }
M.parallel = { concurrency = "integer", on_progress = "function" }
M.wait = { concurrency = "integer", on_progress = "function" }
M.create_many = { batch_size = "integer", continue_on_error = "boolean", retries = "integer", on_progress = "function" }
M.update_many = { batch_size = "integer", continue_on_error = "boolean", retries = "integer", on_progress = "function", key = "list" }
M.upsert_many = { batch_size = "integer", continue_on_error = "boolean", retries = "integer", on_progress = "function", key = "list" }
M.delete_many = { batch_size = "integer", continue_on_error = "boolean", retries = "integer", on_progress = "function", key = "list" }
M.batch = { continue_on_error = "boolean" }

return M
