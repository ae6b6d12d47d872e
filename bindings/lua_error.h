/* The Lua face of dv_error: a table {status=, code=, message=, retry_after=, request_id=}
 * with the metatable registered as "dataverse.error" (readable __tostring), raised as the
 * error value so scripts can `pcall` and inspect it.
 *
 * Offers:
 *   dv_lua_push_error   push the error table
 *   dv_lua_raise        push it and raise it (does not return)
 *   dv_lua_error_meta   push the shared metatable (created on first use)
 */
#ifndef DV_LUA_ERROR_H
#define DV_LUA_ERROR_H

#include <lua.h>

#include "error.h"

#define DV_LUA_ERROR_META "dataverse.error"

/* Pushes {status=integer, code=string, message=string, retry_after=number|nil,
 * request_id=string|nil} with the "dataverse.error" metatable. */
void dv_lua_push_error(lua_State *L, const dv_error *e);

/* dv_lua_push_error, then lua_error. Declared int so C functions can `return dv_lua_raise(…)`. */
int dv_lua_raise(lua_State *L, const dv_error *e);

/* Pushes the "dataverse.error" metatable. */
void dv_lua_error_meta(lua_State *L);

#endif
