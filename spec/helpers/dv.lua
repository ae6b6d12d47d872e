-- Shared spec helpers: run the dvlua binary (or any command) as a child process and capture
-- what it did; shell quoting and file reading for the other helpers.
local M = {}

M.bin = os.getenv("DVLUA") or "./dvlua"

-- s as one shell word.
local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

-- The whole content of a file, or "" when it cannot be read.
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

-- Runs the command argv = {program, args...} with optional stdin text and environment
-- assignments (opts.env, opts.env_clear); returns {status=, stdout=, stderr=}.
function M.exec(argv, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local parts = {}
  for k, v in pairs(opts.env or {}) do
    parts[#parts + 1] = k .. "=" .. shell_quote(v)
  end
  local cmd = (opts.env_clear and "env -i " or "env ") .. table.concat(parts, " ")
  for _, a in ipairs(argv) do cmd = cmd .. " " .. shell_quote(a) end
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

-- Runs `dvlua <args...>` as M.exec does.
function M.run(args, opts)
  return M.exec({ M.bin, table.unpack(args) }, opts)
end

-- Runs a shell command line; returns its exit status and its output (stdout and stderr).
function M.sh(cmd)
  local out = os.tmpname()
  local _, _, status = os.execute(cmd .. " >" .. out .. " 2>&1")
  local text = read_file(out)
  os.remove(out)
  return status, text
end

-- Starts `dvlua --serve --listen 127.0.0.1:0 <args>` in the background (args: shell words)
-- with opts.env and after opts.prefix (shell commands, e.g. a ulimit); waits for the URL
-- it prints. Returns url (nil when none came), pid and the path of its output, which the
-- caller removes.
function M.serve(args, opts)
  opts = opts or {}
  local out, pidf = os.tmpname(), os.tmpname()
  local envs = {}
  for k, v in pairs(opts.env or {}) do envs[#envs + 1] = k .. "=" .. shell_quote(v) end
  os.execute((opts.prefix or "") .. "env " .. table.concat(envs, " ") .. " " .. shell_quote(M.bin) ..
    " --serve --listen 127.0.0.1:0 " .. (args or "") .. " >" .. out .. " 2>&1 & echo $! >" .. pidf)
  local url
  for _ = 1, 200 do
    url = read_file(out):match("(http://[%d%.]+:%d+)\n")
    if url then break end
    os.execute("sleep 0.05")
  end
  local pid = read_file(pidf):match("%d+")
  os.remove(pidf)
  return url, pid, out
end

-- A new empty directory (mktemp -d); the caller removes it.
function M.tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("l")
  p:close()
  return d
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

return M
