#include "preload.h"

#include <lauxlib.h>
#include <lua-cjson.h>

#include "embedded.h"
#include "lua_modules.h"

static int load_embedded(lua_State *L)
{
    const struct dv_embedded *e = lua_touserdata(L, lua_upvalueindex(1));
    /* Bytecode made at build time from the repository's own files (Makefile, LUAC). */
    if (luaL_loadbufferx(L, e->source, e->len, e->chunk, "b") != LUA_OK) return lua_error(L);
    lua_pushvalue(L, 1); /* module name, as require passes it */
    lua_call(L, 1, 1);
    return 1;
}

void dv_preload(lua_State *L)
{
    static const luaL_Reg native[] = {
        {"cjson", luaopen_cjson},
        {"dataverse", luaopen_dataverse},
        {"dataverse.json", luaopen_dataverse_json},
        {"dataverse.emulator", luaopen_dataverse_emulator},
        {"dataverse.core", luaopen_dataverse_core},
        {"dataverse.solution", luaopen_dataverse_solution},
        {"dataverse.http", luaopen_dataverse_http},
        {NULL, NULL},
    };
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *r = native; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    for (const struct dv_embedded *e = dv_embedded_lua; e->module; e++) {
        lua_pushlightuserdata(L, (void *)e);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, e->module);
    }
    lua_pop(L, 1);
}
