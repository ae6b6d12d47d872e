-- The Lua half of the `dataverse` module: receives the table built in C
-- (bindings/lua_dataverse.c) and adds connect, is_expired_token and the operations.
local core = require "dataverse.core"
local U = require "dataverse.util"
local O = require "dataverse.options"

local EXPIRED = "0x80044352"
local announced = false -- the built-in emulator is announced once per process

local function env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

local function data_home()
  local base = env("XDG_DATA_HOME")
  if not base then
    local home = env("HOME") or "."
    base = home .. "/.local/share"
  end
  return base .. "/dvlua"
end

-- How the connection signs in is settled before the first request: a URL with no way to
-- get a token would only meet a bare 401.
local function check_credentials(opts, token)
  if token or opts.client_secret or opts.device_code then
    if opts.device_code and not (opts.client_id or env("AZURE_CLIENT_ID")) then
      U.raise(0, "config", "device code sign-in needs a client id: option 'client_id' or AZURE_CLIENT_ID")
    end
    return
  end
  if opts.tenant_id or opts.client_id then
    U.raise(0, "config", "option 'client_id' needs option 'client_secret' (client credentials) " ..
      "or option 'device_code = true' (sign-in at a terminal)")
  end
  if env("AZURE_TENANT_ID") or env("AZURE_CLIENT_ID") or env("AZURE_CLIENT_SECRET") then
    return -- the environment names a way; core.open names whatever of it is missing
  end
  U.raise(0, "config", (opts.url and "option 'url'" or "DATAVERSE_URL") ..
    " is set but no credentials are: set DATAVERSE_TOKEN (a bearer " ..
    "token), or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (client credentials), or " ..
    "pass { device_code = true, client_id = ... } to dataverse.connect (sign-in at a terminal)")
end

-- The banner is for the first run against a data directory: a marker file there remembers
-- it was shown. DVLUA_QUIET=1 silences it altogether.
local BANNER_MARKER = "emulator-banner-shown"

local function announce(dir, url, db)
  if env("DVLUA_QUIET") == "1" then return end
  local marker = dir .. "/" .. BANNER_MARKER
  local f = io.open(marker, "r")
  if f then return f:close() end
  io.stderr:write(("dvlua: no DATAVERSE_URL set; using the built-in emulator at %s (data in %s);"
    .. " shown once per data directory, DVLUA_QUIET=1 hides it\n"):format(url, db))
  f = io.open(marker, "w")
  if f then
    f:write("The built-in emulator's banner was shown for this directory; delete to see it again.\n")
    f:close()
  end
end

return function(M)
  local methods = core.methods
  require "dataverse.rows" (methods)
  require "dataverse.changes".install(methods)
  require "dataverse.admin".install(methods)
  require "dataverse.parallel".install(methods)
  require "dataverse.batch".install(methods)
  require "dataverse.bulk".install(methods)

  local function start_emulator(opts)
    if type(M.emulator) ~= "table" or type(M.emulator.start) ~= "function" then
      U.raise(0, "config", "no DATAVERSE_URL is set and this build has no built-in emulator")
    end
    return M.emulator.start(opts)
  end

  function M.connect(opts)
    opts = U.check_options(opts, O.connect, "connect", 1)
    if opts.url and opts.emulator then
      U.argerror(1, "connect", "give either option 'url' or option 'emulator', not both")
    end
    local url = opts.url or (opts.emulator == nil and env("DATAVERSE_URL")) or nil
    local token = opts.token or env("DATAVERSE_TOKEN")
    if url and not opts.emulator then check_credentials(opts, token) end
    local emu, owned
    local emu_token
    if not url then
      local e = opts.emulator
      if e ~= nil and (type(e) == "userdata" or getmetatable(e) ~= nil or e.url) then
        emu = e -- a running emulator object
      else
        local eo = {}
        for k, v in pairs(e or {}) do eo[k] = v end
        if e == nil then
          -- The default data file is shared by every process: one emulator serves it, started
          -- by the first and found by the others (docs/EMULATOR.md, src/emulator/shared.h).
          local dir = data_home()
          assert(core.mkdir_p(dir))
          eo.db = dir .. "/emulator.sqlite"
          if type(M.emulator) ~= "table" or type(M.emulator.attach) ~= "function" then
            U.raise(0, "config", "no DATAVERSE_URL is set and this build has no built-in emulator")
          end
          emu = M.emulator.attach(dir)
        else
          eo.port = eo.port or 0
          emu_token = eo.token
          emu = start_emulator(eo)
        end
        owned = true
        if e == nil and not announced then
          announced = true
          announce(data_home(), emu.url, eo.db)
        end
      end
      url = emu.url
      -- The emulator accepts any bearer token unless it was started with one; a token from
      -- the environment belongs to a real organization and is not sent to it.
      token = opts.token or emu_token or "dvlua-emulator"
    end
    local trace = opts.trace
    if trace == nil then trace = env("DVLUA_TRACE") == "1" end
    local tenant_id, client_id = opts.tenant_id, opts.client_id
    if opts.device_code then
      tenant_id = tenant_id or env("AZURE_TENANT_ID")
      client_id = client_id or env("AZURE_CLIENT_ID")
    end
    local org = core.open {
      url = url, token = token, tenant_id = tenant_id, client_id = client_id,
      client_secret = opts.client_secret, authority_host = opts.authority_host,
      device_code = opts.device_code, timeout = opts.timeout, retries = opts.retries, trace = trace,
      on_request = opts.on_request, on_retry = opts.on_retry, concurrency = opts.concurrency,
      allow_insecure_http = opts.allow_insecure_http,
    }
    local st = org:state()
    st.on_page = opts.on_page
    st.page_size = opts.page_size and math.tointeger(opts.page_size) or nil
    st.emulator = emu -- keeps a given emulator alive as long as the connection
    if owned then
      st.on_close = function(s)
        if s.emulator and s.emulator.stop then pcall(s.emulator.stop, s.emulator) end
        s.emulator = nil
      end
    end
    return org
  end

  function M.is_expired_token(err)
    if type(err) ~= "table" then return false end
    local code = err.code
    return code == EXPIRED or code == "-2147204270" or code == -2147204270
  end

  M._options = O
  M.pretty = require "dataverse.pretty"
  M.data_dir = data_home -- where the built-in emulator and `dvlua -i` keep their files
  M.connection = methods -- the connection methods, for scripts that want to add their own
  M.odata = { literal = core.literal, key = core.key, pct = core.pct, is_guid = core.is_guid }
  return M
end
