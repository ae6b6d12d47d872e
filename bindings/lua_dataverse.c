/* The `dataverse` module: the native pieces gathered in one table, then handed to the
 * embedded Lua layer (bindings/dataverse/init.lua) which adds what reads better in Lua. */
#include <lauxlib.h>

#include "lua_modules.h"
#include "preload.h"
#include "version.h"

static void require_module(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
}

int luaopen_dataverse(lua_State *L)
{
    /* Loaded as dataverse.so by another Lua: the submodules and the embedded Lua helpers
     * are not in package.preload yet (dvlua registers them at start). */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    int have = lua_istable(L, -1) && lua_getfield(L, -1, "dataverse.init") != LUA_TNIL;
    lua_settop(L, 1);
    if (!have) dv_preload(L);

    lua_newtable(L);
    lua_pushliteral(L, DV_VERSION);
    lua_setfield(L, -2, "version");
    require_module(L, "dataverse.json");
    lua_setfield(L, -2, "json");
    require_module(L, "dataverse.emulator");
    lua_setfield(L, -2, "emulator");
    require_module(L, "dataverse.core");
    lua_setfield(L, -2, "core");

    /* init.lua returns a function that completes the module table. */
    require_module(L, "dataverse.init");
    lua_pushvalue(L, -2);
    lua_call(L, 1, 1);
    return 1;
}
