-- dataverse.pretty(value [, opts]) -> string: a value as a readable Lua-like literal.
-- Used by `dvlua -i` to print results, and by scripts for logs and debugging.
--
-- Tables print with their list part first, then the other keys sorted (numbers, then
-- strings, then the rest by their text), short ones on one line and long ones indented.
-- dataverse.json.null prints as `null`. Limits keep a huge result readable: `depth`
-- (default 4) levels, after which a table is `{...}`, and `items` (default 50) entries per
-- table, after which a comment gives the count left out. A table met again inside itself
-- is `<cycle>`. A string longer than `text` (default 1000) bytes is cut, followed by its
-- length. Strings at the top level are quoted too; the REPL prints them raw as lua5.4.
local NULL = require "dataverse.json".null

local DEFAULTS = { depth = 4, items = 50, width = 80, indent = "  ", text = 1000 }
local OPTION_TYPES = require("dataverse.options").pretty

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\%03d"):format(c:byte())
  end) .. '"'
end

-- A string over `limit` bytes is cut at a character boundary and followed by its length.
local function text(s, limit)
  if #s <= limit then return quote(s) end
  local cut = limit
  while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return ("%s... (%d bytes)"):format(quote(s:sub(1, cut)), #s)
end

local function scalar(v, o)
  local t = type(v)
  if v == NULL then return "null" end
  if t == "string" then return text(v, o and o.text or math.huge) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "0/0" end
    if v == math.huge then return "math.huge" end
    if v == -math.huge then return "-math.huge" end
    local s = ("%.14g"):format(v)
    if tonumber(s) ~= v then s = ("%.17g"):format(v) end
    if not s:find("[%.eEn]") then s = s .. ".0" end
    return s
  end
  if t == "nil" or t == "boolean" then return tostring(v) end
  -- functions, threads and userdata (a connection, an emulator): what tostring says
  local ok, s = pcall(tostring, v)
  return ok and ("<" .. s .. ">") or ("<" .. t .. ">")
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then return k end
  return "[" .. scalar(k) .. "]"
end

local RANK = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (RANK[ta] or 4) < (RANK[tb] or 4) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function render(v, o, level, seen, indent)
  if type(v) ~= "table" or v == NULL then return scalar(v, o) end
  if seen[v] then return "<cycle>" end
  if next(v) == nil then return "{}" end
  if level >= o.depth then return "{...}" end
  seen[v] = true

  -- list part: 1..n without holes, printed without keys
  local n = 0
  while rawget(v, n + 1) ~= nil do n = n + 1 end
  local keys = {}
  for k in next, v do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)

  local total = n + #keys
  local shown = math.min(total, o.items)
  local inner = indent .. o.indent
  local parts = {}
  for i = 1, shown do
    if i <= n then
      parts[i] = render(rawget(v, i), o, level + 1, seen, inner)
    else
      local k = keys[i - n]
      parts[i] = key_text(k) .. " = " .. render(rawget(v, k), o, level + 1, seen, inner)
    end
  end
  seen[v] = nil

  local more = total - shown
  local note = more > 0 and ("-- ... %d more (%d in all)"):format(more, total) or nil
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if not note and not one:find("\n", 1, true) and #indent + #one <= o.width then return one end
  local out = { "{\n" }
  for i = 1, #parts do
    out[#out + 1] = inner .. parts[i] .. ",\n"
  end
  if note then out[#out + 1] = inner .. note .. "\n" end
  out[#out + 1] = indent .. "}"
  return table.concat(out)
end

local function pretty(v, opts)
  local o = {}
  for k, d in pairs(DEFAULTS) do o[k] = d end
  -- The API's one option checker: an unknown option names the closest valid one.
  for k, x in pairs(require("dataverse.util").check_options(opts, OPTION_TYPES, "pretty", 2)) do
    o[k] = x
  end
  return render(v, o, 0, {}, "")
end

return pretty
