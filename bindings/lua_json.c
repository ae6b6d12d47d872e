/* Placeholder until this module lands. */
#include <lauxlib.h>

#include "lua_modules.h"

int luaopen_dataverse_json(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
