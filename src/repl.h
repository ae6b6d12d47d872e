/* The interactive loop of `dvlua -i` (and of a bare `dvlua` on a terminal), after lua.c:
 * lines edited and remembered through libedit, history kept in the data directory,
 * results printed by dataverse.pretty, `dataverse` and a lazily connected `org` as globals
 * (bindings/dataverse/interactive.lua). */
#ifndef DV_REPL_H
#define DV_REPL_H
#include <lua.h>

/* Runs a loaded chunk (with Ctrl-C handling and tracebacks) as the interpreter does. */
typedef int (*dv_repl_call)(lua_State *L, int narg, int nres);
/* Prints a failed status's message from the top of the stack and pops it. */
typedef int (*dv_repl_report)(lua_State *L, int status);

/* Reads, runs and prints until end of input; returns when stdin is exhausted. */
void dv_repl(lua_State *L, dv_repl_call call, dv_repl_report report);

#endif
