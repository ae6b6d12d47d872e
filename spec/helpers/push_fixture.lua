-- Shared by the push specs: an in-process emulator holding the sample books table, a
-- scratch folder for the sources, and the table emptied between specs.
local dataverse = require "dataverse"
local E = require "emulator"
local h = require "sync_mirror"

local M = {}

-- Returns emu, org, dir.
function M.start()
  local emu = dataverse.emulator.start { db = ":memory:", key_delay = 0, faults = "" }
  local org = h.connect(emu)
  org:request("POST", "ImportSolution", E.import_body(E.books))
  return emu, org, h.tmpdir()
end

function M.stop(emu, org, dir)
  org:close()
  emu:stop()
  h.rmdir(dir)
end

-- Deletes every row of sample_book.
function M.clear(org)
  local ids = {}
  for r in org:query("sample_book", { columns = "sample_bookid" }) do ids[#ids + 1] = r.sample_bookid end
  if #ids > 0 then org:delete_many("sample_book", ids) end
end

return M
