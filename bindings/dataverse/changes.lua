-- Change tracking: retrieve_entity_changes (one page per call, like the SDK's
-- RetrieveEntityChangesRequest) and changes (a streaming iterator over every page). Each
-- page is fetched, decoded and classified in C (conn:change_page); this file only drives
-- the paging and decides when a token may be handed out.
local core = require "dataverse.core"
local U = require "dataverse.util"
local O = require "dataverse.options"

local M = {}

-- The first URL and the Prefer header (repeated on every nextLink request).
local function start(org, e, opts, fname)
  local cols = opts.columns
  local page_size = opts.page_size or org:state().page_size or 5000
  local token = opts[fname == "changes" and "since" or "data_version"]
  if token == "" then token = nil end
  local url = e.set .. U.query { { "$select", cols and U.columns(cols, fname, 1) }, { "$deltatoken", token } }
  return url, U.request_headers(opts,
    { Prefer = "odata.track-changes,odata.maxpagesize=" .. math.tointeger(page_size) }, fname, 1)
end

-- For engines that keep their own state per page (dataverse.sync): fn(changes, next_link,
-- token) for each page of a change-tracking read, where opts are retrieve_entity_changes's
-- (already checked). Each next page is asked for as soon as the previous one has arrived,
-- so the server builds it while fn decodes and writes this one; a page is fetched again
-- only when fn returned. An error of fn drops the request made ahead and is raised as is.
function M.each_page(org, opts, fn)
  local e = U.entity(org, opts.entity, "retrieve_entity_changes", 1)
  local url, headers = start(org, e, opts, "retrieve_entity_changes")
  url = opts.paging_cookie or url
  local ahead, pages = nil, 0
  while url do
    local t0 = core.now()
    local from, id = url, ahead
    ahead = nil
    local changes, next_link, token
    changes, next_link, token, ahead = org:change_page(url, headers, e.logical, true, id)
    pages = pages + 1
    U.page_event(org, { table = e.logical, url = from, page = pages, rows = #changes,
      more = next_link ~= nil, elapsed = core.now() - t0 })
    local ok, err = pcall(fn, changes, next_link, token)
    if not ok then
      if ahead then org:_cancel(ahead) end
      error(err, 0)
    end
    url = next_link
  end
end

function M.install(methods)
  function methods:retrieve_entity_changes(opts)
    U.check_table(opts, 1, "retrieve_entity_changes")
    U.check_options(opts, O.retrieve_entity_changes, "retrieve_entity_changes", 1)
    local e = U.entity(self, opts.entity, "retrieve_entity_changes", 1)
    local url, headers = start(self, e, opts, "retrieve_entity_changes")
    local cookie = opts.paging_cookie
    local t0 = core.now()
    local changes, next_link, token = self:change_page(cookie or url, headers, e.logical)
    U.page_event(self, { table = e.logical, url = cookie or url, page = 1, rows = #changes,
      more = next_link ~= nil, elapsed = core.now() - t0 })
    return {
      changes = changes,
      more_records = next_link ~= nil,
      paging_cookie = next_link,
      data_token = token,
    }
  end

  -- for change in it do … end; it.token holds the new token once every page was delivered.
  --
  -- Memory stays at one page whatever the table's size: delivered changes are let go, and
  -- between pages a full collection clears what the last page left behind, while the next
  -- page is already on its way (each page is asked for as soon as the previous one has
  -- arrived, before it is decoded), so the collection costs no waiting on a real service.
  function methods:changes(opts)
    U.check_table(opts, 1, "changes")
    U.check_options(opts, O.changes, "changes", 1)
    local e = U.entity(self, opts.entity, "changes", 1)
    local url, headers = start(self, e, opts, "changes")
    local org, logical = self, e.logical
    local page, i = nil, 0
    local pending -- the new token, held back until the last page's rows were all handed out
    local ahead -- the request already made for url, if any
    local it = { token = nil, pages = 0 }
    local function step()
      while true do
        if page then
          i = i + 1
          local change = page[i]
          if change ~= nil then
            page[i] = nil -- delivered changes can be collected: one page in memory at most
            return change
          end
          page = nil
          if url then collectgarbage() end
        end
        if not url then
          it.token = pending
          return nil
        end
        local t0 = core.now()
        local from, id = url, ahead
        ahead = nil
        page, url, pending, ahead = org:change_page(url, headers, logical, true, id)
        i = 0
        it.pages = it.pages + 1
        U.page_event(org, { table = logical, url = from, page = it.pages, rows = #page,
          more = url ~= nil, elapsed = core.now() - t0 })
      end
    end
    -- A loop left early leaves the next page's request behind: it goes with the iterator.
    return setmetatable(it, { __call = step, __gc = function() if ahead then org:_cancel(ahead) end end })
  end
end

return M
