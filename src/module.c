#include "module.h"

#include <lauxlib.h>

#include "preload.h"

int dv_open_submodule(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    int have = lua_istable(L, -1) && lua_getfield(L, -1, name) != LUA_TNIL;
    lua_settop(L, 0);
    if (!have) dv_preload(L);
    /* package.preload now answers for name: require loads it from there. */
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    return 1;
}
