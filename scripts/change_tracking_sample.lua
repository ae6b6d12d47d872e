#!/usr/bin/env dvlua
-- Microsoft's change tracking sample ("Synchronize data with external systems using change
-- tracking", RetrieveEntityChanges), step by step, with dvlua:
--
--   dvlua scripts/change_tracking_sample.lua [--delete | --keep] [--url URL] [--page-size N]
--                                            [--solution PATH]
--
-- Setup: import the ChangeTrackingSample solution (table sample_book with the alternate key
-- sample_bookcode) from solutions/ChangeTrackingSample/ next to this script, or from the
-- folder or zip given with --solution (Microsoft's own export of it, say), wait for the key's
-- index, create ten books.
-- Demonstrate: retrieve the table's changes with no token and keep the data token; create,
-- update and delete books; retrieve the changes since the token and show them.
-- Clean up: delete the solution, which removes the table and its rows (--delete), or keep it
-- (--keep); without either flag it asks, or deletes when stdin is not a terminal.
--
-- With no DATAVERSE_URL (and no --url) it runs against dvlua's built-in emulator. Copy this
-- file and change it: everything it does goes through the public `dataverse` module.
local dataverse = require "dataverse"

local SOLUTION = "ChangeTrackingSample"
local TABLE = "sample_book"
local KEY = "sample_bookcode"
local COLUMNS = { "sample_bookcode", "sample_name", "sample_author" }
-- "A record with the same value for the alternate key already exists"; the SDK reports it
-- as -2147088238.
local DUPLICATE_KEY = { ["0x80060892"] = true, ["-2147088238"] = true }

local function usage()
  io.stderr:write("usage: dvlua change_tracking_sample.lua [--delete | --keep] [--url URL] ",
    "[--page-size N] [--solution PATH]\n")
  os.exit(2)
end

local function fail(message)
  io.stderr:write("change_tracking_sample: ", message, "\n")
  os.exit(1)
end

-- Command line.
local opts = { page_size = 5000 }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--delete" or a == "--keep" then
      opts.cleanup = a:sub(3)
    elseif a == "--url" and arg[i + 1] then
      opts.url, i = arg[i + 1], i + 1
    elseif a == "--solution" and arg[i + 1] then
      opts.solution, i = arg[i + 1], i + 1
    elseif a == "--page-size" and math.tointeger(tonumber(arg[i + 1])) then
      opts.page_size, i = math.tointeger(tonumber(arg[i + 1])), i + 1
    else
      if a ~= "--help" and a ~= "-h" then io.stderr:write("unknown argument: ", a, "\n") end
      usage()
    end
    i = i + 1
  end
end

-- The solution to import: --solution PATH (a folder or a zip, such as the solution exported
-- from an organization), else the source next to this script (solutions/ChangeTrackingSample/
-- in the source tree), or, installed as <prefix>/bin/dvlua-sample, in
-- <prefix>/share/dvlua/solutions.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local solution_dir = here .. "/solutions/" .. SOLUTION
for _, dir in ipairs { solution_dir, here .. "/../share/dvlua/solutions/" .. SOLUTION } do
  local f = io.open(dir .. "/solution.xml", "rb")
  if f then
    f:close()
    solution_dir = dir
    break
  end
end

local function say(fmt, ...) io.write(fmt:format(...), "\n") io.flush() end
local function heading(title) say("\n%s", title) end

-- A Dataverse error is a table with a code; anything else (a string) is not one we skip.
local function error_code(err)
  return type(err) == "table" and tostring(err.code) or nil
end

-- Creates a book unless its code exists already; returns true when it was created.
local function create_book(org, i)
  local ok, err = pcall(org.create, org, TABLE, {
    sample_name = "Demo Book " .. i,
    sample_bookcode = "BookCode" .. i,
    sample_author = "Author" .. i,
  })
  if ok then return true end
  if DUPLICATE_KEY[error_code(err)] then return false end
  error(err, 0)
end

local function create_books(org, from, to)
  local created, skipped = 0, 0
  for i = from, to do
    if create_book(org, i) then created = created + 1 else skipped = skipped + 1 end
  end
  return created, skipped
end

-- RetrieveEntityChanges page by page, as the SDK sample loops on MoreRecords.
local function retrieve_changes(org, data_version)
  local all, pages = {}, 0
  local request = { entity = TABLE, columns = COLUMNS, page_size = opts.page_size,
                    data_version = data_version }
  while true do
    local page = org:retrieve_entity_changes(request)
    pages = pages + 1
    for _, change in ipairs(page.changes) do all[#all + 1] = change end
    if not page.more_records then return all, page.data_token, pages end
    request.paging_cookie = page.paging_cookie
  end
end

local function plural(n, one, many) return ("%d %s"):format(n, n == 1 and one or many) end

local function show_changes(changes)
  local updated, deleted = 0, 0
  for _, c in ipairs(changes) do
    if c.type == "new_or_updated" then updated = updated + 1 else deleted = deleted + 1 end
  end
  say("  %s: %d new or updated, %d deleted", plural(#changes, "change", "changes"), updated,
    deleted)
  if #changes == 0 then return end
  say("")
  say("    %-16s %-12s %-24s %s", "Change", "Code", "Name", "Author")
  for _, c in ipairs(changes) do
    if c.type == "new_or_updated" then
      local row = c.row
      say("    %-16s %-12s %-24s %s", "new or updated", tostring(row.sample_bookcode),
        tostring(row.sample_name), tostring(row.sample_author))
    else
      say("    %-16s id %s", "deleted", tostring(c.id))
    end
  end
end

local function wants_delete()
  if opts.cleanup then return opts.cleanup == "delete" end
  -- Only ask someone who can answer.
  if not os.execute("test -t 0") then return true end
  io.write(("Delete the solution %s and its table %s? [y/n] (y): "):format(SOLUTION, TABLE))
  io.flush()
  local answer = (io.read("l") or ""):lower()
  return answer == "" or answer == "y" or answer == "yes"
end

local function main()
  local org <close> = dataverse.connect(opts.url and { url = opts.url } or nil)
  say("Change tracking sample (RetrieveEntityChanges)")

  heading("Setup")
  local installed = org:solution(SOLUTION)
  if installed then
    say("  Solution %s %s is already installed", SOLUTION, tostring(installed.version))
  else
    local source = opts.solution or solution_dir
    if not opts.solution then
      local f = io.open(solution_dir .. "/solution.xml", "rb")
      if not f then
        error(("cannot find the solution source %s/solution.xml (the script looks for "
          .. "solutions/%s next to itself and in ../share/dvlua/solutions)"):format(solution_dir,
          SOLUTION), 0)
      end
      f:close()
    else
      local f = io.open(source, "rb")
      if not f then
        error(("cannot open the solution %s given with --solution"):format(source), 0)
      end
      f:close()
    end
    org:import_solution(source, { overwrite = false, publish_workflows = false })
    installed = org:solution(SOLUTION)
    if not installed then
      error(("%s does not hold the solution %s"):format(source, SOLUTION), 0)
    end
    say("  Solution %s %s imported from %s", SOLUTION, tostring(installed.version), source)
  end

  -- The key's index is built asynchronously after the import; rows written before it is
  -- Active could break its uniqueness, so the sample waits.
  io.write(("  Alternate key %s:"):format(KEY))
  io.flush()
  local last, waited = nil, 0
  org:wait_for_key(TABLE, KEY, {
    timeout = 300,
    on_progress = function(status, elapsed)
      if status ~= last then
        io.write(last and " -> " or " ", tostring(status))
        io.flush()
        last = status
      end
      waited = tonumber(elapsed) or waited
    end,
  })
  say(" (after %.1f s)", waited)

  local created, skipped = create_books(org, 0, 9)
  say("  Books BookCode0-BookCode9: %d created, %d skipped (code already exists)", created,
    skipped)

  heading("Demonstrate")
  local rows, token, pages = retrieve_changes(org, nil)
  say("  Initial synchronization: %s in %s; data token kept", plural(#rows, "row", "rows"),
    plural(pages, "page", "pages"))

  created, skipped = create_books(org, 10, 19)
  say("  Books BookCode10-BookCode19: %d created, %d skipped (code already exists)", created,
    skipped)
  org:update(TABLE, { sample_bookcode = "BookCode0" }, { sample_name = "Demo Book 0 updated" })
  say("  Updated BookCode0 by its alternate key")
  local doomed = org:retrieve(TABLE, { sample_bookcode = "BookCode1" }, { columns = { "sample_bookid" } })
  org:delete(TABLE, { sample_bookcode = "BookCode1" })
  say("  Deleted BookCode1 by its alternate key (id %s)", doomed and tostring(doomed.sample_bookid)
    or "unknown")

  local changes
  changes, token, pages = retrieve_changes(org, token)
  say("  Changes since the data token, in %s:", plural(pages, "page", "pages"))
  show_changes(changes)

  heading("Clean up")
  if wants_delete() then
    org:uninstall_solution(SOLUTION)
    say("  Solution %s deleted, with the table %s and its rows", SOLUTION, TABLE)
  else
    say("  Solution %s kept; run again with --delete to remove it", SOLUTION)
  end
end

local ok, err = pcall(main)
if not ok then fail(tostring(err)) end
