/* The JSON array marks shared by the decoder, the encoder and the Lua binding. A Lua table cannot
 * tell an empty array from an empty object, so arrays carry a metatable that says which it is. */
#include "json.h"

#include <lauxlib.h>

/* Registry keys: the addresses of these objects are unique to this module. */
static const char array_mt_key = 'a';
static const char empty_array_key = 'e';

void dv_json_push_array_mt(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    /* No __name: marked arrays still print and type-check as plain tables. */
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

static int empty_array_newindex(lua_State *L)
{
    return luaL_error(L, "json.empty_array is read-only; use json.array() for a new array");
}

void dv_json_push_empty_array(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &empty_array_key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 0);
    /* Its own metatable, so writes are refused while the encoder still sees an array. */
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, empty_array_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "json.empty_array");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &empty_array_key);
}

int dv_json_is_array(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &empty_array_key) == LUA_TTABLE &&
        lua_rawequal(L, -1, idx)) {
        lua_pop(L, 1);
        return 1;
    }
    lua_pop(L, 1);
    if (!lua_getmetatable(L, idx)) return 0;
    dv_json_push_array_mt(L);
    int marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return marked;
}
