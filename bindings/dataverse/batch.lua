-- $batch from Lua: the multipart/mixed request body (requests and change sets with
-- Content-IDs), the multipart answer read back into one response per request, and
-- org:batch(function(b) … end), the builder scripts use.
local core = require "dataverse.core"
local U = require "dataverse.util"

local B = {}

B.MAX_REQUESTS = 1000 -- Dataverse refuses a batch of more requests

local function id_from_headers(h)
  local loc = h and (h["odata-entityid"] or h["location"])
  return loc and loc:match("%((%x+%-%x+%-%x+%-%x+%-%x+)%)%s*$")
end
B.id_from_headers = id_from_headers

-- One application/http part. req = {method=, path=, body=string|table|nil, headers=, content_id=}
local function put_request(out, base, req)
  out[#out + 1] = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
  if req.content_id then out[#out + 1] = "Content-ID: " .. req.content_id .. "\r\n" end
  out[#out + 1] = "\r\n"
  -- "$1…" refers to a request of the change set; absolute and rooted URLs go as they are.
  local p = req.path
  local target = (p:sub(1, 1) == "$" or p:sub(1, 1) == "/" or p:match("^https?://")) and p or base .. p
  target = target:gsub(" ", "%%20") -- a request line has no spaces
  out[#out + 1] = req.method .. " " .. target .. " HTTP/1.1\r\n"
  for k, v in pairs(req.headers or {}) do
    out[#out + 1] = k .. ": " .. v .. "\r\n"
  end
  local body = req.body
  if type(body) == "table" then body = core.json_encode(body) end
  if body then
    out[#out + 1] = "Content-Type: application/json; type=entry\r\n\r\n"
    out[#out + 1] = body
    out[#out + 1] = "\r\n"
  else
    out[#out + 1] = "\r\n"
  end
end

-- The body of a batch of items, each a request or {changeset = {requests…}}; returns body,
-- boundary.
function B.encode(base, items)
  local bd = "batch_" .. U.new_guid()
  local out = {}
  for _, item in ipairs(items) do
    out[#out + 1] = "--" .. bd .. "\r\n"
    if item.changeset then
      local cs = "changeset_" .. U.new_guid()
      out[#out + 1] = "Content-Type: multipart/mixed; boundary=" .. cs .. "\r\n\r\n"
      for _, req in ipairs(item.changeset) do
        out[#out + 1] = "--" .. cs .. "\r\n"
        put_request(out, base, req)
      end
      out[#out + 1] = "--" .. cs .. "--\r\n"
    else
      put_request(out, base, item)
    end
  end
  out[#out + 1] = "--" .. bd .. "--\r\n"
  return table.concat(out), bd
end

local function headers_of(text)
  local h = {}
  for line in text:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then h[k:lower()] = v end
  end
  return h
end

-- Splits text into its parts by boundary: {headers=, body=} each.
local function split(text, bd)
  local parts = {}
  local delim = "--" .. bd
  local pos = 1
  local s, e = text:find(delim, pos, true)
  while s do
    if text:sub(e + 1, e + 2) == "--" then break end
    local nl = text:find("\n", e + 1, true)
    if not nl then break end
    local ns = text:find("\n" .. delim, nl, true)
    if not ns then U.raise(0, "response", "the batch answer ends without its closing delimiter") end
    local chunk = text:sub(nl + 1, ns - 1):gsub("\r$", "")
    local hs, he = chunk:find("\r?\n\r?\n")
    local head, body
    if hs then head, body = chunk:sub(1, hs - 1), chunk:sub(he + 1) else head, body = chunk, "" end
    parts[#parts + 1] = { headers = headers_of(head), body = body }
    s, e = ns + 1, ns + #delim
  end
  return parts
end

local function decode_http(part)
  local text = part.body
  local status = tonumber(text:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then U.raise(0, "response", "a batch answer part is not an HTTP response") end
  local hs, he = text:find("\r?\n\r?\n")
  local head = hs and text:sub(1, hs - 1) or text
  local body = hs and text:sub(he + 1) or ""
  local h = headers_of(head:gsub("^[^\n]*\n", ""))
  local decoded
  if body:match("^%s*[%[{]") then
    local ok, v = pcall(core.json_decode, body)
    decoded = ok and v or body
  elseif body:match("%S") then
    decoded = body
  end
  local r = { status = status, headers = h, body = decoded, content_id = part.headers["content-id"] }
  if status >= 400 then
    local err = type(decoded) == "table" and decoded.error or nil
    r.error = U.new_error(status, err and err.code or "http",
      err and err.message or ("HTTP " .. status))
  end
  return r
end

-- The answers of a batch, flattened in order; each {status=, headers=, body=, content_id=,
-- changeset=n (the index of the item it answers)}.
function B.decode(text, content_type)
  local bd = content_type and content_type:match('boundary="?([^";]+)"?')
  if not bd then U.raise(0, "response", "the batch answer is not multipart/mixed") end
  local out = {}
  for _, p in ipairs(split(text, bd)) do
    local ct = p.headers["content-type"] or ""
    local inner = ct:match('^multipart/mixed;%s*boundary="?([^";]+)"?')
    if inner then
      for _, q in ipairs(split(p.body, inner)) do
        local r = decode_http(q)
        r.in_changeset = true
        out[#out + 1] = r
      end
    else
      out[#out + 1] = decode_http(p)
    end
  end
  return out
end

-- Sends items as one $batch; returns one result per request, in order:
-- {status=, headers=, body=, id=, error=}. A change set that failed answers only its failing
-- request; its other requests get an error saying they were rolled back. Requests after a
-- failure that stopped the batch get an error saying they were not run.
function B.send(org, items, continue_on_error)
  local base = org:base()
  local n, cid = 0, 0
  for _, item in ipairs(items) do
    if item.changeset then
      for _, req in ipairs(item.changeset) do
        n = n + 1
        if not req.content_id then cid = cid + 1; req.content_id = tostring(n) end
      end
    else
      n = n + 1
    end
  end
  if n > B.MAX_REQUESTS then
    U.raise(0, "usage", ("a batch holds at most %d requests, not %d"):format(B.MAX_REQUESTS, n))
  end
  local body, bd = B.encode(base, items)
  local headers = { ["Content-Type"] = "multipart/mixed; boundary=" .. bd }
  if continue_on_error then headers.Prefer = "odata.continue-on-error" end
  local status, h, text = org:send("POST", "$batch", body, headers)
  local ct = h["content-type"] or ""
  if not ct:find("^multipart/mixed") then
    local ok, v = pcall(core.json_decode, text)
    local err = ok and type(v) == "table" and v.error or nil
    error(U.new_error(status, err and err.code or "http",
      err and err.message or ("$batch answered HTTP " .. status)), 0)
  end
  local answers = B.decode(text, ct)
  local results, ai = {}, 1
  for _, item in ipairs(items) do
    local reqs = item.changeset or { item }
    local a = answers[ai]
    if not a then
      for _ in ipairs(reqs) do
        results[#results + 1] = { status = 0, error = U.new_error(0, "not_run",
          "not run: an earlier request of the batch failed") }
      end
    elseif item.changeset and not a.in_changeset then
      -- the change set failed: one error answer, naming its request by Content-ID
      ai = ai + 1
      for _, req in ipairs(reqs) do
        if a.content_id == req.content_id or (#reqs == 1) then
          results[#results + 1] = a
        else
          results[#results + 1] = { status = a.status, rolled_back = true,
            error = U.new_error(a.status, "rolled_back",
              "rolled back: request " .. tostring(a.content_id or "?") .. " of its change set failed ("
              .. tostring(a.error and a.error.message) .. ")") }
        end
      end
    else
      for _ in ipairs(reqs) do
        a = answers[ai]
        ai = ai + 1
        results[#results + 1] = a or { status = 0, error = U.new_error(0, "response",
          "the batch answer has fewer parts than requests") }
      end
    end
  end
  for _, r in ipairs(results) do
    if r.headers and not r.id then r.id = id_from_headers(r.headers) end
  end
  return results, status
end


function B.install(methods)
  -- The builder a batch function receives; cs = true inside a change set.
  local function builder(org, list, in_cs, counter)
    local b = {}
    local function add(req)
      if #list >= B.MAX_REQUESTS then
        U.argerror(1, "batch", ("a batch holds at most %d requests"):format(B.MAX_REQUESTS))
      end
      list[#list + 1] = req
      if in_cs then
        counter.n = counter.n + 1
        req.content_id = tostring(counter.n)
        return "$" .. req.content_id
      end
      counter.n = counter.n + 1
    end
    local function addr(tbl, id_or_key, fname)
      local e = U.entity(org, tbl, fname, 1)
      if type(id_or_key) == "string" and id_or_key:match("^%$%w+$") then return id_or_key, e end
      return e.set .. U.key(id_or_key, 2, fname), e
    end
    function b:create(tbl, fields)
      local e = U.entity(org, tbl, "create", 1)
      U.check_table(fields, 2, "create")
      return add { method = "POST", path = e.set, body = fields }
    end
    function b:update(tbl, id_or_key, fields)
      local path = addr(tbl, id_or_key, "update")
      U.check_table(fields, 3, "update")
      return add { method = "PATCH", path = path, body = fields, headers = { ["If-Match"] = "*" } }
    end
    function b:upsert(tbl, key, fields)
      local path = addr(tbl, key, "upsert")
      U.check_table(fields, 3, "upsert")
      return add { method = "PATCH", path = path, body = fields }
    end
    function b:delete(tbl, id_or_key)
      return add { method = "DELETE", path = (addr(tbl, id_or_key, "delete")) }
    end
    function b:request(method, path, body, headers)
      U.check_string(method, 1, "request")
      U.check_string(path, 2, "request")
      if in_cs and method:upper() == "GET" then
        U.argerror(1, "request", "GET requests are not allowed in a change set")
      end
      return add { method = method:upper(), path = path, body = body, headers = headers }
    end
    if not in_cs then
      function b:retrieve(tbl, id_or_key, opts)
        local path = addr(tbl, id_or_key, "retrieve")
        opts = U.opt_table(opts, 3, "retrieve")
        local cols = U.opt(opts, "columns", "list", "retrieve", 3)
        local q = U.query { { "$select", cols and U.columns(cols, "retrieve", 3) } }
        add { method = "GET", path = path .. q }
      end
      function b:changeset(fn)
        if type(fn) ~= "function" then U.argerror(1, "changeset", "function expected") end
        local reqs = {}
        local cs = builder(org, reqs, true, counter)
        fn(cs)
        if #reqs > 0 then list[#list + 1] = { changeset = reqs } end
      end
    end
    return b
  end

  -- org:batch(function(b) … end [, {continue_on_error=}]) -> results (one per request)
  function methods:batch(fn, opts)
    if type(fn) ~= "function" then U.argerror(1, "batch", "function expected, got " .. type(fn)) end
    opts = U.check_options(opts, require("dataverse.options").batch, "batch", 2)
    local go_on = opts.continue_on_error
    local items, counter = {}, { n = 0 }
    fn(builder(self, items, false, counter))
    if #items == 0 then return {} end
    local results = B.send(self, items, go_on)
    for _, r in ipairs(results) do
      if type(r.body) == "table" then U.clean_row(r.body) end
    end
    return results
  end
end

return B
