-- Decoding speed of dataverse.json against cjson on a Dataverse-shaped page.
--   ./dvlua bench/json_decode.lua [runs] [rows]      (defaults: 30 runs, 5000 rows)
-- The page is generated deterministically: a change-tracking response with rows of strings,
-- integers, decimals, ISO dates, GUIDs, a lookup _x_value, an @odata.etag and nulls. Each codec
-- decodes it `runs` times, rounds alternating between the codecs after one untimed decode each.
-- Times are CPU time (os.clock) of the decode call alone, with a full garbage collection before
-- each run so that one codec's garbage is not charged to the other.
local json = require("dataverse").json
local cjson = require "cjson"

local runs = tonumber(arg and arg[1]) or 30
local rows = tonumber(arg and arg[2]) or 5000

-- A small linear congruential generator: the same page on every machine and Lua version.
local seed = 20240601
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
end

local function guid()
  local h = {}
  for i = 1, 32 do h[i] = string.format("%x", rand(16)) end
  local s = table.concat(h)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20) .. "-" .. s:sub(21, 32)
end

local function date()
  return string.format("%04d-%02d-%02dT%02d:%02d:%02dZ", 2015 + rand(10), 1 + rand(12), 1 + rand(28),
    rand(24), rand(60), rand(60))
end

local words = { "Contoso", "Fabrikam", "Northwind", "Adventure Works", "Litware", "Tailspin",
  "Wingtip", "Coho Winery", "Proseware", "Alpine Ski House" }
local cities = { "Redmond", "Seattle", "Paris", "Zürich", "München", "São Paulo", "Oslo", "Kyoto" }

local function q(s) return '"' .. s .. '"' end

local function row(i)
  local f = {
    q("@odata.etag") .. ":" .. q('W/\\"' .. (1000000 + rand(9000000)) .. '\\"'),
    q("accountid") .. ":" .. q(guid()),
    q("name") .. ":" .. q(words[1 + rand(#words)] .. " " .. i),
    q("accountnumber") .. ":" .. q(string.format("ACC-%06d", i)),
    q("revenue") .. ":" .. string.format("%d.%02d", rand(10000000), rand(100)),
    q("numberofemployees") .. ":" .. rand(100000),
    q("creditlimit") .. ":" .. (rand(3) == 0 and "null" or string.format("%d.%04d", rand(1000000), rand(10000))),
    q("createdon") .. ":" .. q(date()),
    q("modifiedon") .. ":" .. q(date()),
    q("_primarycontactid_value") .. ":" .. (rand(4) == 0 and "null" or q(guid())),
    q("address1_city") .. ":" .. (rand(5) == 0 and "null" or q(cities[1 + rand(#cities)])),
    q("statecode") .. ":" .. rand(2),
    q("versionnumber") .. ":" .. (10000000 + i * 7),
  }
  return "{" .. table.concat(f, ",") .. "}"
end

local parts = {}
for i = 1, rows do parts[i] = row(i) end
local page = '{"@odata.context":"https://contoso.crm.dynamics.com/api/data/v9.2/$metadata#accounts'
  .. '(accountid,name,accountnumber,revenue,numberofemployees,creditlimit,createdon,modifiedon,'
  .. '_primarycontactid_value,address1_city,statecode,versionnumber)/$delta","value":['
  .. table.concat(parts, ",")
  .. '],"@odata.deltaLink":"https://contoso.crm.dynamics.com/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2017%2008%3a10%3a44"}'

-- Both codecs must agree on what they read before their speed means anything.
do
  local a, b = json.decode(page), cjson.decode(page)
  assert(#a.value == rows and #b.value == rows, "row count")
  for _, i in ipairs { 1, rows // 2, rows } do
    for k, v in pairs(b.value[i]) do
      assert(a.value[i][k] == v, "rows differ at " .. i .. "." .. k)
    end
  end
end

local function summary(t)
  table.sort(t)
  local n = #t
  local median = n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
  return { median = median, min = t[1], max = t[n] }
end

local codecs = { { name = "dataverse.json", decode = json.decode, t = {} },
  { name = "cjson " .. cjson._VERSION, decode = cjson.decode, t = {} } }
-- Rounds alternate between the codecs so that noise from the rest of the machine falls on both.
for r = 1, runs do
  for _, c in ipairs(codecs) do
    collectgarbage("collect")
    local c0 = os.clock()
    local v = c.decode(page)
    c.t[r] = (os.clock() - c0) * 1000
    assert(#v.value == rows)
  end
end

local mb = #page / 1e6
print(string.format("page: %d rows, %.2f MB, %d runs per codec (CPU time per decode)", rows, mb, runs))
for _, c in ipairs(codecs) do
  c.r = summary(c.t)
  print(string.format("%-16s median %7.2f ms  min %7.2f ms  max %7.2f ms  %7.1f MB/s (median)",
    c.name, c.r.median, c.r.min, c.r.max, mb / (c.r.median / 1000)))
end
local ours, theirs = codecs[1].r.median, codecs[2].r.median
print(string.format("ratio: dataverse.json takes %.2fx the time of cjson (%.2fx as fast)",
  ours / theirs, theirs / ours))
