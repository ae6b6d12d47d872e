-- Change tracking: retrieve_entity_changes (one page per call, like the SDK's
-- RetrieveEntityChangesRequest) and changes (a streaming iterator over every page).
local U = require "dataverse.util"

local M = {}

local function first_request(org, e, opts, fname)
  local cols = U.opt(opts, "columns", "list", fname, 1)
  local page_size = U.opt(opts, "page_size", "integer", fname, 1) or org:state().page_size or 5000
  local prefer = "odata.track-changes,odata.maxpagesize=" .. math.tointeger(page_size)
  return cols and U.columns(cols, fname, 1), { Prefer = prefer }
end

-- Fetches one page; returns the decoded body (its value array untouched) and the
-- headers to repeat on the next page.
local function fetch(org, url, headers)
  local _, _, body = org:call("GET", url, nil, headers)
  if type(body) ~= "table" then U.raise(0, "response", "a change page was not a JSON object") end
  return body
end

local function is_deleted(row)
  local ctx = row["@odata.context"]
  return (ctx and ctx:find("$deletedEntity", 1, true)) or (row.reason == "deleted" and row.id)
end

-- Turns one row of a change page into a change, in place of allocating more than one table.
local function classify(row, logical)
  if is_deleted(row) then
    return { type = "removed_or_deleted", id = row.id, table = logical }
  end
  row["@odata.context"] = nil
  return { type = "new_or_updated", row = row }
end

local function start_url(org, e, opts, fname)
  local cols, headers = first_request(org, e, opts, fname)
  local token = U.opt(opts, "data_version", "string", fname, 1)
  if token == nil and fname == "changes" then token = U.opt(opts, "since", "string", fname, 1) end
  if token == "" then token = nil end
  return e.set .. U.query { { "$select", cols }, { "$deltatoken", token } }, headers
end

function M.install(methods)
  function methods:retrieve_entity_changes(opts)
    U.check_table(opts, 1, "retrieve_entity_changes")
    local e = U.entity(self, opts.entity, "retrieve_entity_changes", 1)
    local url, headers = start_url(self, e, opts, "retrieve_entity_changes")
    local cookie = U.opt(opts, "paging_cookie", "string", "retrieve_entity_changes", 1)
    if cookie then url = cookie end
    local body = fetch(self, url, headers)
    local changes = body.value or {}
    for i = 1, #changes do changes[i] = classify(changes[i], e.logical) end
    local next_link = body["@odata.nextLink"]
    local delta = body["@odata.deltaLink"]
    return {
      changes = changes,
      more_records = next_link ~= nil,
      paging_cookie = next_link,
      data_token = not next_link and delta and U.query_value(delta, "$deltatoken") or nil,
    }
  end

  -- for change in it do … end; it.token holds the new token once every page was delivered.
  function methods:changes(opts)
    U.check_table(opts, 1, "changes")
    local e = U.entity(self, opts.entity, "changes", 1)
    local url, headers = start_url(self, e, opts, "changes")
    local org = self
    local page, i = nil, 0
    local pending -- the new token, held back until the last page's rows were all handed out
    local it = { token = nil, pages = 0 }
    local function step()
      while true do
        if page then
          i = i + 1
          local row = page[i]
          if row ~= nil then
            page[i] = nil -- delivered rows can be collected: one page in memory at most
            return classify(row, e.logical)
          end
          page = nil
        end
        if not url then
          it.token = pending
          return nil
        end
        local body = fetch(org, url, headers)
        page, i = body.value or {}, 0
        it.pages = it.pages + 1
        url = body["@odata.nextLink"]
        if not url then
          local delta = body["@odata.deltaLink"]
          if not delta then U.raise(0, "response", "the last change page carried no deltaLink") end
          pending = U.query_value(delta, "$deltatoken")
        end
      end
    end
    return setmetatable(it, { __call = function() return step() end })
  end
end

return M
