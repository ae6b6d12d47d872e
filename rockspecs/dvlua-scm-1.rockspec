-- Builds dvlua and the `dataverse` C module with the project's Makefile:
--   luarocks --lua-version=5.4 make rockspecs/dvlua-scm-1.rockspec
-- from the source tree. The C libraries come from the system (on Debian:
-- scripts/install-deps.sh); luarocks only checks their headers are there.
rockspec_format = "3.0"
package = "dvlua"
version = "scm-1"
source = {
  -- `luarocks make` builds the checkout it is run in; set the repository's address here
  -- before publishing the rock for `luarocks install`.
  url = "git+file://.",
}
description = {
  summary = "Lua 5.4 interpreter and module that speak Microsoft Dataverse",
  detailed = [[
    dvlua is a Lua 5.4 interpreter with the Dataverse Web API bound as Lua functions and a
    built-in emulator of that API. The `dataverse` C module carries the same bindings,
    emulator included, for any Lua 5.4: require "dataverse".
  ]],
  license = "MIT", -- as Lua itself; the tree has no LICENSE file yet
  labels = { "dataverse", "odata", "dynamics" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  CURL = { library = "curl" }, -- Debian keeps curl.h under a multiarch directory
  MICROHTTPD = { header = "microhttpd.h" },
  SQLITE3 = { header = "sqlite3.h" },
  LIBZIP = { header = "zip.h" },
  EXPAT = { header = "expat.h" },
  LIBEDIT = { header = "editline/readline.h" },
  LIBPQ = { library = "pq" }, -- dataverse_pg.so; Debian keeps libpq-fe.h under postgresql/
}
build = {
  type = "make",
  build_target = "all",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CHECK_DEPS = "",
  },
  install_target = "install",
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUA_CMOD = "$(LIBDIR)",
    CHECK_DEPS = "",
  },
}
