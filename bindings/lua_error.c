#include "lua_error.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
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
    lua_getfield(L, 1, "where");
    const char *where = lua_tostring(L, -1);
    luaL_buffinit(L, &b);
    if (where && *where) {
        luaL_addstring(&b, where);
        luaL_addstring(&b, ": ");
    }
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

void dv_lua_where(lua_State *L)
{
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        if (strncmp(ar.source, "@dataverse/", 11) == 0) continue;
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        return;
    }
    lua_pushliteral(L, "");
}

/* Edit distance with adjacent swaps, for names of at most 63 bytes (longer: "far"). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 64;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

int dv_lua_unknown_option(lua_State *L, const char *fname, const char *key,
                          const char *const *known)
{
    const char *best = NULL;
    size_t bd = 0;
    for (int i = 0; known[i]; i++) {
        size_t d = distance(key, known[i]);
        if (!best || d < bd) best = known[i], bd = d;
    }
    dv_lua_where(L);
    if (best && (bd <= 2 || bd <= strlen(key) / 3)) {
        lua_pushfstring(L, "%s%s: unknown option '%s' (did you mean '%s'?)", lua_tostring(L, -1),
                        fname, key, best);
        return lua_error(L);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; known[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, known[i]);
    }
    luaL_pushresult(&b);
    lua_pushfstring(L, "%s%s: unknown option '%s' (valid options: %s)", lua_tostring(L, -2), fname,
                    key, lua_tostring(L, -1));
    return lua_error(L);
}

int dv_lua_usage_error(lua_State *L, const char *fmt, ...)
{
    lua_Debug ar;
    const char *fname = NULL;
    char where[256] = "";
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sln", &ar)) continue;
        if (ar.currentline > 0 && strncmp(ar.source, "@dataverse/", 11) != 0) {
            snprintf(where, sizeof where, "%s:%d: ", ar.short_src, ar.currentline);
            break;
        }
        if (ar.name) fname = ar.name; /* as its caller named it: the outermost is the script's */
    }
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, "%s%s: %s", where, fname ? fname : "dataverse", msg);
    return lua_error(L);
}

void dv_lua_error_where(lua_State *L)
{
    if (lua_getfield(L, -1, "where") != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    dv_lua_where(L);
    size_t n;
    const char *w = lua_tolstring(L, -1, &n);
    if (n > 2) {
        lua_pushlstring(L, w, n - 2); /* without the ": " */
        lua_setfield(L, -3, "where");
    }
    lua_pop(L, 1);
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
    dv_lua_error_where(L);
    dv_lua_error_meta(L);
    lua_setmetatable(L, -2);
}

int dv_lua_raise(lua_State *L, const dv_error *e)
{
    dv_lua_push_error(L, e);
    return lua_error(L);
}
