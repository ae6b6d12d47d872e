-- busted output: the usual terminal report, then one closing line "N passed, N failed, N skipped"
-- that CI and people read the same way (errors count as failures).
return function(options)
  local busted = require "busted"
  local style = (options.arguments and options.arguments[1]) or "plainTerminal"
  local handler = require("busted.outputHandlers." .. style)(options)
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("\n%d passed, %d failed, %d skipped\n", handler.successesCount,
      handler.failuresCount + handler.errorsCount, handler.pendingsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
