-- Shared spec helpers: run the dvlua binary as a child process and capture what it did.
local M = {}

M.bin = os.getenv("DVLUA") or "./dvlua"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs `dvlua <args...>` with optional stdin text and environment assignments;
-- returns {status=, stdout=, stderr=}.
function M.run(args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local parts = {}
  for k, v in pairs(opts.env or {}) do
    parts[#parts + 1] = k .. "=" .. shell_quote(v)
  end
  local cmd = (opts.env_clear and "env -i " or "env ") .. table.concat(parts, " ") .. " " .. shell_quote(M.bin)
  for _, a in ipairs(args) do cmd = cmd .. " " .. shell_quote(a) end
  local input = opts.stdin and os.tmpname()
  if input then
    local f = assert(io.open(input, "wb"))
    f:write(opts.stdin)
    f:close()
    cmd = cmd .. " <" .. input
  else
    cmd = cmd .. " </dev/null"
  end
  cmd = cmd .. " >" .. out .. " 2>" .. err
  local _, _, code = os.execute(cmd)
  local r = { status = code, stdout = read_file(out), stderr = read_file(err) }
  os.remove(out); os.remove(err)
  if input then os.remove(input) end
  return r
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

M.read_file = read_file
return M
