-- Used by bench/sync_stores.sh: creates one account through the API in the emulator
-- database named by $DB (the template the shell script copies N times with SQL).
local dataverse = require "dataverse"
local emu = dataverse.emulator.start { db = os.getenv("DB") }
local org = dataverse.connect { url = emu.url, token = "bench" }
org:create("account", { name = "Account", accountnumber = "N-1", telephone1 = "+41 44 000 00 00",
  emailaddress1 = "a@example.com", websiteurl = "https://example.com", numberofemployees = 42,
  revenue = 1234567.8912, description = "A description of some length, with a comma, and \"quotes\".",
  address1_city = "Zürich" })
emu:stop()
