-- Soak: the sync engine mirrors several tables round after round while the emulator throttles
-- (429), refuses (503), drops connections halfway through answers and delays; every round
-- ends with mirrors exactly equal to their tables.
local M = require "sync_mirror"
local sync = require "dataverse.sync"

local ROUNDS = 6 * math.max(1, math.floor(tonumber(os.getenv("DVLUA_SOAK") or "1") or 1))

describe("sync under injected faults, several tables", function()
  it("ends every round with exact mirrors", function()
    local emu, org = M.start()
    local dir = M.tmpdir()
    finally(function()
      M.rmdir(dir)
      emu:stop()
    end)
    -- Faults that stay on: every 9th request 503, every 13th 429, every 4th slowed down.
    emu:faults("503/9,429=0/13,delay=5/4")
    local dataverse = require "dataverse"
    local writer = dataverse.connect { url = emu.url, token = "spec", retries = 9 }
    local accounts = M.seed(writer, 20, "Soak")
    local contacts = {}
    for i = 1, 20 do
      contacts[#contacts + 1] = writer:create("contact", { firstname = "C" .. i, lastname = "Soak", numberofchildren = i })
    end
    local tables = { account = accounts, contact = contacts }
    local runs = 0
    for round = 1, ROUNDS do
      -- Writes of this round; a write that a fault made uncertain is simply not counted on:
      -- the mirrors are compared with the tables as they end up.
      pcall(M.churn, writer, accounts, { create = 4, update = 3, delete = 2 })
      for i = 1, 3 do
        pcall(writer.update, writer, "contact", contacts[i], { lastname = "Round " .. round, numberofchildren = round })
      end
      pcall(function() contacts[#contacts + 1] = writer:create("contact", { lastname = "New " .. round }) end)
      pcall(function() writer:delete("contact", table.remove(contacts, 5)) end)
      -- One-shot faults for the syncs that follow (with the standing ones, never more in a row
    -- than the 5 tries a request gets).
      emu:faults("429=0,drop,delay=40*3")
      for name in pairs(tables) do
        local r = M.script(emu, "sync_sqlite.lua", { "--table", name, "--db", dir .. "/" .. name .. ".sqlite",
          "--page-size", "7" })
        runs = runs + 1
        assert.equals(0, r.status, name .. " round " .. round .. ": " .. r.stderr)
      end
      for name in pairs(tables) do
        local store <close> = sync.sqlite(dir .. "/" .. name .. ".sqlite")
        M.assert_exact(org, store, name)
      end
    end
    assert.equals(ROUNDS * 2, runs)
  end)
end)
