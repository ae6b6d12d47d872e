/* dataverse.so's entry points for the embedded Lua submodules, so that another Lua can
 * require "dataverse.sync" (or any other) before, or without, require "dataverse". */
#ifndef DV_MODULE_H
#define DV_MODULE_H
#include <lua.h>

/* Registers every built-in module in package.preload if that was not done yet, then
 * returns require(name). The generated luaopen_dataverse_<x> functions call it. */
int dv_open_submodule(lua_State *L, const char *name);

#endif
