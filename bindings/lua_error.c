#include "lua_error.h"

#include <lauxlib.h>
#include <string.h>

/* Reads the fields back from the table, so a script that adjusts them sees its change. */
static int error_tostring(lua_State *L)
{
    lua_Integer status;
    const char *code, *message, *rid;
    luaL_Buffer b;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "status");
    status = lua_tointeger(L, -1);
    lua_getfield(L, 1, "code");
    code = lua_tostring(L, -1);
    lua_getfield(L, 1, "message");
    message = lua_tostring(L, -1);
    lua_getfield(L, 1, "request_id");
    rid = lua_tostring(L, -1);
    luaL_buffinit(L, &b);
    if (status > 0) {
        lua_pushfstring(L, "HTTP %d", (int)status);
        luaL_addvalue(&b);
        /* "http" only repeats the status, so it is left out. */
        if (code && *code && strcmp(code, "http") != 0) {
            luaL_addchar(&b, ' ');
            luaL_addstring(&b, code);
        }
    } else {
        luaL_addstring(&b, code && *code ? code : "error");
    }
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, message ? message : "(no message)");
    if (rid && *rid) {
        luaL_addstring(&b, " [request id ");
        luaL_addstring(&b, rid);
        luaL_addchar(&b, ']');
    }
    luaL_pushresult(&b);
    return 1;
}

void dv_lua_error_meta(lua_State *L)
{
    if (luaL_newmetatable(L, DV_LUA_ERROR_META)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
}

void dv_lua_push_error(lua_State *L, const dv_error *e)
{
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)e->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, e->code[0] ? e->code : "error");
    lua_setfield(L, -2, "code");
    lua_pushstring(L, e->message);
    lua_setfield(L, -2, "message");
    if (e->retry_after >= 0) {
        lua_pushnumber(L, e->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    if (e->request_id[0]) {
        lua_pushstring(L, e->request_id);
        lua_setfield(L, -2, "request_id");
    }
    dv_lua_error_meta(L);
    lua_setmetatable(L, -2);
}

int dv_lua_raise(lua_State *L, const dv_error *e)
{
    dv_lua_push_error(L, e);
    return lua_error(L);
}
