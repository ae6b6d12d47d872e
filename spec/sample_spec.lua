-- scripts/change_tracking_sample.lua, run as users run it: a child dvlua process talking over
-- HTTP to an in-memory emulator that this spec starts in-process (DATAVERSE_URL/TOKEN).
local dataverse = require "dataverse"
local dv = require "dv"

local SCRIPT = "scripts/change_tracking_sample.lua"
local SOLUTION_DIR = "scripts/solutions/ChangeTrackingSample"
local TOKEN = "sample-spec-token"

local function start_emulator(opts)
  opts = opts or {}
  opts.db = ":memory:"
  opts.token = opts.token or TOKEN
  if opts.key_delay == nil then opts.key_delay = 0 end
  return dataverse.emulator.start(opts)
end

local function run(emu, args, token)
  return dv.run(args, { env = { DATAVERSE_URL = emu.url, DATAVERSE_TOKEN = token or TOKEN } })
end

local function sample(emu, ...)
  return run(emu, { SCRIPT, ... })
end

-- What the script reported, read back from its output.
local function report(out)
  local r = { headings = {}, updated = {}, deleted = {} }
  for line in out:gmatch("[^\n]+") do
    if line == "Setup" or line == "Demonstrate" or line == "Clean up" then
      r.headings[#r.headings + 1] = line
    end
    local code, name, author = line:match("^    new or updated%s+(%S+)%s+(.-)%s+(%S+)$")
    if code then r.updated[#r.updated + 1] = { code = code, name = name, author = author } end
    local id = line:match("^    deleted%s+id (%S+)$")
    if id then r.deleted[#r.deleted + 1] = id end
    r.deleted_id = r.deleted_id or line:match("Deleted BookCode1 by its alternate key %(id (%S+)%)")
    local created, skipped = line:match("Books BookCode0%-BookCode9: (%d+) created, (%d+) skipped")
    if created then r.created, r.skipped = tonumber(created), tonumber(skipped) end
    local rows, pages = line:match("Initial synchronization: (%d+) rows? in (%d+) pages?")
    if rows then r.initial_rows, r.initial_pages = tonumber(rows), tonumber(pages) end
    local cpages = line:match("Changes since the data token, in (%d+) pages?")
    if cpages then r.change_pages = tonumber(cpages) end
  end
  return r
end

local function codes(updated)
  local list = {}
  for _, u in ipairs(updated) do list[#list + 1] = u.code end
  table.sort(list)
  return list
end

local function expected_codes(...)
  local list = { ... }
  table.sort(list)
  return list
end

local SECOND_BATCH_AND_0 = expected_codes("BookCode0", "BookCode10", "BookCode11", "BookCode12",
  "BookCode13", "BookCode14", "BookCode15", "BookCode16", "BookCode17", "BookCode18", "BookCode19")

local function connect(emu)
  return dataverse.connect { url = emu.url, token = TOKEN }
end

describe("change_tracking_sample.lua", function()
  local emu

  before_each(function() emu = start_emulator() end)
  after_each(function() emu:stop() end)

  it("runs the three phases and reports the changes since the data token", function()
    local r = sample(emu, "--keep")
    assert.equals(0, r.status, r.stderr)
    local rep = report(r.stdout)
    assert.same({ "Setup", "Demonstrate", "Clean up" }, rep.headings)
    assert.matches("Solution ChangeTrackingSample 1%.0%.0%.0 imported", r.stdout)
    assert.matches("Alternate key sample_bookcode:.* Active", r.stdout)
    assert.equals(10, rep.created)
    assert.equals(0, rep.skipped)
    assert.equals(10, rep.initial_rows)

    assert.equals(11, #rep.updated)
    assert.same(SECOND_BATCH_AND_0, codes(rep.updated))
    for _, u in ipairs(rep.updated) do
      local n = u.code:match("%d+$")
      assert.equals(n == "0" and "Demo Book 0 updated" or "Demo Book " .. n, u.name)
      assert.equals("Author" .. n, u.author)
    end
    assert.equals(1, #rep.deleted)
    assert.equals(rep.deleted_id, rep.deleted[1])
    assert.truthy(dataverse.odata.is_guid(rep.deleted[1]))
    assert.matches("kept", r.stdout)

    -- --keep left the table and the books in place, BookCode1 deleted
    local org <close> = connect(emu)
    assert.is_not_nil(org:solution("ChangeTrackingSample"))
    assert.equals(19, org:count("sample_book"))
    assert.is_nil(org:retrieve("sample_book", { sample_bookcode = "BookCode1" }))
  end)

  it("reports the id of the book it deleted", function()
    -- the book is created here, so its id is known independently of what the script prints
    local org <close> = connect(emu)
    org:import_solution(SOLUTION_DIR)
    org:wait_for_key("sample_book", "sample_bookcode", { timeout = 30 })
    local id = org:create("sample_book", { sample_bookcode = "BookCode1", sample_name = "Mine",
                                           sample_author = "Me" })
    local r = sample(emu, "--keep")
    assert.equals(0, r.status, r.stderr)
    local rep = report(r.stdout)
    assert.matches("is already installed", r.stdout)
    assert.equals(9, rep.created)
    assert.equals(1, rep.skipped)
    assert.same({ id }, rep.deleted)
    assert.same(SECOND_BATCH_AND_0, codes(rep.updated))
  end)

  it("runs again after --keep, and deletes the solution with no terminal and no flag", function()
    assert.equals(0, sample(emu, "--keep").status)
    local r = sample(emu)
    assert.equals(0, r.status, r.stderr)
    local rep = report(r.stdout)
    assert.matches("already installed", r.stdout)
    assert.equals(1, rep.created) -- BookCode1, deleted by the first run
    assert.equals(9, rep.skipped)
    assert.equals(19 + 1, rep.initial_rows)
    assert.same({ "BookCode0" }, codes(rep.updated))
    assert.equals(1, #rep.deleted)
    assert.matches("Solution ChangeTrackingSample deleted", r.stdout)
    local org <close> = connect(emu)
    assert.is_nil(org:solution("ChangeTrackingSample"))
  end)

  it("pages through the changes with --page-size and deletes with --delete", function()
    local r = sample(emu, "--page-size", "4", "--delete")
    assert.equals(0, r.status, r.stderr)
    local rep = report(r.stdout)
    assert.equals(10, rep.initial_rows)
    assert.equals(3, rep.initial_pages)
    assert.equals(3, rep.change_pages)
    assert.same(SECOND_BATCH_AND_0, codes(rep.updated))
    assert.equals(1, #rep.deleted)
    local org <close> = connect(emu)
    assert.is_nil(org:solution("ChangeTrackingSample"))
  end)

  it("reactivates a key whose index failed", function()
    local org <close> = connect(emu)
    org:import_solution(SOLUTION_DIR)
    emu:fail_key("sample_book", "sample_bookcode")
    local r = sample(emu, "--delete")
    assert.equals(0, r.status, r.stderr)
    assert.matches("Alternate key sample_bookcode: Failed .*%-> Active", r.stdout)
    assert.equals(11, #report(r.stdout).updated)
  end)

  it("says where it looked when the solution folder is missing", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dv.quote(dir)))
    finally(function() os.execute("rm -rf " .. dv.quote(dir)) end)
    dv.write_file(dir .. "/change_tracking_sample.lua", dv.read_file(SCRIPT))
    local r = run(emu, { dir .. "/change_tracking_sample.lua", "--delete" })
    assert.is_not.equals(0, r.status)
    assert.equals("change_tracking_sample: cannot find the solution source " .. dir
      .. "/solutions/ChangeTrackingSample/solution.xml (the script looks for "
      .. "solutions/ChangeTrackingSample next to itself and in ../share/dvlua/solutions)\n", r.stderr)
  end)

  it("imports the solution from a zip given with --solution", function()
    local solution = require "dataverse.solution"
    local zip = os.tmpname() .. ".zip"
    dv.write_file(zip, solution.pack(SOLUTION_DIR))
    finally(function() os.remove(zip) end)
    local r = sample(emu, "--solution", zip, "--keep")
    assert.equals(0, r.status, r.stderr)
    assert.matches("Solution ChangeTrackingSample 1%.0%.0%.0 imported from " .. zip:gsub("%p", "%%%0"), r.stdout)
    assert.equals(11, #report(r.stdout).updated)
    local org <close> = connect(emu)
    assert.equals(19, org:count("sample_book"))
  end)

  it("imports the solution from a folder given with --solution, wherever the script is", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dv.quote(dir .. "/elsewhere")))
    finally(function() os.execute("rm -rf " .. dv.quote(dir)) end)
    for _, f in ipairs { "solution.xml", "customizations.xml", "[Content_Types].xml" } do
      dv.write_file(dir .. "/elsewhere/" .. f, dv.read_file(SOLUTION_DIR .. "/" .. f))
    end
    dv.write_file(dir .. "/change_tracking_sample.lua", dv.read_file(SCRIPT))
    local r = run(emu, { dir .. "/change_tracking_sample.lua", "--solution", dir .. "/elsewhere", "--delete" })
    assert.equals(0, r.status, r.stderr)
    assert.matches("imported from " .. (dir .. "/elsewhere"):gsub("%p", "%%%0"), r.stdout)
    assert.matches("Solution ChangeTrackingSample deleted", r.stdout)
  end)

  it("names a --solution path that does not exist, or holds another solution", function()
    local r = sample(emu, "--solution", "/nonexistent/solution.zip", "--delete")
    assert.equals(1, r.status)
    assert.equals("change_tracking_sample: cannot open the solution /nonexistent/solution.zip given "
      .. "with --solution\n", r.stderr)
    local E = require "emulator"
    local other = os.tmpname() .. ".zip"
    dv.write_file(other, E.zip(E.solution_files { unique = "Other", tables = { { name = "sample_other",
      set = "sample_others", columns = { { name = "sample_name" } } } } }))
    finally(function() os.remove(other) end)
    r = sample(emu, "--solution", other, "--delete")
    assert.equals(1, r.status)
    assert.equals("change_tracking_sample: " .. other .. " does not hold the solution ChangeTrackingSample\n",
      r.stderr)
  end)

  it("ends with the server's refusal and a non-zero status", function()
    local r = run(emu, { SCRIPT, "--delete" }, "not-the-token")
    assert.is_not.equals(0, r.status)
    assert.matches("^change_tracking_sample: .*401", r.stderr)
    assert.falsy(r.stderr:find("not-the-token", 1, true), "the token was printed")
  end)

  it("refuses an unknown argument with its usage", function()
    local r = sample(emu, "--frobnicate")
    assert.equals(2, r.status)
    assert.matches("unknown argument: %-%-frobnicate\nusage: ", r.stderr)
  end)
end)
