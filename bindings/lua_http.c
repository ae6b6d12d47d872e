/* `dataverse.http`: the low-level HTTP connection as Lua sees it.
 *
 *   local http = require "dataverse.http"
 *   local c = http.new{ timeout = 30, retries = 4, token = "..." }
 *   local status, headers, body = c:request("GET", url, nil, { Accept = "application/json" })
 *
 * Failures raise a "dataverse.error" table (bindings/lua_error.h). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "lua_error.h"
#include "lua_http.h"
#include "lua_modules.h"

#define HTTP_META "dataverse.http.connection"

typedef struct lua_http {
    dv_http *h;
} lua_http;

static lua_http *check_conn(lua_State *L, int idx)
{
    lua_http *c = luaL_checkudata(L, idx, HTTP_META);
    if (!c->h) luaL_argerror(L, idx, "the connection is closed");
    return c;
}

/* ---- options ---- */

static const char *const known_options[] = {
    "timeout",
    "connect_timeout",
    "retries",
    "max_tries",
    "backoff_base",
    "backoff_cap",
    "insecure_skip_tls_verify",
    "allow_insecure_http",
    "trace",
    "user_agent",
    "token",
    "tenant_id",
    "client_id",
    "client_secret",
    "authority_host",
    "scope",
    "url",
    "device_code",
    "refresh_margin",
    "from_env",
    NULL,
};

static void check_known(lua_State *L, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (int i = 0; known_options[i]; i++)
                if (strcmp(k, known_options[i]) == 0) ok = 1;
        }
        if (!ok) {
            lua_pushvalue(L, -2);
            dv_lua_unknown_option(L, "http.new", luaL_tolstring(L, -1, NULL), known_options);
        }
        lua_pop(L, 1);
    }
}

/* Seconds (a Lua number) to milliseconds; 0 when absent. */
static long opt_ms(lua_State *L, int t, const char *name)
{
    long ms = 0;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        int isnum;
        lua_Number s = lua_tonumberx(L, -1, &isnum);
        if (!isnum || s < 0 || s > 86400.0 * 7)
            luaL_argerror(L, 1,
                          lua_pushfstring(L, "option '%s' must be a number of seconds", name));
        ms = (long)(s * 1000.0 + 0.5);
        if (ms == 0 && s > 0) ms = 1;
    }
    lua_pop(L, 1);
    return ms;
}

static lua_Integer opt_int(lua_State *L, int t, const char *name, lua_Integer lo, lua_Integer hi)
{
    lua_Integer v = -1;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        int isnum;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < lo || v > hi)
            luaL_argerror(L, 1,
                          lua_pushfstring(L, "option '%s' must be an integer from %d to %d", name,
                                          (int)lo, (int)hi));
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int t, const char *name)
{
    int v;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_argerror(L, 1, lua_pushfstring(L, "option '%s' must be a boolean", name));
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string value stays valid while the options table is alive (it holds a reference). */
static const char *opt_str(lua_State *L, int t, const char *name)
{
    const char *s = NULL;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, 1, lua_pushfstring(L, "option '%s' must be a string", name));
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return s;
}

/* Builds the token provider the options ask for; NULL when they ask for none. */
static dv_auth *auth_from_options(lua_State *L, int t, dv_error *err)
{
    dv_auth_options o;
    const char *url = opt_str(L, t, "url");
    char scope[512];
    dv_auth_options_init(&o);
    dv_error_clear(err);
    o.token = opt_str(L, t, "token");
    o.tenant_id = opt_str(L, t, "tenant_id");
    o.client_id = opt_str(L, t, "client_id");
    o.client_secret = opt_str(L, t, "client_secret");
    o.authority_host = opt_str(L, t, "authority_host");
    o.scope = opt_str(L, t, "scope");
    o.refresh_margin_s = opt_ms(L, t, "refresh_margin") / 1000;
    if (!o.scope && url) {
        if (dv_auth_scope_for_url(url, scope, sizeof scope))
            luaL_argerror(L, 1, "option 'url' must be an absolute URL (https://host/...)");
        o.scope = scope;
    }
    o.allow_insecure_http = opt_bool(L, t, "allow_insecure_http");
    if (opt_bool(L, t, "from_env")) return dv_auth_from_env(url, o.allow_insecure_http, err);
    if (o.token)
        o.kind = DV_AUTH_STATIC;
    else if (opt_bool(L, t, "device_code"))
        o.kind = DV_AUTH_DEVICE_CODE;
    else if (o.client_secret || o.tenant_id || o.client_id)
        o.kind = DV_AUTH_CLIENT_CREDENTIALS;
    else
        return NULL;
    return dv_auth_new(&o, err);
}

static int l_new(lua_State *L)
{
    dv_http_options o;
    dv_error err;
    dv_auth *auth;
    lua_http *c;
    lua_Integer tries, retries;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    check_known(L, 1);
    dv_http_options_init(&o);
    o.timeout_ms = opt_ms(L, 1, "timeout");
    o.connect_timeout_ms = opt_ms(L, 1, "connect_timeout");
    o.backoff_base_ms = opt_ms(L, 1, "backoff_base");
    o.backoff_cap_ms = opt_ms(L, 1, "backoff_cap");
    tries = opt_int(L, 1, "max_tries", 1, 100);
    retries = opt_int(L, 1, "retries", 0, 99);
    if (tries > 0 && retries >= 0 && tries != retries + 1)
        luaL_argerror(L, 1, "options 'retries' and 'max_tries' disagree (max_tries = retries + 1)");
    o.max_tries = (int)(tries > 0 ? tries : retries >= 0 ? retries + 1 : 0);
    o.insecure_skip_tls_verify = opt_bool(L, 1, "insecure_skip_tls_verify");
    o.allow_insecure_http = opt_bool(L, 1, "allow_insecure_http");
    o.trace = opt_bool(L, 1, "trace");
    o.user_agent = opt_str(L, 1, "user_agent");

    c = lua_newuserdatauv(L, sizeof *c, 0);
    c->h = NULL;
    luaL_setmetatable(L, HTTP_META);
    /* Built before the dv_http so a config error leaves nothing to free. */
    auth = auth_from_options(L, 1, &err);
    if (!auth && err.code[0]) return dv_lua_raise(L, &err);
    c->h = dv_http_new(&o, &err);
    if (!c->h) {
        dv_auth_free(auth);
        return dv_lua_raise(L, &err);
    }
    dv_http_set_auth(c->h, auth);
    return 1;
}

/* ---- request ---- */

static int valid_header_part(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* Collects header lines into a table at the top of the stack; returns their count. */
static int collect_headers(lua_State *L, int idx)
{
    int n = 0;
    lua_newtable(L);
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TNUMBER) {
            const char *line = luaL_checkstring(L, -1);
            if (!strchr(line, ':') || !valid_header_part(line))
                luaL_argerror(L, idx, "header lines must read \"Name: value\" on one line");
            lua_pushvalue(L, -1);
        } else if (lua_type(L, -2) == LUA_TSTRING &&
                   (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
            const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
            if (!*name || strchr(name, ':') || !valid_header_part(name) ||
                !valid_header_part(value))
                luaL_argerror(L, idx,
                              lua_pushfstring(L, "header '%s' has a bad name or value", name));
            lua_pushfstring(L, "%s: %s", name, value);
        } else {
            luaL_argerror(L, idx, "headers must map names to strings");
        }
        lua_rawseti(L, -4, ++n);
        lua_pop(L, 1);
    }
    return n;
}

void dv_lua_push_headers(lua_State *L, const dv_http_resp *r)
{
    lua_createtable(L, 0, (int)r->nheaders);
    for (size_t i = 0; i < r->nheaders; i++) {
        luaL_Buffer b;
        const char *name = r->headers[i].name;
        size_t n = strlen(name);
        char *lower = luaL_buffinitsize(L, &b, n);
        for (size_t k = 0; k < n; k++)
            lower[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] + 32 : name[k]);
        luaL_pushresultsize(&b, n);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            /* A repeated header: join the values as HTTP allows. */
            lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), r->headers[i].value);
            lua_remove(L, -2);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, r->headers[i].value);
        }
        lua_rawset(L, -3);
    }
}

static int l_request(lua_State *L)
{
    lua_http *c = check_conn(L, 1);
    const char *method = luaL_checkstring(L, 2);
    const char *url = luaL_checkstring(L, 3);
    size_t blen = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &blen);
    const char **lines;
    int n, rc;
    dv_http_req req;
    dv_http_resp resp;
    dv_error err;
    if (!*method || strpbrk(method, " \r\n"))
        return luaL_argerror(L, 2, "method must be a single word such as \"GET\"");
    if (!strstr(url, "://"))
        return luaL_argerror(L, 3, "url must be absolute (http:// or https://)");
    n = collect_headers(L, 5);
    lines = lua_newuserdatauv(L, sizeof *lines * (size_t)(n + 1), 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -2, i + 1);
        lines[i] = lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
    }
    lines[n] = NULL;
    req.method = method;
    req.url = url;
    req.headers = lines;
    req.body = body;
    req.body_len = blen;
    req.flags = 0;
    rc = dv_http_request(c->h, &req, &resp, &err);
    if (rc) {
        dv_lua_push_error(L, &err);
        if (resp.status > 0) {
            lua_pushlstring(L, resp.body ? resp.body : "", resp.body_len);
            lua_setfield(L, -2, "body");
        }
        dv_http_resp_free(&resp);
        return lua_error(L);
    }
    lua_pushinteger(L, resp.status);
    dv_lua_push_headers(L, &resp);
    lua_pushlstring(L, resp.body ? resp.body : "", resp.body_len);
    dv_http_resp_free(&resp);
    return 3;
}

static int l_close(lua_State *L)
{
    lua_http *c = luaL_checkudata(L, 1, HTTP_META);
    dv_http_free(c->h);
    c->h = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lua_http *c = luaL_checkudata(L, 1, HTTP_META);
    char desc[512];
    if (!c->h) {
        lua_pushliteral(L, "dataverse.http connection (closed)");
        return 1;
    }
    if (dv_http_auth(c->h))
        dv_auth_describe(dv_http_auth(c->h), desc, sizeof desc);
    else
        snprintf(desc, sizeof desc, "no authentication");
    lua_pushfstring(L, "dataverse.http connection (%s)", desc);
    return 1;
}

/* How many tokens the connection's provider has fetched (0 without one). */
static int l_token_fetches(lua_State *L)
{
    lua_http *c = check_conn(L, 1);
    dv_auth *a = dv_http_auth(c->h);
    lua_pushinteger(L, a ? dv_auth_fetch_count(a) : 0);
    return 1;
}

int luaopen_dataverse_http(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"request", l_request},
        {"close", l_close},
        {"token_fetches", l_token_fetches},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_close},
        {"__close", l_close},
        {"__tostring", l_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"new", l_new},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, HTTP_META)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    /* The option names, for scripts and for the spec that holds docs/CONFIG.md to them. */
    lua_newtable(L);
    for (int i = 0; known_options[i]; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, known_options[i]);
    }
    lua_setfield(L, -2, "_options");
    dv_lua_error_meta(L);
    lua_setfield(L, -2, "error_meta");
    return 1;
}
