/* The Lua face of dv_error: a table {status=, code=, message=, retry_after=, request_id=}
 * with the metatable registered as "dataverse.error" (readable __tostring), raised as the
 * error value so scripts can `pcall` and inspect it.
 *
 * Offers:
 *   dv_lua_push_error   push the error table
 *   dv_lua_raise        push it and raise it (does not return)
 *   dv_lua_error_meta   push the shared metatable (created on first use)
 *   dv_lua_where        the script's position ("file:line: "), skipping library frames
 *   dv_lua_error_where  record that position in an error table
 *   dv_lua_unknown_option  the shared "unknown option" error, naming the closest valid one
 *   dv_lua_usage_error  a misuse error at the script's line, naming the API function
 */
#ifndef DV_LUA_ERROR_H
#define DV_LUA_ERROR_H

#include <lua.h>

#include "error.h"

#define DV_LUA_ERROR_META "dataverse.error"

/* Pushes {status=integer, code=string, message=string, retry_after=number|nil,
 * request_id=string|nil, where="source:line"|nil} with the "dataverse.error" metatable. */
void dv_lua_push_error(lua_State *L, const dv_error *e);

/* dv_lua_push_error, then lua_error. Declared int so C functions can `return dv_lua_raise(…)`. */
int dv_lua_raise(lua_State *L, const dv_error *e);

/* Pushes "source:line: " of the innermost function on the stack that is the script's own:
 * neither a C function nor one of the library's Lua files (chunks "@dataverse/…"); or ""
 * when there is none. Errors carry it so that they point at the script's line. */
void dv_lua_where(lua_State *L);

/* Sets t.where, t being the table at the top, to dv_lua_where's position (without the
 * trailing ": "), unless t already has one. */
void dv_lua_error_where(lua_State *L);

/* Raises "<where>fname: unknown option 'key' (did you mean '<closest>'?)", or with the list
 * of valid options when none is close; known is NULL-terminated. Does not return. */
int dv_lua_unknown_option(lua_State *L, const char *fname, const char *key,
                          const char *const *known);

/* Raises "<where><function>: <message>" for a mistake in how the script called the API,
 * <function> being the API function the script called (found on the stack past the
 * library's own frames). Formats as lua_pushfstring. Does not return. */
int dv_lua_usage_error(lua_State *L, const char *fmt, ...);

/* Pushes the "dataverse.error" metatable. */
void dv_lua_error_meta(lua_State *L);

#endif
