/* The native Lua modules built into dvlua (registered in package.preload by src/preload.c). */
#ifndef DV_LUA_MODULES_H
#define DV_LUA_MODULES_H
#include <lua.h>

int luaopen_dataverse(lua_State *L);          /* bindings/lua_dataverse.c */
int luaopen_dataverse_json(lua_State *L);     /* bindings/lua_json.c */
int luaopen_dataverse_emulator(lua_State *L); /* bindings/lua_emulator.c */
int luaopen_dataverse_core(lua_State *L);     /* bindings/lua_connection.c */
int luaopen_dataverse_solution(lua_State *L); /* bindings/lua_solution.c */
int luaopen_dataverse_http(lua_State *L);     /* bindings/lua_http.c */

#endif
