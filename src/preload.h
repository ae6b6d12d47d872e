/* Makes the built-in modules (cjson, dataverse and its Lua helpers) requirable. */
#ifndef DV_PRELOAD_H
#define DV_PRELOAD_H
#include <lua.h>

/* Registers every built-in module in package.preload; call after luaL_openlibs. */
void dv_preload(lua_State *L);

#endif
