-- Bulk write benchmark, dvlua's side (bench/run.sh runs it; docs/BENCH.md has the results).
--
--   dvlua bench/bulk.lua setup  URL TOKEN
--   dvlua bench/bulk.lua bulk   URL TOKEN ROWS CHUNK
--   dvlua bench/bulk.lua single URL TOKEN ROWS
--
-- setup: imports the sample's solution (the sample_book table and its sample_bookcode key)
-- and waits for the key. bulk: upserts ROWS rows by alternate key with org:upsert_many,
-- CHUNK rows per request, four chunks under way at a time (org:parallel). single: the same
-- rows, one upsert request each. The rows are the ones bench/peer/batch.js writes. Prints
-- one JSON line: rows, seconds (monotonic), written.
local dataverse = require "dataverse"
local monotonic = require("dataverse.core").now

local mode, url, token, n, chunk = ...
if not (mode and url and token) then
  io.stderr:write("usage: dvlua bench/bulk.lua setup|bulk|single URL TOKEN [ROWS [CHUNK]]\n")
  os.exit(2)
end
n = tonumber(n or 0)
chunk = tonumber(chunk or 1000)

local org = dataverse.connect { url = url, token = token }
local IN_FLIGHT = 4

if mode == "setup" then
  local here = arg[0]:match("^(.*)/bench/") or "."
  org:import_solution(here .. "/scripts/solutions/ChangeTrackingSample")
  org:wait_for_key("sample_book", "sample_bookcode", { timeout = 60 })
  print('{"setup":true}')
  return
end

local function row(i)
  return {
    sample_bookcode = ("BK%08d"):format(i),
    sample_name = "Book " .. i,
    sample_author = "Author " .. (i % 97),
  }
end

local t0 = monotonic()
local written = 0
if mode == "bulk" then
  -- Rows are built a chunk at a time, as a streaming load from a file would, with up to
  -- IN_FLIGHT chunks under way: the next chunk is built while the others are written, and
  -- no chunk waits for the slowest of a group.
  local tasks = {}
  for from = 1, n, chunk do
    tasks[#tasks + 1] = function()
      local rows = {}
      for i = from, math.min(n, from + chunk - 1) do rows[#rows + 1] = row(i) end
      local res = org:upsert_many("sample_book", rows, { key = { "sample_bookcode" }, batch_size = chunk })
      written = written + res.written
    end
  end
  for _, r in ipairs(org:parallel(tasks, { concurrency = IN_FLIGHT })) do
    if not r.ok then error(r.error, 0) end
  end
elseif mode == "single" then
  for i = 1, n do
    local r = row(i)
    org:upsert("sample_book", { sample_bookcode = r.sample_bookcode },
      { sample_name = r.sample_name, sample_author = r.sample_author })
    written = written + 1
  end
else
  io.stderr:write("bulk.lua: unknown mode '" .. mode .. "'\n")
  os.exit(2)
end
local seconds = monotonic() - t0
print(('{"rows":%d,"written":%d,"seconds":%.3f}'):format(n, written, seconds))
