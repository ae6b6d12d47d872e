-- Row operations on a connection: whoami, create, retrieve, update, upsert, delete, query,
-- count, execute and the raw request escape hatch.
local core = require "dataverse.core"
local U = require "dataverse.util"

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

  function methods:create(tbl, fields)
    U.check_table(fields, 2, "create")
    local e = U.entity(self, tbl, "create", 1)
    local status, h, body = self:call("POST", e.set, fields)
    local id = id_from_headers(h) or (type(body) == "table" and body[e.id])
    if not id then
      U.raise(status, "response", "the server did not say which id the new row got")
    end
    return id
  end

  function methods:retrieve(tbl, id_or_key, opts)
    local e = U.entity(self, tbl, "retrieve", 1)
    local key = U.key(id_or_key, 2, "retrieve")
    opts = U.opt_table(opts, 3, "retrieve")
    local cols = U.opt(opts, "columns", "list", "retrieve", 3)
    local q = U.query { { "$select", cols and U.columns(cols, "retrieve", 3) } }
    local ok, status, _, body = pcall(self.call, self, "GET", e.set .. key .. q)
    if not ok then
      if type(status) == "table" and status.status == 404 then return nil end
      error(status, 0)
    end
    return U.clean_row(body)
  end

  function methods:update(tbl, id_or_key, fields)
    local e = U.entity(self, tbl, "update", 1)
    local key = U.key(id_or_key, 2, "update")
    U.check_table(fields, 3, "update")
    self:call("PATCH", e.set .. key, fields, { ["If-Match"] = "*" })
  end

  function methods:upsert(tbl, key, fields)
    local e = U.entity(self, tbl, "upsert", 1)
    local k = U.key(key, 2, "upsert")
    U.check_table(fields, 3, "upsert")
    -- return=representation is what tells a create (201) from an update (200).
    local status, h, body = self:call("PATCH", e.set .. k .. "?$select=" .. e.id, fields,
      { Prefer = "return=representation" })
    local id = (type(body) == "table" and body[e.id]) or id_from_headers(h)
    return id, status == 201
  end

  function methods:delete(tbl, id_or_key)
    local e = U.entity(self, tbl, "delete", 1)
    local key = U.key(id_or_key, 2, "delete")
    self:call("DELETE", e.set .. key)
  end

  function methods:query(tbl, opts)
    local e = U.entity(self, tbl, "query", 1)
    opts = U.opt_table(opts, 2, "query")
    local cols = U.opt(opts, "columns", "list", "query", 2)
    local filter = U.opt(opts, "filter", "string", "query", 2)
    local orderby = U.opt(opts, "orderby", "list", "query", 2)
    local top = U.opt(opts, "top", "integer", "query", 2)
    local page_size = U.opt(opts, "page_size", "integer", "query", 2) or self:state().page_size
    if type(orderby) == "table" then orderby = table.concat(orderby, ",") end
    local url = e.set .. U.query {
      { "$select", cols and U.columns(cols, "query", 2) },
      { "$filter", filter },
      { "$orderby", orderby },
      { "$top", top and math.tointeger(top) },
    }
    local headers = page_size and { Prefer = "odata.maxpagesize=" .. math.tointeger(page_size) }
    local page, i = nil, 0
    local org = self
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
        local _, _, body = org:call("GET", url, nil, headers)
        page, i = body.value or {}, 0
        url = body["@odata.nextLink"]
      end
    end
  end

  function methods:count(tbl, opts)
    local e = U.entity(self, tbl, "count", 1)
    opts = U.opt_table(opts, 2, "count")
    local filter = U.opt(opts, "filter", "string", "count", 2)
    local _, _, body = self:call("GET", e.set .. "/$count" .. U.query { { "$filter", filter } })
    local n = tonumber(type(body) == "string" and body:match("^%s*(%d+)") or body)
    if not n then U.raise(0, "response", "the server did not answer $count with a number") end
    return math.tointeger(n) or n
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
    opts = U.opt_table(opts, 3, "execute")
    local method = U.opt(opts, "method", "string", "execute", 3)
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
      _, _, body = self:call("GET", path)
    elseif method == "POST" then
      _, _, body = self:call("POST", name, next(params) and params or "{}")
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
