-- Runs the busted specs inside dvlua itself, so the binary under test is the interpreter
-- that runs them: `./dvlua spec/run.lua [busted options] [spec files]` (what `make test` does).
arg[0] = "busted"
require "busted.runner" { standalone = false }
