/* Helpers of the dataverse.http binding that other bindings share. */
#ifndef DV_LUA_HTTP_H
#define DV_LUA_HTTP_H
#include <lua.h>

#include "http.h"

/* Pushes the response headers as a table keyed by lower-case name; repeated headers are
 * joined with ", " as HTTP allows. */
void dv_lua_push_headers(lua_State *L, const dv_http_resp *r);

#endif
