/* The `dataverse.json` module: dvlua's lossless JSON codec (src/json.h) as seen from Lua.
 *   decode(text) -> value        encode(value) -> text
 *   array([t]) -> t marked as an array      array_mt: the marking metatable
 *   null (== cjson.null)                     empty_array: read-only, encodes as []
 */
#include <string.h>

#include <lauxlib.h>

#include "json.h"
#include "lua_modules.h"

#define BUF_MT "dataverse.json.buffer"

static int json_decode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    char err[256];
    if (dv_json_decode(L, s, len, err, sizeof err) != 0) return luaL_error(L, "%s", err);
    return 1;
}

/* The output buffer lives in a userdata so that it is freed even if pushing the result fails. */
static int buffer_gc(lua_State *L)
{
    dv_json_buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

static int json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    dv_json_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, BUF_MT);
    char err[512];
    if (dv_json_encode(L, 1, b, err, sizeof err) != 0) return luaL_error(L, "%s", err);
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    dv_json_buf_free(b);
    return 1;
}

static int json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_createtable(L, 0, 0);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (dv_json_is_array(L, 1)) return 1;
        if (lua_getmetatable(L, 1))
            return luaL_argerror(L, 1, "table already has a metatable; cannot mark it as an array");
    }
    dv_json_push_array_mt(L);
    lua_setmetatable(L, -2);
    return 1;
}

int luaopen_dataverse_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"decode", json_decode},
        {"encode", json_encode},
        {"array", json_array},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, BUF_MT)) {
        lua_pushcfunction(L, buffer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);

    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    dv_json_push_empty_array(L);
    lua_setfield(L, -2, "empty_array");
    dv_json_push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
    return 1;
}
