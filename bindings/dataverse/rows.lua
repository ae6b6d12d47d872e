-- Row operations on a connection: whoami, create, retrieve, update, upsert, delete, query,
-- count, execute and the raw request escape hatch. Every options table is checked against
-- its list in dataverse/options.lua.
local core = require "dataverse.core"
local U = require "dataverse.util"
local O = require "dataverse.options"

-- Dataverse's $count answers at most this many.
local COUNT_CAP = 5000

-- Lookups are read as `_x_value` and written as `x@odata.bind`: a field that uses the read
-- spelling in a write is refused with the write spelling, before it reaches the server.
local function check_fields(fields, fname, n)
  for k, v in pairs(fields) do
    local nav = type(k) == "string" and k:match("^_([%w_]+)_value$")
    if nav then
      U.argerror(n, fname, ("field '%s' is how the lookup is read; write it as " ..
        "['%s@odata.bind'] = '/<entity set>(<guid>)', or dataverse.json.null to clear it")
        :format(k, nav))
    end
    if type(k) == "string" and k:match("@odata%.bind$") and core.is_guid(v) then
      U.argerror(n, fname, ("field '%s' needs a row address, '/<entity set>(%s)', not a bare GUID")
        :format(k, v))
    end
  end
end

local LOOKUP_TYPES = { Lookup = true, Customer = true, Owner = true }

-- A column the server does not know may be a lookup spelled by its logical name; if the
-- metadata says so, the error says how lookups are spelled. Returns err.
local function lookup_hint(org, e, err)
  if type(err) ~= "table" or err.status ~= 400 or type(err.message) ~= "string" then return err end
  local name = err.message:match("property named '([%w_]+)'") or err.message:match("property '([%w_]+)' does not exist")
  if not name or name:match("^_.*_value$") then return err end
  local ok, _, _, attr = pcall(org.call, org, "GET", "EntityDefinitions(LogicalName="
    .. core.pct(core.literal(e.logical), "path") .. ")/Attributes(LogicalName="
    .. core.pct(core.literal(name), "path") .. ")?$select=LogicalName,AttributeType")
  if ok and type(attr) == "table" and LOOKUP_TYPES[attr.AttributeType] then
    err.message = err.message .. (" ('%s' is a lookup: read it as '_%s_value' in columns, filters " ..
      "and rows; write it as '%s@odata.bind')"):format(name, name, name)
  end
  return err
end

-- org:call, with a lookup hint added to an error that may come from a misspelled lookup.
local function call(org, e, ...)
  local ok, status, h, body = pcall(org.call, org, ...)
  if not ok then error(lookup_hint(org, e, status), 0) end
  return status, h, body
end

-- On a write, columns and annotations shape the returned row: without return_row they
-- would be ignored, so they are refused.
local function check_return(opts, fname, n)
  for _, k in ipairs { "columns", "annotations" } do
    if opts[k] ~= nil and not opts.return_row then
      U.argerror(n, fname, ("option '%s' shapes the returned row: it needs return_row = true"):format(k))
    end
  end
end

-- "?$select=…" for the columns of a returned row, or "".
local function select_query(cols, fname, n)
  return U.query { { "$select", cols and U.columns(cols, fname, n) } }
end

return function(methods)
  function methods:whoami()
    local _, _, body = self:call("GET", "WhoAmI")
    return {
      UserId = body.UserId,
      BusinessUnitId = body.BusinessUnitId,
      OrganizationId = body.OrganizationId,
    }
  end

  local function id_from_headers(h)
    local loc = h["odata-entityid"] or h["location"]
    return loc and loc:match("%((%x+%-%x+%-%x+%-%x+%-%x+)%)%s*$")
  end

  function methods:create(tbl, fields, opts)
    U.check_table(fields, 2, "create")
    opts = U.check_options(opts, O.create, "create", 3)
    check_return(opts, "create", 3)
    check_fields(fields, "create", 2)
    local e = U.entity(self, tbl, "create", 1)
    local path, base = e.set, nil
    if opts.return_row then
      path = path .. select_query(opts.columns, "create", 3)
      base = { Prefer = "return=representation" }
    end
    local status, h, body = call(self, e, "POST", path, fields, U.request_headers(opts, base, "create", 3))
    local id = id_from_headers(h) or (type(body) == "table" and body[e.id])
    if not id then
      U.raise(status, "response", "the server did not say which id the new row got")
    end
    if opts.return_row then return id, type(body) == "table" and U.clean_row(body) or nil end
    return id
  end

  function methods:retrieve(tbl, id_or_key, opts)
    local e = U.entity(self, tbl, "retrieve", 1)
    local key = U.key(id_or_key, 2, "retrieve")
    opts = U.check_options(opts, O.retrieve, "retrieve", 3)
    local q = select_query(opts.columns, "retrieve", 3)
    local h = U.request_headers(opts, nil, "retrieve", 3)
    local ok, status, _, body = pcall(self.call, self, "GET", e.set .. key .. q, nil, h)
    if not ok then
      if type(status) == "table" and status.status == 404 then return nil end
      error(lookup_hint(self, e, status), 0)
    end
    return U.clean_row(body)
  end

  -- PATCH with the operation's own headers under the caller's; asks for the row when wanted.
  local function patch(org, fname, e, key, fields, opts, base)
    local path = e.set .. key
    if opts.return_row then
      path = path .. select_query(opts.columns, fname, 4)
      base.Prefer = "return=representation"
    end
    return call(org, e, "PATCH", path, fields, U.request_headers(opts, base, fname, 4))
  end

  function methods:update(tbl, id_or_key, fields, opts)
    local e = U.entity(self, tbl, "update", 1)
    local key = U.key(id_or_key, 2, "update")
    U.check_table(fields, 3, "update")
    opts = U.check_options(opts, O.update, "update", 4)
    check_return(opts, "update", 4)
    check_fields(fields, "update", 3)
    -- If-Match: * makes a PATCH an update only (the row must exist); an ETag narrows it to
    -- that version of the row.
    local _, _, body = patch(self, "update", e, key, fields, opts, { ["If-Match"] = "*" })
    if opts.return_row and type(body) == "table" then return U.clean_row(body) end
  end

  function methods:upsert(tbl, key, fields, opts)
    local e = U.entity(self, tbl, "upsert", 1)
    local k = U.key(key, 2, "upsert")
    U.check_table(fields, 3, "upsert")
    opts = U.check_options(opts, O.upsert, "upsert", 4)
    check_return(opts, "upsert", 4)
    check_fields(fields, "upsert", 3)
    -- return=representation is what tells a create (201) from an update (200).
    local o = opts
    if not opts.return_row then
      o = setmetatable({ return_row = true, columns = { e.id } }, { __index = opts })
    end
    local status, h, body = patch(self, "upsert", e, k, fields, o, {})
    local id = (type(body) == "table" and body[e.id]) or id_from_headers(h)
    if opts.return_row then
      return id, status == 201, type(body) == "table" and U.clean_row(body) or nil
    end
    return id, status == 201
  end

  function methods:delete(tbl, id_or_key, opts)
    local e = U.entity(self, tbl, "delete", 1)
    local key = U.key(id_or_key, 2, "delete")
    opts = U.check_options(opts, O.delete, "delete", 3)
    self:call("DELETE", e.set .. key, nil, U.request_headers(opts, nil, "delete", 3))
  end

  function methods:query(tbl, opts)
    local e = U.entity(self, tbl, "query", 1)
    opts = U.check_options(opts, O.query, "query", 2)
    local cols, filter, orderby, top = opts.columns, opts.filter, opts.orderby, opts.top
    local page_size = opts.page_size or self:state().page_size
    if type(orderby) == "table" then orderby = table.concat(orderby, ",") end
    local url = e.set .. U.query {
      { "$select", cols and U.columns(cols, "query", 2) },
      { "$filter", filter },
      { "$orderby", orderby },
      { "$top", top and math.tointeger(top) },
    }
    local headers = U.request_headers(opts,
      page_size and { Prefer = "odata.maxpagesize=" .. math.tointeger(page_size) }, "query", 2)
    local page, i = nil, 0
    local org = self
    local pages = 0

    -- One page in memory: rows are dropped from it as they are handed out.
    return function()
      while true do
        if page then
          i = i + 1
          local row = page[i]
          if row ~= nil then
            page[i] = nil
            return row
          end
          page = nil
        end
        if not url then return nil end
        local t0 = core.now()
        local _, _, body = call(org, e, "GET", url, nil, headers)
        page, i = body.value or {}, 0
        pages = pages + 1
        local next_link = body["@odata.nextLink"]
        U.page_event(org, { table = e.logical, url = url, page = pages, rows = #page,
          more = next_link ~= nil, elapsed = core.now() - t0 })
        url = next_link
      end
    end
  end

  -- Pages through the ids of the rows the filter selects: exact, one request per 5000 rows.
  local function count_by_paging(org, e, filter, h)
    local n = 0
    local url = e.set .. U.query { { "$select", e.id }, { "$filter", filter } }
    local headers = {}
    for k, v in pairs(h or {}) do headers[k] = v end
    headers.Prefer = (headers.Prefer and headers.Prefer .. "," or "") .. "odata.maxpagesize=5000"
    while url do
      local _, _, body = org:call("GET", url, nil, headers)
      n = n + #(body.value or {})
      url = body["@odata.nextLink"]
    end
    return n
  end

  -- $count is exact up to 5000. Beyond it a whole table is counted with
  -- RetrieveTotalRecordCount (the platform's periodically refreshed snapshot), a filtered
  -- count by paging through the ids.
  function methods:count(tbl, opts)
    local e = U.entity(self, tbl, "count", 1)
    opts = U.check_options(opts, O.count, "count", 2)
    local filter = opts.filter
    local h = U.request_headers(opts, nil, "count", 2)
    local _, _, body = call(self, e, "GET", e.set .. "/$count" .. U.query { { "$filter", filter } }, nil, h)
    local n = tonumber(type(body) == "string" and body:match("^%s*(%d+)") or body)
    if not n then U.raise(0, "response", "the server did not answer $count with a number") end
    n = math.tointeger(n) or n
    if n < COUNT_CAP then return n end
    if filter then return (count_by_paging(self, e, filter, h)) end
    local _, _, total = self:call("GET", "RetrieveTotalRecordCount(EntityNames="
      .. core.pct("['" .. e.logical .. "']", "path") .. ")", nil, h)
    local coll = type(total) == "table" and total.EntityRecordCountCollection
    local keys, values = coll and coll.Keys, coll and coll.Values
    for i, k in ipairs(type(keys) == "table" and keys or {}) do
      local v = type(values) == "table" and math.tointeger(values[i])
      if k == e.logical and v then
        -- The snapshot may lag behind; it is never below what $count already saw.
        return math.max(v, n)
      end
    end
    U.raise(0, "response", ("RetrieveTotalRecordCount gave no count for '%s'"):format(e.logical))
  end

  -- Functions answer GET; everything else given to execute is an action (POST).
  local FUNCTIONS = {
    WhoAmI = true, RetrieveVersion = true, RetrieveCurrentOrganization = true,
    RetrieveTotalRecordCount = true, RetrieveUserQueues = true, RetrieveOrganizationInfo = true,
  }

  function methods:execute(name, params, opts)
    U.check_string(name, 1, "execute")
    if not core.is_identifier(name) then U.argerror(1, "execute", "'" .. name .. "' is not an operation name") end
    params = U.opt_table(params, 2, "execute")
    opts = U.check_options(opts, O.execute, "execute", 3)
    local method = opts.method
    local h = U.request_headers(opts, nil, "execute", 3)
    method = method and method:upper() or (FUNCTIONS[name] and "GET" or "POST")
    local _, _, body
    if method == "GET" then
      -- Function parameters go by alias: Name(p=@p)?@p=literal
      local names = {}
      for k in pairs(params) do
        if type(k) ~= "string" or not core.is_identifier(k) then
          U.argerror(2, "execute", "parameter names must be identifiers")
        end
        names[#names + 1] = k
      end
      table.sort(names)
      local args, q = {}, {}
      for _, k in ipairs(names) do
        local v = params[k]
        args[#args + 1] = k .. "=@" .. k
        local lit = type(v) == "table" and core.json_encode(v) or core.literal(v)
        q[#q + 1] = "@" .. k .. "=" .. core.pct(lit, "query")
      end
      local path = name .. "(" .. table.concat(args, ",") .. ")"
      if #q > 0 then path = path .. "?" .. table.concat(q, "&") end
      _, _, body = self:call("GET", path, nil, h)
    elseif method == "POST" then
      _, _, body = self:call("POST", name, next(params) and params or "{}", h)
    else
      U.argerror(3, "execute", "option 'method': GET or POST expected")
    end
    if type(body) == "table" then U.clean_row(body) end
    return body
  end

  function methods:request(method, path, body, headers)
    U.check_string(method, 1, "request")
    U.check_string(path, 2, "request")
    if body ~= nil and type(body) ~= "string" and type(body) ~= "table" then
      U.argerror(3, "request", "string, table or nil expected, got " .. type(body))
    end
    if headers ~= nil and type(headers) ~= "table" then
      U.argerror(4, "request", "table or nil expected, got " .. type(headers))
    end
    local status, h, text = self:send(method:upper(), path, body, headers)
    local decoded = text
    if text:match("^%s*[%[{]") then
      local ok, v = pcall(core.json_decode, text)
      if ok then decoded = v end
    elseif text == "" then
      decoded = nil
    end
    return status, h, decoded
  end
end
