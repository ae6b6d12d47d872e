-- Turns the samples of one `make bench` into the table on stdout and bench/results.json.
--
--   dvlua bench/report.lua SAMPLES.jsonl META.json DECODE.txt OUT.json
--
-- A sample is one run of one measurement: {n=, measure=, run=, rss_kb=, wall=, rows=,
-- result={rows=, seconds=, …} or nil, error=}. Figures are medians over the runs with
-- their min and max; rows/s is rows delivered over the seconds of the sync phase.
local cjson = require "cjson"

local samples_path, meta_path, decode_path, out_path = arg[1], arg[2], arg[3], arg[4]
if not out_path then
  io.stderr:write("usage: dvlua bench/report.lua SAMPLES.jsonl META.json DECODE.txt OUT.json\n")
  os.exit(2)
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end

local MEASURES = {
  { key = "dvlua_full", label = "dvlua full sync, null sink" },
  { key = "dvlua_sqlite", label = "dvlua full sync into SQLite" },
  { key = "dvlua_incr", label = "dvlua incremental (1%), null sink" },
  { key = "dvlua_sqlite_incr", label = "dvlua incremental (1%) into SQLite" },
  { key = "transport", label = "transport limit (curl)" },
  { key = "peer", label = "peer: dynamics-web-api (Node)" },
}

local function median(xs)
  local t = {}
  for i, x in ipairs(xs) do
    t[i] = x
  end
  table.sort(t)
  local n = #t
  if n == 0 then
    return nil
  end
  if n % 2 == 1 then
    return t[(n + 1) // 2]
  end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local function stats(xs)
  if #xs == 0 then
    return nil
  end
  return { median = median(xs), min = math.min(table.unpack(xs)), max = math.max(table.unpack(xs)), runs = #xs }
end

-- Group the samples by N and measure.
local groups, ns, seen_n = {}, {}, {}
for line in (read(samples_path) or ""):gmatch("[^\n]+") do
  local ok, s = pcall(cjson.decode, line)
  if ok and type(s) == "table" and s.n and s.measure then
    if not seen_n[s.n] then
      seen_n[s.n] = true
      ns[#ns + 1] = s.n
    end
    groups[s.n] = groups[s.n] or {}
    local g = groups[s.n][s.measure] or { rate = {}, rss = {}, seconds = {}, rows = {}, errors = {} }
    groups[s.n][s.measure] = g
    local r = type(s.result) == "table" and s.result or {}
    local rows = tonumber(r.rows) or tonumber(s.rows)
    local seconds = tonumber(r.seconds) or tonumber(s.wall)
    if s.error and s.error ~= cjson.null then
      g.errors[#g.errors + 1] = s.error
    elseif rows and seconds and seconds > 0 then
      g.rate[#g.rate + 1] = rows / seconds
      g.seconds[#g.seconds + 1] = seconds
      g.rows[#g.rows + 1] = rows
      if tonumber(s.rss_kb) then
        g.rss[#g.rss + 1] = tonumber(s.rss_kb) / 1024
      end
    end
  end
end
table.sort(ns)

local results = { meta = cjson.decode(read(meta_path) or "{}"), sizes = {}, ratios = {}, targets = {} }

for _, n in ipairs(ns) do
  local size = { rows = n, measures = {} }
  for _, m in ipairs(MEASURES) do
    local g = groups[n][m.key]
    if g then
      size.measures[m.key] = {
        label = m.label,
        rows_per_s = stats(g.rate),
        peak_rss_mb = stats(g.rss),
        seconds = stats(g.seconds),
        rows = stats(g.rows),
        errors = #g.errors > 0 and g.errors or nil,
      }
    end
  end
  results.sizes[#results.sizes + 1] = size
end

local function med(size, key, field)
  local m = size.measures[key]
  return m and m[field] and m[field].median or nil
end

local function ratio(a, b)
  if a and b and b > 0 then
    return a / b
  end
  return nil
end

for _, size in ipairs(results.sizes) do
  results.ratios[tostring(size.rows)] = {
    rate_dvlua_over_peer = ratio(med(size, "dvlua_full", "rows_per_s"), med(size, "peer", "rows_per_s")),
    rate_dvlua_over_transport = ratio(med(size, "dvlua_full", "rows_per_s"), med(size, "transport", "rows_per_s")),
    rss_dvlua_over_peer = ratio(med(size, "dvlua_full", "peak_rss_mb"), med(size, "peer", "peak_rss_mb")),
  }
end

-- The targets of the benchmark issue, judged on the medians.
local function judge(name, value, ok)
  results.targets[#results.targets + 1] = { target = name, value = value, met = value ~= nil and ok or false }
end
local small, large
for _, size in ipairs(results.sizes) do
  if size.rows == 10000 then
    small = size
  end
  if size.rows == 100000 then
    large = size
  end
end
for _, size in ipairs(results.sizes) do
  local r = results.ratios[tostring(size.rows)]
  local v = r.rate_dvlua_over_peer
  judge(("N=%d: dvlua rows/s >= 1.5x peer"):format(size.rows), v, v and v >= 1.5)
  v = r.rate_dvlua_over_transport
  judge(("N=%d: dvlua rows/s at least 0.8x transport"):format(size.rows), v, v and v >= 0.8)
  v = r.rss_dvlua_over_peer
  judge(("N=%d: dvlua peak RSS < 1/4 of peer"):format(size.rows), v, v and v < 0.25)
end
if small and large then
  local v = ratio(med(large, "dvlua_full", "peak_rss_mb"), med(small, "dvlua_full", "peak_rss_mb"))
  judge("dvlua peak RSS flat from 10k to 100k (within 10%)", v, v and v <= 1.1 and v >= 0.9)
end

-- The JSON decode benchmark prints its own figures; keep every line that parses as JSON,
-- and the text as it came.
local decode_text = read(decode_path)
if decode_text and #decode_text > 0 then
  local parsed = {}
  for line in decode_text:gmatch("[^\n]+") do
    local ok, v = pcall(cjson.decode, line)
    if ok and type(v) == "table" then
      parsed[#parsed + 1] = v
    end
  end
  -- Its human-readable lines: "<codec> median X ms  min Y ms  max Z ms  W MB/s (median)".
  local codecs = {}
  for line in decode_text:gmatch("[^\n]+") do
    local name, med_ms, min_ms, max_ms, mbs =
      line:match("^(.-)%s+median%s+([%d.]+) ms%s+min%s+([%d.]+) ms%s+max%s+([%d.]+) ms%s+([%d.]+) MB/s")
    if name then
      codecs[#codecs + 1] = { codec = name, median_ms = tonumber(med_ms), min_ms = tonumber(min_ms),
        max_ms = tonumber(max_ms), mb_per_s = tonumber(mbs) }
    end
  end
  results.json_decode = { output = decode_text, results = #parsed > 0 and parsed or nil,
    codecs = #codecs > 0 and codecs or nil }
end

-- The table.
local function fmt_rate(s)
  if not s then
    return "-"
  end
  return ("%9.0f (%.0f..%.0f)"):format(s.median, s.min, s.max)
end
local function fmt_mb(s)
  if not s then
    return "-"
  end
  return ("%6.1f (%.1f..%.1f)"):format(s.median, s.min, s.max)
end
local function fmt_ratio(v)
  return v and ("%.2f"):format(v) or "-"
end

local out = io.stdout
out:write(("%-8s %-36s %-30s %-9s %-24s %s\n"):format("rows", "measurement", "rows/s median (min..max)",
  "seconds", "peak RSS MB (min..max)", "runs"))
for _, size in ipairs(results.sizes) do
  for _, m in ipairs(MEASURES) do
    local s = size.measures[m.key]
    if s then
      local runs = s.rows_per_s and s.rows_per_s.runs or 0
      local err = s.errors and ("  FAILED x%d: %s"):format(#s.errors, tostring(s.errors[1]):sub(1, 60)) or ""
      local secs = s.seconds and ("%9.3f"):format(s.seconds.median) or "-"
      out:write(("%-8d %-36s %-30s %-9s %-24s %d%s\n"):format(size.rows, m.label, fmt_rate(s.rows_per_s),
        secs, fmt_mb(s.peak_rss_mb), runs, err))
    end
  end
  local r = results.ratios[tostring(size.rows)]
  out:write(("%-8d ratios: dvlua/peer rows/s %s, dvlua/transport rows/s %s, dvlua/peer RSS %s\n"):format(
    size.rows, fmt_ratio(r.rate_dvlua_over_peer), fmt_ratio(r.rate_dvlua_over_transport),
    fmt_ratio(r.rss_dvlua_over_peer)))
end
out:write("\ntargets:\n")
for _, t in ipairs(results.targets) do
  out:write(("  [%s] %s: %s\n"):format(t.met and "met" or "MISSED", t.target, fmt_ratio(t.value)))
end
local meta = results.meta
if type(meta) == "table" and type(meta.mirror_note) == "string" and meta.mirror_note ~= "" then
  out:write(("\nSQLite mirror columns: %s (%s)\n"):format(tostring(meta.mirror_columns), meta.mirror_note))
end
if results.json_decode then
  out:write("\nJSON decode of one 5,000-row page (bench/json_decode.lua):\n")
  for line in results.json_decode.output:gmatch("[^\n]+") do
    out:write("  ", line, "\n")
  end
end

local f = assert(io.open(out_path, "wb"))
f:write(cjson.encode(results), "\n")
f:close()
out:write(("\nwritten: %s\n"):format(out_path))
