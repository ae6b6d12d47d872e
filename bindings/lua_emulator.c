/* `dataverse.emulator`: start the built-in Web API emulator from Lua and drive its test
 * hooks. start{…} returns an object with .url, :stop(), :faults(spec), :advance(seconds),
 * :retention(seconds) and :fail_key(table, key); it stops on __close and __gc. */
#include <lauxlib.h>
#include <string.h>

#include "emulator/emulator.h"
#include "emulator/shared.h"
#include "lua_error.h"
#include "lua_modules.h"

#define EMU_MT "dataverse.emulator"

typedef struct {
    dv_emulator *emu;
} lemu;

static lemu *check(lua_State *L)
{
    lemu *u = luaL_checkudata(L, 1, EMU_MT);
    if (!u->emu) luaL_error(L, "the emulator was stopped");
    return u;
}

static const char *opt_string(lua_State *L, const char *key)
{
    lua_getfield(L, 1, key);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "bad option '%s' to 'start' (string expected, got %s)", key,
                       luaL_typename(L, -1));
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the options table keeps the string alive during start */
    return s;
}

static double opt_number(lua_State *L, const char *key, double dflt)
{
    lua_getfield(L, 1, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "bad option '%s' to 'start' (number expected, got %s)", key,
                       luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* A number field of the table at the top, at least min; def when absent. */
static double sub_number(lua_State *L, const char *opt, const char *key, double min, double def)
{
    lua_getfield(L, -1, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < min)
            luaL_error(L, "bad option '%s.%s' to 'start' (number of at least %f expected)", opt,
                       key, (lua_Number)min);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Refuses keys of the table at the top that are not in known. */
static void sub_known(lua_State *L, const char *opt, const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (int i = 0; known[i]; i++)
                ok |= strcmp(known[i], lua_tostring(L, -2)) == 0;
        if (!ok) {
            lua_pushfstring(L, "emulator.start{%s=}", opt);
            dv_lua_unknown_option(L, lua_tostring(L, -1),
                                  lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : "?",
                                  known);
        }
        lua_pop(L, 1);
    }
}

/* limits = true | {requests=, execution_ms=, concurrent=, window=} */
static void read_limits(lua_State *L, dv_emulator_options *o)
{
    static const char *const known[] = {"requests", "execution_ms", "concurrent", "window", NULL};
    int t = lua_getfield(L, 1, "limits");
    if (t == LUA_TBOOLEAN) {
        o->limits = lua_toboolean(L, -1);
    } else if (t == LUA_TTABLE) {
        sub_known(L, "limits", known);
        o->limits = 1;
        o->limit_requests = (long)sub_number(L, "limits", "requests", 1, 0);
        o->limit_execution_ms = (long)sub_number(L, "limits", "execution_ms", 1, 0);
        o->limit_concurrent = (int)sub_number(L, "limits", "concurrent", 1, 0);
        o->limit_window = sub_number(L, "limits", "window", 0.001, 0);
    } else if (t != LUA_TNIL) {
        luaL_error(L, "bad option 'limits' to 'start' (boolean or table expected, got %s)",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* latency = {request_ms=, per_row_ms=} */
static void read_latency(lua_State *L, dv_emulator_options *o)
{
    static const char *const known[] = {"request_ms", "per_row_ms", NULL};
    int t = lua_getfield(L, 1, "latency");
    if (t == LUA_TTABLE) {
        sub_known(L, "latency", known);
        o->latency_request_ms = sub_number(L, "latency", "request_ms", 0, 0);
        o->latency_per_row_ms = sub_number(L, "latency", "per_row_ms", 0, 0);
    } else if (t != LUA_TNIL && !(t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        luaL_error(L, "bad option 'latency' to 'start' (table expected, got %s)",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

static int l_start(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const known[] = {
        "db",       "host",      "port",           "token",     "faults",
        "max_body", "retention", "key_delay",      "timeout",   "limits",
        "latency",  "dop_hint",  "header_timeout", "max_conns", "max_conns_per_client",
        NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (int i = 0; known[i]; i++)
                ok |= strcmp(known[i], lua_tostring(L, -2)) == 0;
        if (!ok)
            return dv_lua_unknown_option(L, "emulator.start",
                                         lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?",
                                         known);
        lua_pop(L, 1);
    }
    dv_emulator_options o;
    memset(&o, 0, sizeof o);
    o.db = opt_string(L, "db");
    o.host = opt_string(L, "host");
    o.token = opt_string(L, "token");
    o.faults = opt_string(L, "faults");
    double port = opt_number(L, "port", 0);
    if (port < 0 || port > 65535) return luaL_error(L, "bad option 'port' (0..65535)");
    o.port = (unsigned short)port;
    o.max_body = (long)opt_number(L, "max_body", 0);
    o.retention = opt_number(L, "retention", 0);
    o.key_delay = opt_number(L, "key_delay", -1);
    o.conn_timeout = (unsigned)opt_number(L, "timeout", 0);
    o.header_timeout = (unsigned)opt_number(L, "header_timeout", 0);
    o.max_conns = (unsigned)opt_number(L, "max_conns", 0);
    o.max_conns_per_client = (unsigned)opt_number(L, "max_conns_per_client", 0);
    read_limits(L, &o);
    read_latency(L, &o);
    double dop = opt_number(L, "dop_hint", 0);
    if (dop < 0 || dop > 10000)
        return luaL_error(L, "bad option 'dop_hint' to 'start' (1 or more)");
    o.dop_hint = (int)dop;
    lemu *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->emu = NULL;
    luaL_setmetatable(L, EMU_MT);
    char err[512];
    u->emu = dv_emulator_start(&o, err, sizeof err);
    if (!u->emu) return luaL_error(L, "emulator: %s", err);
    return 1;
}

static int l_stop(lua_State *L)
{
    lemu *u = luaL_checkudata(L, 1, EMU_MT);
    dv_emulator_stop(u->emu);
    u->emu = NULL;
    return 0;
}

static int l_index(lua_State *L)
{
    lemu *u = luaL_checkudata(L, 1, EMU_MT);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "url") == 0) {
        if (!u->emu) return luaL_error(L, "the emulator was stopped");
        lua_pushstring(L, dv_emulator_url(u->emu));
        return 1;
    }
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int l_tostring(lua_State *L)
{
    lemu *u = luaL_checkudata(L, 1, EMU_MT);
    if (u->emu)
        lua_pushfstring(L, "dataverse.emulator (%s)", dv_emulator_url(u->emu));
    else
        lua_pushliteral(L, "dataverse.emulator (stopped)");
    return 1;
}

/* emu:faults("429*2,drop") or emu:faults{"429*2", "drop"} */
static int l_faults(lua_State *L)
{
    lemu *u = check(L);
    if (lua_istable(L, 2)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        lua_Integer n = luaL_len(L, 2);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti(L, 2, i) != LUA_TSTRING)
                return luaL_error(L, "bad argument #1 to 'faults' (item %d is not a string)",
                                  (int)i);
            if (i > 1) luaL_addchar(&b, ',');
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_replace(L, 2);
    }
    const char *spec = luaL_checkstring(L, 2);
    char err[512];
    if (dv_emulator_add_faults(u->emu, spec, err, sizeof err)) return luaL_error(L, "%s", err);
    return 0;
}

static int l_advance(lua_State *L)
{
    lemu *u = check(L);
    dv_emulator_advance(u->emu, luaL_checknumber(L, 2));
    return 0;
}

static int l_retention(lua_State *L)
{
    lemu *u = check(L);
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s > 0, 2, "retention must be positive seconds");
    dv_emulator_set_retention(u->emu, s);
    return 0;
}

static int l_fail_key(lua_State *L)
{
    lemu *u = check(L);
    char err[512];
    if (dv_emulator_fail_key(u->emu, luaL_checkstring(L, 2), luaL_checkstring(L, 3), err,
                             sizeof err))
        return luaL_error(L, "%s", err);
    return 0;
}

/* emu:hold_writes(table) -> a hold: the table's writers wait until hold:release() (or the
 * hold is closed or collected), as behind a long write of the table. Readers, and writers
 * of other tables, go on. */
#define HOLD_MT "dataverse.emulator.hold"
typedef struct {
    dv_emulator *emu;
    int handle; /* -1 once released */
    char table[64];
} lhold;

static int l_hold_writes(lua_State *L)
{
    lemu *u = check(L);
    const char *table = luaL_checkstring(L, 2);
    lhold *h = lua_newuserdatauv(L, sizeof *h, 1);
    h->emu = u->emu;
    h->handle = -1;
    snprintf(h->table, sizeof h->table, "%s", table);
    lua_pushvalue(L, 1); /* the emulator outlives its holds */
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, HOLD_MT);
    char err[256];
    if ((h->handle = dv_emulator_hold_writes(u->emu, table, err, sizeof err)) < 0)
        return luaL_argerror(L, 2, err);
    return 1;
}

static int l_hold_release(lua_State *L)
{
    lhold *h = luaL_checkudata(L, 1, HOLD_MT);
    if (h->handle >= 0) dv_emulator_release_writes(h->emu, h->handle);
    h->handle = -1;
    return 0;
}

static int l_hold_tostring(lua_State *L)
{
    lhold *h = luaL_checkudata(L, 1, HOLD_MT);
    lua_pushfstring(L, "dataverse.emulator hold on %s's writers (%s)", h->table,
                    h->handle >= 0 ? "held" : "released");
    return 1;
}

/* emu:stats([reset]) -> {requests=, throttled=, peak_concurrent=, concurrent=, busy_ms=,
 * lock_wait_ms=, latency_ms=, writes=, commits=, write_wait_ms=, write_ms=, commit_ms=} */
static int l_stats(lua_State *L)
{
    lemu *u = check(L);
    dv_emulator_stats s;
    dv_emulator_get_stats(u->emu, &s, lua_toboolean(L, 2));
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, s.requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, s.throttled);
    lua_setfield(L, -2, "throttled");
    lua_pushinteger(L, s.peak_concurrent);
    lua_setfield(L, -2, "peak_concurrent");
    lua_pushinteger(L, s.concurrent);
    lua_setfield(L, -2, "concurrent");
    lua_pushnumber(L, s.busy_ms);
    lua_setfield(L, -2, "busy_ms");
    lua_pushnumber(L, s.lock_wait_ms);
    lua_setfield(L, -2, "lock_wait_ms");
    lua_pushnumber(L, s.latency_ms);
    lua_setfield(L, -2, "latency_ms");
    lua_pushinteger(L, s.writes);
    lua_setfield(L, -2, "writes");
    lua_pushinteger(L, s.commits);
    lua_setfield(L, -2, "commits");
    lua_pushnumber(L, s.commit_ms);
    lua_setfield(L, -2, "commit_ms");
    lua_pushnumber(L, s.write_wait_ms);
    lua_setfield(L, -2, "write_wait_ms");
    lua_pushnumber(L, s.write_ms);
    lua_setfield(L, -2, "write_ms");
    return 1;
}

/* ---- the emulator shared by every process of one data directory (src/emulator/shared.h) ---- */

#define SHARED_MT "dataverse.emulator.shared"

typedef struct {
    int handle;
    char url[256];
} lshared;

/* attach(dir) -> an object with .url and :stop() (which lets go of it, not stops it) */
static int l_attach(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lshared *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->handle = -1;
    u->url[0] = 0;
    luaL_setmetatable(L, SHARED_MT);
    char err[600];
    if (dv_shared_attach(dir, u->url, sizeof u->url, &u->handle, err, sizeof err))
        return luaL_error(L, "emulator: %s", err);
    return 1;
}

static int l_detach(lua_State *L)
{
    lshared *u = luaL_checkudata(L, 1, SHARED_MT);
    dv_shared_detach(u->handle);
    u->handle = -1;
    return 0;
}

static int l_shared_index(lua_State *L)
{
    lshared *u = luaL_checkudata(L, 1, SHARED_MT);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "url") == 0) {
        if (u->handle < 0) return luaL_error(L, "the emulator was let go");
        lua_pushstring(L, u->url);
        return 1;
    }
    if (strcmp(k, "stop") == 0) {
        lua_pushcfunction(L, l_detach);
        return 1;
    }
    if (strcmp(k, "shared") == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return 0;
}

static int l_shared_tostring(lua_State *L)
{
    lshared *u = luaL_checkudata(L, 1, SHARED_MT);
    lua_pushfstring(L, "dataverse.emulator (shared, %s)", u->handle >= 0 ? u->url : "let go");
    return 1;
}

int luaopen_dataverse_emulator(lua_State *L)
{
    static const luaL_Reg shared_meta[] = {{"__index", l_shared_index},
                                           {"__gc", l_detach},
                                           {"__close", l_detach},
                                           {"__tostring", l_shared_tostring},
                                           {NULL, NULL}};
    luaL_newmetatable(L, SHARED_MT);
    luaL_setfuncs(L, shared_meta, 0);
    lua_pop(L, 1);
    static const luaL_Reg methods[] = {{"stop", l_stop},         {"faults", l_faults},
                                       {"advance", l_advance},   {"retention", l_retention},
                                       {"fail_key", l_fail_key}, {"hold_writes", l_hold_writes},
                                       {"stats", l_stats},       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__index", l_index},
                                    {"__gc", l_stop},
                                    {"__close", l_stop},
                                    {"__tostring", l_tostring},
                                    {NULL, NULL}};
    static const luaL_Reg hold_methods[] = {{"release", l_hold_release}, {NULL, NULL}};
    static const luaL_Reg hold_meta[] = {{"__gc", l_hold_release},
                                         {"__close", l_hold_release},
                                         {"__tostring", l_hold_tostring},
                                         {NULL, NULL}};
    luaL_newmetatable(L, HOLD_MT);
    luaL_setfuncs(L, hold_meta, 0);
    luaL_newlib(L, hold_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, EMU_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"start", l_start}, {"attach", l_attach}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
