#!/usr/bin/env dvlua
-- Push rows from a CSV file or a SQLite table into a Dataverse table, keyed by an
-- alternate key: the inbound half of a sync (sync_sqlite.lua is the outbound half).
--
--   dvlua push.lua --table sample_book --key sample_bookcode --from data.csv
--                  [--from sqlite:FILE:TABLE] [--delete-missing [--allow-empty-source]]
--                  [--failures FILE] [--batch-size N]
--
-- Every run compares the source with what the table holds (one keyed read of the table)
-- and upserts, by alternate key and in bulk, only the rows that are missing or differ; so a
-- run stopped at any point (a crash, kill -9, a network failure) is completed by the next
-- one, and since every write is an upsert by key no row is ever created twice.
-- --delete-missing deletes the rows whose key is not in the source; with a source of no rows
-- it refuses to run (a truncated export would empty the table) unless --allow-empty-source
-- is given too. Rows Dataverse refuses
-- are listed in the failures file (CSV: source line, key, status, code, message) and make
-- the exit status 1; the other rows are written. Column names come from the CSV header
-- (or the SQLite table) and must be columns of the table. Connection settings come from
-- the environment (DATAVERSE_URL, …; none means the local emulator). See docs/SYNC.md.
local dataverse = require "dataverse"
local sync = require "dataverse.sync"

local USAGE = "usage: push.lua --table NAME --key COL[,COL] --from FILE.csv|sqlite:FILE:TABLE "
  .. "[--delete-missing [--allow-empty-source]] [--failures FILE] [--batch-size N]"
local NULL = dataverse.json.null

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- RFC 4180 CSV: quoted fields with "" escapes and line breaks inside quotes; CRLF or LF.
-- Returns header, rows (lists of strings) and the source line each row starts on.
local function read_csv(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot read %s", err) end
  local text = f:read("a")
  f:close()
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- UTF-8 BOM
  local records, lines = {}, {}
  local rec, field, i, n, line = {}, {}, 1, #text, 1
  local rec_line = 1
  local function end_field()
    rec[#rec + 1] = table.concat(field)
    field = {}
  end
  local function end_record()
    end_field()
    if not (#rec == 1 and rec[1] == "") then
      records[#records + 1] = rec
      lines[#lines + 1] = rec_line
    end
    rec = {}
    rec_line = line
  end
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' and #field == 0 then
      local j = i + 1
      while true do
        local q = text:find('"', j, true)
        if not q then fail("%s:%d: a quoted field is not closed", path, line) end
        local chunk = text:sub(j, q - 1)
        local _, nl = chunk:gsub("\n", "")
        line = line + nl
        field[#field + 1] = chunk
        if text:sub(q + 1, q + 1) == '"' then
          field[#field + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      local nx = text:sub(i, i)
      if nx ~= "," and nx ~= "\n" and nx ~= "\r" and nx ~= "" then
        fail("%s:%d: text after a closing quote", path, line)
      end
    elseif c == "," then
      end_field()
      i = i + 1
    elseif c == "\r" or c == "\n" then
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      line = line + 1
      end_record()
      i = i + 1
    else
      local j = text:find('[,\r\n"]', i)
      j = j or n + 1
      if text:sub(j, j) == '"' then fail("%s:%d: a quote inside an unquoted field", path, line) end
      field[#field + 1] = text:sub(i, j - 1)
      i = j
    end
  end
  if #field > 0 or #rec > 0 then end_record() end
  local header = table.remove(records, 1)
  table.remove(lines, 1)
  if not header then fail("%s is empty (a header line is needed)", path) end
  for r, rec2 in ipairs(records) do
    if #rec2 ~= #header then
      fail("%s:%d: %d fields where the header has %d", path, lines[r], #rec2, #header)
    end
  end
  return header, records, lines
end

local function read_sqlite(file, tbl)
  if not tbl:match("^[%a_][%w_]*$") then fail("'%s' is not a table name", tbl) end
  -- LuaSQL reads 64-bit integers whole (LuaDBI's SQLite driver cuts them to 32 bits).
  local env = require("luasql.sqlite3").sqlite3()
  local conn = env:connect(file)
  if not conn then
    env:close()
    fail("cannot open database %s", file)
  end
  local store = { close = function()
    conn:close()
    env:close()
  end }
  local cur = conn:execute("SELECT * FROM " .. tbl)
  if not cur then
    store.close()
    fail("%s has no table %s", file, tbl)
  end
  local header = cur:getcolnames()
  local rows, lines = {}, {}
  local row = cur:fetch({}, "n")
  while row do
    local r = {}
    for c = 1, #header do
      local v = row[c]
      r[c] = v == nil and "" or tostring(v)
    end
    rows[#rows + 1] = r
    lines[#lines + 1] = #rows
    row = cur:fetch({}, "n")
  end
  cur:close()
  store.close()
  return header, rows, lines
end

local INT = { Integer = true, Picklist = true, State = true, Status = true, BigInt = true }
local NUM = { Decimal = true, Money = true, Double = true }

-- The typed value a source text stands for in column col (nil: empty, i.e. null), or
-- false and what is wrong with it.
local function convert(col, text)
  if text == "" then return nil end
  local ty = col.type
  if INT[ty] then
    local v = math.tointeger(tonumber(text))
    if not v then return false, string.format("column %s: '%s' is not a whole number", col.name, text) end
    return v
  elseif NUM[ty] then
    local v = tonumber(text)
    if not v then return false, string.format("column %s: '%s' is not a number", col.name, text) end
    return v
  elseif ty == "Boolean" then
    local l = text:lower()
    if l == "true" or l == "1" then return true end
    if l == "false" or l == "0" then return false end
    return false, string.format("column %s: '%s' is not true or false", col.name, text)
  end
  return text
end

-- One part of a key as compared between the source and the table. Dataverse compares text
-- without regard to case (its SQL collation), so "BK-1" and "bk-1" are the same key; numbers
-- compare by value (2, 2.0 and "2" in a whole-number key are one key).
local function key_part(v)
  if type(v) == "string" then return v:lower() end
  if type(v) == "number" then
    if v == math.floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then return string.format("%d", math.tointeger(v)) end
    return string.format("%.17g", v)
  end
  return tostring(v)
end

local function same(a, b)
  if a == nil or a == NULL then return b == nil or b == NULL end
  if b == nil or b == NULL then return false end
  if type(a) == "number" and type(b) == "number" then return a == b end
  return tostring(a) == tostring(b)
end

local function csv_field(s)
  s = tostring(s == nil and "" or s)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

sync.main("push", function()
  local o = sync.options(arg, { table = "value", key = "value", from = "value", ["delete-missing"] = "flag",
    ["allow-empty-source"] = "flag", failures = "value", ["batch-size"] = "number", help = "flag" }, USAGE)
  if o.help then return print(USAGE) end
  if not o.table or not o.key or not o.from then error(USAGE, 0) end
  local monotonic = require("dataverse.core").now
  local t0 = monotonic()

  local org = dataverse.connect()
  local meta = sync.describe(org, o.table)
  local keys = sync.split(o.key)
  for _, k in ipairs(keys) do
    if not meta.columns[k] then fail("--key: %s is not a column of %s", k, meta.name) end
  end

  local header, records, lines
  local sq_file, sq_table = o.from:match("^sqlite:(.+):([^:]+)$")
  if sq_file then
    header, records, lines = read_sqlite(sq_file, sq_table)
  else
    header, records, lines = read_csv(o.from)
  end
  -- A source with no rows at all is far more often a truncated or failed export than a wish
  -- to empty the table, so --delete-missing does not take it as one unless told to.
  if o["delete-missing"] and #records == 0 and not o["allow-empty-source"] then
    fail("%s has no rows: --delete-missing would delete every row of %s; nothing done " ..
      "(add --allow-empty-source to empty the table)", o.from, meta.name)
  end
  local where_of = function(r) return sq_file and (o.from .. " row " .. lines[r]) or (o.from .. ":" .. lines[r]) end

  -- Columns: every header name must be a writable column of the table.
  local cols, pos = {}, {}
  for c, name in ipairs(header) do
    name = name:match("^%s*(.-)%s*$")
    local col = meta.columns[name]
    if not col then fail("%s: column '%s' is not a column of %s", o.from, name, meta.name) end
    if col.type == "Lookup" or col.type == "Customer" or col.type == "Owner" then
      fail("%s: column '%s' is a lookup; push writes plain columns only", o.from, name)
    end
    if pos[name] then fail("%s: column '%s' appears twice", o.from, name) end
    cols[c], pos[name] = col, c
  end
  for _, k in ipairs(keys) do
    if not pos[k] then fail("%s: the key column '%s' is not in the source", o.from, k) end
  end

  -- The source rows, typed, and checked before anything is written. A row with a value that
  -- does not fit its column, or with an empty key, is a failure of that row (listed with the
  -- others); it also keeps --delete-missing from deleting anything, since the row it stands
  -- for in the table cannot be known. Two rows with one key stop the run: which one is meant
  -- cannot be known either.
  local source, by_key, failed, unusable = {}, {}, {}, 0
  for r, rec in ipairs(records) do
    local row, kparts, bad = {}, {}, nil
    for c, col in ipairs(cols) do
      local v, err = convert(col, rec[c])
      if err then
        bad = bad or err
      else
        row[col.name] = v
      end
    end
    for _, k in ipairs(keys) do
      local v = row[k]
      if v == nil then
        bad = bad or string.format("the key column '%s' is empty", k)
      else
        kparts[#kparts + 1] = key_part(v)
      end
    end
    if bad then
      unusable = unusable + 1
      failed[#failed + 1] = { r = r, err = { status = "", code = "source", message = bad } }
      io.stderr:write(string.format("push: %s: %s; row not written\n", where_of(r), bad))
    else
      local ks = table.concat(kparts, "\0")
      local other = by_key[ks]
      if other then
        local differ = false
        for _, k in ipairs(keys) do differ = differ or records[r][pos[k]] ~= records[other][pos[k]] end
        fail("%s: the same key as %s%s", where_of(r), where_of(other),
          differ and " (Dataverse compares keys without regard to case)" or "")
      end
      by_key[ks] = r
      source[r] = { row = row, key = ks }
    end
  end

  -- What the table holds now, by key.
  local select = { meta.id }
  for _, col in ipairs(cols) do if col.name ~= meta.id then select[#select + 1] = col.name end end
  -- A row whose key is empty in the table matches no source row: it gets a key of its own
  -- (its id), so that --delete-missing deletes every such row, not one per run.
  local current = {}
  for row in org:query(meta.name, { columns = select, page_size = 5000 }) do
    local kparts = {}
    for _, k in ipairs(keys) do
      local v = row[k]
      if v == nil or v == NULL then
        kparts = { "\1" .. tostring(row[meta.id]) }
        break
      end
      kparts[#kparts + 1] = key_part(v)
    end
    current[table.concat(kparts, "\0")] = row
  end

  -- Only the rows that are missing or differ are written.
  local todo, todo_r = {}, {}
  local unchanged = 0
  for r = 1, #records do
    local s = source[r]
    local have = s and current[s.key]
    local differs = s ~= nil and have == nil
    if have then
      for _, col in ipairs(cols) do
        if not same(s.row[col.name], have[col.name]) then differs = true break end
      end
    end
    if differs then
      local body = {}
      for _, col in ipairs(cols) do
        local v = s.row[col.name]
        if v == nil then v = have and NULL or nil end
        body[col.name] = v
      end
      todo[#todo + 1] = body
      todo_r[#todo_r + 1] = r
    elseif s then
      unchanged = unchanged + 1
    end
  end

  local ok_tty = os.execute("test -t 2")
  local tty = ok_tty == true or ok_tty == 0
  local size = o["batch-size"] and math.floor(o["batch-size"]) or 1000
  local written, created = 0, 0
  -- One call: its chunks stay in flight within the connection's budget, each one sent as
  -- soon as another ends, instead of waiting for a group of them.
  local res = org:upsert_many(meta.name, todo, {
    key = keys, batch_size = size,
    on_progress = tty and function(done, total)
      io.stderr:write(string.format("\rpush %s: %d of %d rows sent ", meta.name, done, total))
      io.stderr:flush()
    end or nil,
  })
  for i, r in ipairs(res) do
    if r.error then
      failed[#failed + 1] = { r = todo_r[i], err = r.error }
    else
      written = written + 1
      if current[source[todo_r[i]].key] == nil then created = created + 1 end
    end
  end

  local deleted = 0
  if o["delete-missing"] and unusable > 0 then
    io.stderr:write(string.format("push: --delete-missing: nothing deleted, since %d source row(s) could not be read " ..
      "(the rows they stand for in the table cannot be known)\n", unusable))
  elseif o["delete-missing"] then
    local ids = {}
    for ks, row in pairs(current) do
      if not by_key[ks] then ids[#ids + 1] = row[meta.id] end
    end
    table.sort(ids)
    if #ids > 0 then
      local res = org:delete_many(meta.name, ids, { batch_size = size })
      for i, r in ipairs(res) do
        if r.error then failed[#failed + 1] = { id = ids[i], err = r.error } else deleted = deleted + 1 end
      end
    end
  end
  if tty then io.stderr:write("\r\27[K") end

  if o.failures then
    local f, err = io.open(o.failures, "wb")
    if not f then fail("cannot write the failures file: %s", err) end
    f:write("source,key,status,code,message\n")
    for _, x in ipairs(failed) do
      local src = x.r and where_of(x.r) or ("delete " .. x.id)
      local key = x.id
      if x.r then
        local parts = {}
        for i, k in ipairs(keys) do parts[i] = records[x.r][pos[k]] end
        key = table.concat(parts, ",")
      end
      local e = x.err
      f:write(table.concat({ csv_field(src), csv_field(key), csv_field(e.status), csv_field(e.code),
        csv_field(e.message) }, ","), "\n")
    end
    f:close()
  end
  -- How much the service held the run back: requests, retries, 429s and the time paused.
  local st = type(org.stats) == "function" and org:stats() or {}
  io.stderr:write(string.format("push %s: %d source rows, %d written (%d new), %d unchanged, %d deleted, %d failed, " ..
    "%.1fs; %d requests, %d retried, %d throttled, %.1fs waited\n", meta.name, #records, written, created, unchanged,
    deleted, #failed, monotonic() - t0, tonumber(st.requests) or 0, tonumber(st.retries) or 0,
    tonumber(st.throttled) or 0, tonumber(st.waited) or 0))
  if #failed > 0 then
    fail("%d row(s) failed%s", #failed, o.failures and (", listed in " .. o.failures) or " (--failures FILE lists them)")
  end
end)
