-- Runs curl as a child process so specs see the raw wire: status line, every header, the
-- body bytes. curl.request{method=, url=, headers={...}, body=} returns
-- {status=, headers={lowercased name = value}, body=, json=} (json when the body decodes).
local cjson = require "cjson"
local dv = require "dv"

local M = {}

local q, slurp = dv.quote, dv.read_file

function M.request(o)
  local hdr, out = os.tmpname(), os.tmpname()
  local cmd = { "curl -s -g --max-time 20 -D", q(hdr), "-o", q(out), "-w '%{http_code}'", "-X", q(o.method or "GET") }
  for k, v in pairs(o.headers or {}) do
    cmd[#cmd + 1] = "-H " .. q(k .. ": " .. v)
  end
  local input
  if o.body then
    input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(o.body)
    f:close()
    cmd[#cmd + 1] = "--data-binary @" .. q(input)
  end
  for _, extra in ipairs(o.curl_args or {}) do cmd[#cmd + 1] = extra end
  cmd[#cmd + 1] = q(o.url)
  local p = assert(io.popen(table.concat(cmd, " ") .. " 2>/dev/null"))
  local code = p:read("a")
  p:close()
  local r = { status = tonumber(code) or 0, headers = {}, body = slurp(out), raw_headers = slurp(hdr) }
  -- keep the last header block (after any 100 Continue)
  for line in r.raw_headers:gmatch("[^\r\n]+") do
    if line:match("^HTTP/") then
      r.headers = {}
    else
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then r.headers[k:lower()] = v end
    end
  end
  local ok, decoded = pcall(cjson.decode, r.body)
  if ok then r.json = decoded end
  os.remove(hdr); os.remove(out)
  if input then os.remove(input) end
  return r
end

M.quote = q
return M
