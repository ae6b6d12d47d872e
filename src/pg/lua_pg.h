/* `dataverse_pg`: a PostgreSQL connection for Lua over libpq, built as its own loadable
 * module (dataverse_pg.so) so that dvlua itself needs no libpq at run time.
 *
 *   local pg = require "dataverse_pg"
 *   local c = pg.connect("host=/run/postgresql dbname=crm")  -- "" or nil: the PG* variables
 *   c:exec("UPDATE t SET a = $1 WHERE id = $2", a, id)       -- -> rows affected
 *   c:query("SELECT * FROM t WHERE b > $1", 3)              -- -> {{col = value, …}, …}
 *   c:copy('COPY "t" ("id", "a") FROM STDIN', rows, 2)      -- rows: arrays of values
 *   c:status()                 -- "idle", "transaction", "failed transaction", "closed", …
 *   c:close()                  -- also __close and __gc
 *
 * Values are always bound (exec, query) or sent as COPY data (copy), never spliced into SQL:
 * nil is NULL, strings as they are, integers and floats as exact decimals, booleans true and
 * false. Query results: NULL is absent, integers (int2/4/8) are Lua integers, float4/8 Lua
 * floats, booleans booleans, everything else (numeric included, so no digit is lost) text.
 * Errors are tables {message=, sqlstate=, row=, column=} with __tostring. */
#ifndef DV_PG_LUA_PG_H
#define DV_PG_LUA_PG_H

#include <lua.h>

int luaopen_dataverse_pg(lua_State *L);

#endif
