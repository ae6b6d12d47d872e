-- Runs busted inside the interpreter that loads this module, then exits with busted's status:
--
--   dvlua -l dataverse.busted [spec files or directories]
--   dvlua -l dataverse.busted -- [busted options] [spec files]   (options need the --)
--
-- `-l` runs before dvlua would run a script, so the first spec file (which dvlua took for
-- the script, arg[0]) is handed back to busted with the rest. Needs busted (Debian's
-- lua-busted). docs/TESTING.md.
local a = rawget(_G, "arg") or {}
local args = { [0] = "busted" }
-- With no script, arg[0] is the interpreter and arg[1..] its own options (nothing at arg[-1]).
if a[-1] ~= nil then
  args[1] = a[0]
  for i = 1, #a do args[#args + 1] = a[i] end
end
_G.arg = args

local ok, runner = pcall(require, "busted.runner")
if not ok then
  io.stderr:write("dvlua: dataverse.busted needs busted (apt-get install lua-busted): ", tostring(runner), "\n")
  os.exit(1)
end
runner { standalone = false }
os.exit(0)
