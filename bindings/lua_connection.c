/* `dataverse.core`: the connection object (userdata over src/dataverse.c), the error object,
 * and the OData building blocks (keys, literals, percent-encoding) the Lua layer composes the
 * operations from (bindings/dataverse/init.lua). A request made from a task of org:parallel
 * (bindings/dataverse/parallel.lua) yields to its scheduler instead of blocking; everywhere
 * else it drives the connection's transfers (src/multi.h) until its answer is in. */
#define _GNU_SOURCE /* memmem */
#include <lauxlib.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "dataverse.h"
#include "interrupt.h"
#include "json.h"
#include "lua_error.h"
#include "lua_http.h"
#include "lua_modules.h"
#include "odata.h"
#include "solution_zip.h"

#define CONN_MT "dataverse.connection"

typedef struct {
    dv_conn *c;
    lua_State *L; /* while this connection's transfers are driven: for the event hooks */
} conn_box;

/* ---- errors (the shared dataverse.error object, bindings/lua_error.c) ---- */

static int raise_error(lua_State *L, const dv_error *e)
{
    return dv_lua_raise(L, e);
}

/* core.error{status=, code=, message=, ...}: gives a table the error metatable (returns it). */
static int l_new_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    dv_lua_error_where(L);
    dv_lua_error_meta(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* ---- JSON (src/json.h: integers stay integers, null is cjson.null) ---- */

/* Pushes the decoded value of s, or raises a dataverse.error with code "json". */
static void push_json(lua_State *L, const char *s, size_t n)
{
    char msg[256];
    if (dv_json_decode(L, s, n, msg, sizeof msg)) {
        dv_error e;
        dv_error_clear(&e);
        dv_error_set(&e, 0, "json", "invalid JSON in the response: %s", msg);
        raise_error(L, &e);
    }
}

static int l_json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_json(L, s, n);
    return 1;
}

/* Pushes the JSON text of the value at idx; a value JSON cannot carry is the script's mistake. */
static void push_json_text(lua_State *L, int idx)
{
    dv_json_buf b = {0};
    char msg[256];
    if (dv_json_encode(L, idx, &b, msg, sizeof msg)) {
        dv_json_buf_free(&b);
        dv_lua_usage_error(L, "cannot send this value as JSON (%s)", msg);
    }
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    dv_json_buf_free(&b);
}

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    push_json_text(L, 1);
    return 1;
}

/* ---- the connection ---- */

static conn_box *check_conn(lua_State *L, int i)
{
    conn_box *b = luaL_checkudata(L, i, CONN_MT);
    if (!b->c) dv_lua_usage_error(L, "the connection is closed");
    return b;
}

static const char *opt_string_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tostring(L, -1);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "bad option '%s' (string expected, got %s)", k, luaL_typename(L, -1));
    }
    lua_pop(L, 1); /* the string stays reachable from the options table */
    return s;
}

static lua_Integer opt_int_field(lua_State *L, int t, const char *k, lua_Integer def)
{
    lua_getfield(L, t, k);
    lua_Integer v = def;
    if (lua_isnumber(L, -1)) {
        v = (lua_Integer)lua_tonumber(L, -1);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "bad option '%s' (number expected, got %s)", k, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static void set_number(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* Hands a try ("request") or a retry wait ("retry") to the script's on_request / on_retry
 * hook as a table. Runs inside a request, so the hook runs protected: its error is kept in
 * the state table and raised once the request has been cleaned up (do_send). After a hook
 * failed, the hooks stay quiet until then. */
static void on_event(void *ud, const dv_http_event *ev)
{
    conn_box *b = ud;
    lua_State *L = b->L;
    if (!L) return;
    int retry = strcmp(ev->kind, "retry") == 0;
    lua_getiuservalue(L, 1, 1);
    int failed = lua_getfield(L, -1, "hook_error") != LUA_TNIL;
    lua_pop(L, 1);
    if (failed || lua_getfield(L, -1, retry ? "on_retry" : "on_request") != LUA_TFUNCTION) {
        lua_settop(L, lua_gettop(L) - (failed ? 1 : 2));
        return;
    }
    lua_createtable(L, 0, 9);
    lua_pushstring(L, ev->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, ev->url);
    lua_setfield(L, -2, "url");
    lua_pushinteger(L, ev->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, ev->attempt);
    lua_setfield(L, -2, "attempt");
    if (!retry) set_number(L, "elapsed", ev->elapsed);
    if (ev->retry_after >= 0) set_number(L, "retry_after", ev->retry_after);
    if (retry) set_number(L, "wait", ev->wait);
    if (ev->error) {
        lua_pushstring(L, ev->error);
        lua_setfield(L, -2, "error");
    }
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_setfield(L, -2, "hook_error");
    lua_pop(L, 1);
}

/* Raises "<script line>: interrupted!", delivering the interrupt once: the flag is cleared,
 * and the interpreter's stop hook (lua.c's: every event, count 1) is removed so that it does
 * not fire again inside the error handler and replace this message with one that has no
 * position. */
static int raise_interrupt(lua_State *L)
{
    int all = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    dv_interrupt_clear();
    if (lua_gethookmask(L) == all && lua_gethookcount(L) == 1) lua_sethook(L, NULL, 0, 0);
    dv_lua_where(L);
    lua_pushfstring(L, "%sinterrupted!", lua_tostring(L, -1));
    return lua_error(L);
}

static int hook_failed(lua_State *L)
{
    lua_getiuservalue(L, 1, 1);
    int failed = lua_getfield(L, -1, "hook_error") != LUA_TNIL;
    lua_pop(L, 2);
    return failed;
}

/* Raises the error a hook raised during the request that just ended, if any. */
static void raise_hook_error(lua_State *L)
{
    lua_getiuservalue(L, 1, 1);
    if (lua_getfield(L, -1, "hook_error") == LUA_TNIL) {
        lua_pop(L, 2);
        return;
    }
    lua_pushnil(L);
    lua_setfield(L, -3, "hook_error");
    lua_error(L);
}

/* core.open{url=, token=, timeout=, retries=, trace=, concurrency=, device_code=,
 * on_request=, on_retry=} -> connection */
static int l_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    dv_conn_options o = {0};
    o.url = opt_string_field(L, 1, "url");
    o.token = opt_string_field(L, 1, "token");
    o.tenant_id = opt_string_field(L, 1, "tenant_id");
    o.client_id = opt_string_field(L, 1, "client_id");
    o.client_secret = opt_string_field(L, 1, "client_secret");
    o.authority_host = opt_string_field(L, 1, "authority_host");
    o.timeout = (long)opt_int_field(L, 1, "timeout", 0);
    o.retries = (int)opt_int_field(L, 1, "retries", -1);
    o.concurrency = (int)opt_int_field(L, 1, "concurrency", 0);
    if (o.concurrency < 0 || o.concurrency > DV_MULTI_MAX)
        luaL_error(L, "bad option 'concurrency' (1 to 52 expected)");
    lua_getfield(L, 1, "trace");
    o.trace = lua_toboolean(L, -1);
    lua_getfield(L, 1, "device_code");
    o.device_code = lua_toboolean(L, -1);
    lua_pop(L, 2);
    lua_getfield(L, 1, "allow_insecure_http");
    o.allow_insecure_http = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!o.url) luaL_error(L, "bad option 'url' (an organization URL is required)");

    conn_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->c = NULL;
    b->L = NULL;
    luaL_setmetatable(L, CONN_MT);
    lua_newtable(L); /* per-connection state for the Lua layer (entity set cache, emulator) */
    for (int i = 0; i < 2; i++) {
        const char *hook = i ? "on_retry" : "on_request";
        if (lua_getfield(L, 1, hook) == LUA_TFUNCTION)
            lua_setfield(L, -2, hook);
        else
            lua_pop(L, 1);
    }
    lua_setiuservalue(L, -2, 1);
    dv_error e;
    b->c = dv_conn_open(&o, &e);
    if (!b->c) return raise_error(L, &e);
    dv_conn_set_events(b->c, on_event, b);
    return 1;
}

static int l_close(lua_State *L)
{
    conn_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (b->c) {
        dv_conn_close(b->c);
        b->c = NULL;
        /* Let the Lua layer stop what it started for this connection (the emulator). */
        lua_getiuservalue(L, 1, 1);
        if (lua_getfield(L, -1, "on_close") == LUA_TFUNCTION) {
            lua_pushvalue(L, -2);
            lua_pcall(L, 1, 0, 0);
        }
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    conn_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (b->c)
        lua_pushfstring(L, "dataverse.connection (%s)", dv_conn_url(b->c));
    else
        lua_pushliteral(L, "dataverse.connection (closed)");
    return 1;
}

static int l_state(lua_State *L)
{
    luaL_checkudata(L, 1, CONN_MT);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

/* conn:auth() -> a description of the sign-in, without secrets */
static int l_auth(lua_State *L)
{
    char d[256];
    dv_conn_describe_auth(check_conn(L, 1)->c, d, sizeof d);
    lua_pushstring(L, d);
    return 1;
}

static int l_url(lua_State *L)
{
    lua_pushstring(L, dv_conn_url(check_conn(L, 1)->c));
    return 1;
}

static int l_base(lua_State *L)
{
    lua_pushstring(L, dv_conn_base(check_conn(L, 1)->c));
    return 1;
}

/* Collects request headers from a table {Name = value} or {"Name: value", …} into a
 * NULL-terminated array of strings kept alive on the Lua stack (a table at the top). */
static const char **collect_headers(lua_State *L, int t)
{
    if (lua_isnoneornil(L, t)) return NULL;
    luaL_checktype(L, t, LUA_TTABLE);
    lua_newtable(L);
    int keep = lua_gettop(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
        } else if (lua_type(L, -2) == LUA_TSTRING &&
                   (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
            const char *k = lua_tostring(L, -2);
            if (strpbrk(k, ":\r\n")) dv_lua_usage_error(L, "bad header name '%s'", k);
            lua_pushfstring(L, "%s: %s", k, lua_tostring(L, -1));
        } else {
            dv_lua_usage_error(L, "bad header (name = string value expected)");
        }
        if (strpbrk(lua_tostring(L, -1), "\r\n"))
            dv_lua_usage_error(L, "bad header (line break in value)");
        lua_rawseti(L, keep, ++n);
        lua_pop(L, 1);
    }
    const char **h = lua_newuserdatauv(L, sizeof *h * (size_t)(n + 1), 0);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, keep, i);
        h[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    h[n] = NULL;
    lua_rawseti(L, keep, n + 1); /* anchor the array with the strings */
    return h;
}

/* ---- requests: blocking, or yielding inside org:parallel (bindings/dataverse/parallel.lua) ----
 */

/* What a task coroutine yields to its scheduler: this marker and the request id. */
static const char waiting_marker = 0;

/* Queues method, target, body (string, table encoded as JSON, or nil) and headers on the
 * connection's multi driver; returns the request id (raises on bad input). */
static uint64_t start_request(lua_State *L, dv_conn *c, const char *method, int target_idx,
                              int body_idx, int headers_idx)
{
    /* Only a hook runs while this connection's transfers are driven (src/http.h: the event
     * callback must not start requests). */
    if (((conn_box *)lua_touserdata(L, 1))->L)
        dv_lua_usage_error(L, "an event hook cannot send requests on its own connection");
    const char *target = luaL_checkstring(L, target_idx);
    size_t blen = 0;
    const char *body = NULL;
    if (body_idx) {
        if (lua_istable(L, body_idx)) {
            push_json_text(L, body_idx);
            lua_replace(L, body_idx);
        }
        if (!lua_isnoneornil(L, body_idx)) body = luaL_checklstring(L, body_idx, &blen);
    }
    const char **h = collect_headers(L, headers_idx);
    dv_error e;
    /* Queueing may already drive transfers (the driver starts a request at once when a slot
     * is free, and takes in answers meanwhile): their events reach the hooks from here. */
    conn_box *b = lua_touserdata(L, 1);
    b->L = L;
    uint64_t id = dv_conn_submit(c, method, target, body, blen, h, &e);
    b->L = NULL;
    if (!id) raise_error(L, &e);
    return id;
}

/* 1 when L runs one of org:parallel's tasks (registered in the connection state's "tasks"
 * table) and may yield: then a request yields to the scheduler instead of blocking. */
static int in_task(lua_State *L)
{
    if (!lua_isyieldable(L)) return 0;
    lua_getiuservalue(L, 1, 1);
    int yes = 0;
    if (lua_getfield(L, -1, "tasks") == LUA_TTABLE) {
        lua_pushthread(L);
        yes = lua_rawget(L, -2) != LUA_TNIL && lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return yes;
}

/* Waits for request id, by yielding to the scheduler or by driving the transfers here, then
 * continues in k (which collects the answer). */
static int await_request(lua_State *L, conn_box *b, uint64_t id, lua_KFunction k)
{
    if (in_task(L)) {
        lua_pushlightuserdata(L, (void *)&waiting_marker);
        lua_pushinteger(L, (lua_Integer)id);
        return lua_yieldk(L, 2, (lua_KContext)id, k);
    }
    b->L = L;
    dv_multi_wait(dv_conn_multi(b->c), id);
    b->L = NULL;
    /* Ctrl-C while waiting ends the call here, at the script's line, whatever the answer. */
    if (dv_interrupted()) {
        dv_http_resp r;
        dv_error e;
        dv_conn_result(b->c, id, &r, &e); /* dropped, so that the driver forgets it */
        dv_http_resp_free(&r);
        raise_interrupt(L);
    }
    return k(L, LUA_OK, (lua_KContext)id);
}

/* Takes the answer of request id; raises when no response arrived. */
static void take_result(lua_State *L, lua_KContext ctx, dv_http_resp *r, dv_error *e)
{
    conn_box *b = check_conn(L, 1);
    int rc = dv_conn_result(b->c, (uint64_t)ctx, r, e);
    /* An interrupt during the wait after an error status still leaves that status in r. */
    if (rc || hook_failed(L) || strcmp(e->code, "interrupted") == 0) {
        dv_http_resp_free(r);
        raise_hook_error(L);
        /* Ctrl-C: the interpreter's message, never what a cut-off answer looks like. */
        if (strcmp(e->code, "interrupted") == 0) raise_interrupt(L);
        raise_error(L, e);
    }
}

static int send_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    dv_http_resp r;
    dv_error e;
    take_result(L, ctx, &r, &e);
    lua_pushinteger(L, r.status);
    dv_lua_push_headers(L, &r);
    lua_pushlstring(L, r.body ? r.body : "", r.body_len);
    dv_http_resp_free(&r);
    return 3;
}

/* Pushes status, headers and the decoded body (nil when empty) of r, freeing r; a status of
 * 400 or more raises e. */
static int push_call_result(lua_State *L, dv_http_resp *r, dv_error *e)
{
    if (r->status >= 400) {
        dv_http_resp_free(r);
        return raise_error(L, e);
    }
    lua_pushinteger(L, r->status);
    dv_lua_push_headers(L, r);
    const char *s = r->body ? r->body : "";
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    if (!*s) {
        lua_pushnil(L);
    } else if (*s == '{' || *s == '[') {
        /* Decoded straight from the response buffer into Lua tables: no copy of the page. */
        char msg[256];
        int bad = dv_json_decode(L, r->body, r->body_len, msg, sizeof msg);
        dv_http_resp_free(r);
        if (bad) {
            dv_error_set(e, 0, "json", "invalid JSON in the response: %s", msg);
            return raise_error(L, e);
        }
        return 3;
    } else {
        lua_pushlstring(L, r->body, r->body_len);
    }
    dv_http_resp_free(r);
    return 3;
}

static int call_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    dv_http_resp r;
    dv_error e;
    take_result(L, ctx, &r, &e);
    return push_call_result(L, &r, &e);
}

/* conn:send(method, target, body, headers) -> status, headers, body text (never raises on a
 * status; raises when no response arrived). */
static int l_send(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    const char *method = luaL_checkstring(L, 2);
    lua_settop(L, 5);
    uint64_t id = start_request(L, b->c, method, 3, 4, 5);
    return await_request(L, b, id, send_k);
}

/* conn:call(method, target, body, headers) -> status, headers, decoded body (nil when empty).
 * A status of 400 or more raises a dataverse.error. */
static int l_call(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    const char *method = luaL_checkstring(L, 2);
    lua_settop(L, 5);
    uint64_t id = start_request(L, b->c, method, 3, 4, 5);
    return await_request(L, b, id, call_k);
}

static void push_buf(lua_State *L, dv_buf *b)
{
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    dv_buf_free(b);
}

/* Replaces each row of the page array at idx with its change, in place:
 * {type="new_or_updated", row=row} or {type="removed_or_deleted", id=, table=logical}. */
static void classify_rows(lua_State *L, int idx, const char *logical)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        int row = lua_gettop(L);
        if (!lua_istable(L, row)) {
            lua_pop(L, 1);
            continue;
        }
        int deleted = 0;
        int context = lua_getfield(L, row, "@odata.context");
        if (context == LUA_TSTRING) deleted = strstr(lua_tostring(L, -1), "$deletedEntity") != NULL;
        lua_pop(L, 1);
        if (!deleted) {
            if (lua_getfield(L, row, "reason") == LUA_TSTRING)
                deleted = strcmp(lua_tostring(L, -1), "deleted") == 0;
            lua_pop(L, 1);
        }
        if (deleted) {
            lua_createtable(L, 0, 3);
            lua_pushliteral(L, "removed_or_deleted");
            lua_setfield(L, -2, "type");
            lua_getfield(L, row, "id");
            lua_setfield(L, -2, "id");
            lua_pushstring(L, logical);
            lua_setfield(L, -2, "table");
        } else {
            if (context != LUA_TNIL) {
                lua_pushnil(L);
                lua_setfield(L, row, "@odata.context");
            }
            lua_createtable(L, 0, 2);
            lua_pushliteral(L, "new_or_updated");
            lua_setfield(L, -2, "type");
            lua_pushvalue(L, row);
            lua_setfield(L, -2, "row");
        }
        lua_rawseti(L, idx, i);
        lua_settop(L, row - 1);
    }
}

/* The "@odata.nextLink" member near the end of a page's text, when it holds no escapes: a
 * guess made before the page is decoded, so that the next page is asked for at once (the
 * service builds it while this one is decoded and consumed). The decoded page confirms it. */
static const char *tail_next_link(const char *body, size_t len, size_t *n)
{
    static const char key[] = "\"@odata.nextLink\"";
    const size_t klen = sizeof key - 1;
    const char *from = body + (len > 16384 ? len - 16384 : 0), *end = body + len, *hit = NULL;
    for (const char *p = from; (p = memmem(p, (size_t)(end - p), key, klen)); p += klen)
        hit = p;
    if (!hit) return NULL;
    const char *p = hit + klen;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p >= end || *p++ != ':') return NULL;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p >= end || *p++ != '"') return NULL;
    const char *q = p;
    while (q < end && *q != '"' && *q != '\\')
        q++;
    if (q >= end || *q != '"' || q == p) return NULL;
    *n = (size_t)(q - p);
    return p;
}

/* Submits a GET of the link at stack index link with the page's headers (index 3) and
 * sets it going; returns its id, 0 when it could not be queued (then the page is simply
 * fetched when asked for). */
static uint64_t prefetch(lua_State *L, conn_box *b, int link)
{
    int top = lua_gettop(L);
    const char **h = collect_headers(L, 3);
    dv_error e;
    uint64_t id = dv_conn_submit(b->c, "GET", lua_tostring(L, link), NULL, 0, h, &e);
    lua_settop(L, top);
    if (id) {
        b->L = L;
        dv_multi_kick(dv_conn_multi(b->c));
        b->L = NULL;
    }
    return id;
}

/* Decodes a page. The collector is first given room for what the page will take (about
 * twice its text, measured): every value made while decoding and classifying stays
 * reachable, so a collection step in the middle could only walk the page half-built, and
 * with a small heap (a few hundred KB between pages) the collector would otherwise run
 * several whole cycles per page. A negative step moves the collector's debt down by that
 * much (lapi.c, LUA_GCSTEP); it neither stops nor restarts the collector, so an error or a
 * script's own collectgarbage("stop") is left as it was. */
static int decode_page(lua_State *L, const dv_http_resp *r, char *msg, size_t msgsz)
{
    const char *s = r->body ? r->body : "";
    size_t n = r->body ? r->body_len : 0;
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
        s++, n--;
    if (!n) {
        lua_pushnil(L);
        return 0;
    }
    size_t room_kb = n / 512 + 64;
    lua_gc(L, LUA_GCSTEP, -(int)(room_kb > 1048576 ? 1048576 : room_kb));
    return dv_json_decode(L, s, n, msg, msgsz);
}

static int change_page_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    conn_box *b = check_conn(L, 1);
    dv_http_resp r;
    dv_error e;
    take_result(L, ctx, &r, &e);
    if (r.status >= 400) {
        dv_http_resp_free(&r);
        return raise_error(L, &e);
    }
    lua_settop(L, 5);
    uint64_t next_id = 0;
    int guess = 0;
    size_t glen;
    const char *g =
        lua_toboolean(L, 5) && r.body ? tail_next_link(r.body, r.body_len, &glen) : NULL;
    if (g) {
        lua_pushlstring(L, g, glen);
        guess = lua_gettop(L);
        next_id = prefetch(L, b, guess);
    }
    char msg[256];
    int bad = decode_page(L, &r, msg, sizeof msg);
    dv_http_resp_free(&r);
    dv_error_clear(&e);
    if (bad) {
        if (next_id) dv_multi_cancel(dv_conn_multi(b->c), next_id);
        dv_error_set(&e, 0, "json", "invalid JSON in the response: %s", msg);
        return raise_error(L, &e);
    }
    const char *logical = lua_tostring(L, 4);
    int body = lua_gettop(L);
    if (!lua_istable(L, body)) {
        if (next_id) dv_multi_cancel(dv_conn_multi(b->c), next_id);
        dv_error_set(&e, 0, "response", "a change page was not a JSON object");
        return raise_error(L, &e);
    }
    if (lua_getfield(L, body, "value") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    int changes = lua_gettop(L);
    classify_rows(L, changes, logical);
    int has_next = lua_getfield(L, body, "@odata.nextLink") == LUA_TSTRING;
    if (next_id && !(has_next && lua_rawequal(L, -1, guess))) {
        /* The guess was not the page's link after all: ask for the real one when needed. */
        dv_multi_cancel(dv_conn_multi(b->c), next_id);
        next_id = 0;
    }
    if (!has_next) {
        lua_pop(L, 1);
        lua_pushnil(L);
        if (lua_getfield(L, body, "@odata.deltaLink") != LUA_TSTRING) {
            dv_error_set(&e, 0, "response", "the last change page carried no deltaLink");
            return raise_error(L, &e);
        }
        dv_buf tok = {0};
        int found = dv_odata_query_value(lua_tostring(L, -1), "$deltatoken", &tok);
        lua_pop(L, 1);
        if (found < 0) {
            dv_buf_free(&tok);
            return luaL_error(L, "out of memory");
        }
        if (found) {
            push_buf(L, &tok);
        } else {
            dv_buf_free(&tok);
            lua_pushnil(L);
        }
        return 3;
    }
    lua_pushnil(L);
    if (next_id)
        lua_pushinteger(L, (lua_Integer)next_id);
    else
        lua_pushnil(L);
    return 4;
}

/* conn:change_page(url, headers, logical [, prefetch [, id]]) -> changes, next_link,
 * data_token, next_id
 * One page of a change-tracking read: fetched, decoded straight from the response buffer,
 * and each row turned into its change in place. data_token (the deltaLink's $deltatoken,
 * decoded) comes only with the last page, i.e. when there is no next_link. With prefetch
 * true, the next page is requested before this one is decoded and next_id is that
 * request: pass it back as id with next_link as url to take its answer (conn:_cancel(id)
 * when it is no longer wanted). */
static int l_change_page(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    luaL_checkstring(L, 4);
    lua_settop(L, 6);
    uint64_t id;
    if (!lua_isnil(L, 6)) {
        id = (uint64_t)luaL_checkinteger(L, 6);
        if (dv_multi_finished(dv_conn_multi(b->c), id) < 0)
            return luaL_argerror(L, 6, "no request with this id on the connection");
    } else {
        id = start_request(L, b->c, "GET", 2, 0, 3);
    }
    lua_settop(L, 5);
    return await_request(L, b, id, change_page_k);
}

/* conn:_cancel(id): forgets a request submitted ahead of need (a prefetched page). */
static int l_cancel(lua_State *L)
{
    conn_box *b = luaL_checkudata(L, 1, CONN_MT);
    lua_Integer id = luaL_checkinteger(L, 2);
    if (b->c) dv_multi_cancel(dv_conn_multi(b->c), (uint64_t)id);
    return 0;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    dv_http_resp r;
    dv_error e;
    take_result(L, ctx, &r, &e); /* raises for Ctrl-C, like a request */
    dv_http_resp_free(&r);
    return 0;
}

/* conn:sleep(seconds): in a task of org:parallel, lets the other tasks run meanwhile;
 * elsewhere blocks, still driving the connection's transfers. */
static int l_conn_sleep(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s >= 0 && s < 1e9, 2, "seconds from 0 expected");
    dv_error e;
    uint64_t id = dv_multi_submit_timer(dv_conn_multi(b->c), s, &e);
    if (!id) return raise_error(L, &e);
    lua_settop(L, 2);
    return await_request(L, b, id, sleep_k);
}

/* conn:_pump{id, …} -> {id, …}: drives every transfer of the connection until one of the
 * given requests is finished; returns those that are (the scheduler of org:parallel). */
static int l_pump(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    uint64_t *ids = lua_newuserdatauv(L, sizeof *ids * (size_t)(n > 0 ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        ids[i - 1] = (uint64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    dv_multi *m = dv_conn_multi(b->c);
    b->L = L;
    dv_multi_wait_any(m, ids, (size_t)n);
    b->L = NULL;
    /* Ctrl-C ends the scheduler, and with it every task, at the script's line. */
    if (dv_interrupted()) raise_interrupt(L);
    lua_newtable(L);
    lua_Integer k = 0;
    for (lua_Integer i = 0; i < n; i++)
        if (dv_multi_finished(m, ids[i]) != 0) {
            lua_pushinteger(L, (lua_Integer)ids[i]);
            lua_rawseti(L, -2, ++k);
        }
    return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* conn:stats() -> {requests=, retries=, throttled=, waited=, concurrency=, cap=, hint=,
 * in_flight=, queued=, held=, peak=} */
static int l_stats(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    dv_multi_stats s;
    dv_multi_stats_get(dv_conn_multi(b->c), &s);
    lua_createtable(L, 0, 11);
    set_int(L, "requests", s.requests);
    set_int(L, "retries", s.retries);
    set_int(L, "throttled", s.throttled);
    lua_pushnumber(L, s.waited_s);
    lua_setfield(L, -2, "waited");
    set_int(L, "concurrency", s.concurrency);
    set_int(L, "cap", s.cap);
    set_int(L, "hint", s.hint);
    set_int(L, "in_flight", s.in_flight);
    set_int(L, "queued", s.queued);
    set_int(L, "held", s.held);
    set_int(L, "peak", s.peak);
    return 1;
}

/* conn:set_concurrency(n): caps the budget at n (nil or 0: no cap of the caller's). */
static int l_set_concurrency(lua_State *L)
{
    conn_box *b = check_conn(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 0);
    if (n < 0 || n > DV_MULTI_MAX)
        return luaL_argerror(L, 2, "a concurrency from 1 to 52 expected (nil for no cap)");
    dv_multi_set_cap(dv_conn_multi(b->c), (int)n);
    return 0;
}

/* __index: the methods, then the live fields (org.concurrency). */
static int l_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "concurrency") == 0) {
        conn_box *b = check_conn(L, 1);
        dv_multi_stats s;
        dv_multi_stats_get(dv_conn_multi(b->c), &s);
        lua_pushinteger(L, s.concurrency);
    }
    return 1;
}

/* ---- OData pieces ---- */

/* core.pct(s, "path"|"query") -> percent-encoded s */
static int l_pct(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    static const char *const where[] = {"query", "path", NULL};
    int w = luaL_checkoption(L, 2, "query", where);
    dv_buf b = {0};
    if (dv_odata_pct_encode(&b, s, n, w == 1 ? DV_PCT_PATH : DV_PCT_QUERY)) {
        dv_buf_free(&b);
        return luaL_error(L, "out of memory");
    }
    push_buf(L, &b);
    return 1;
}

/* core.query{{name, value}, …} -> "?name=value&…" (values percent-encoded; nil values skipped) */
static int l_query(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    dv_buf b = {0};
    int started = 0;
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        const char *name = luaL_checkstring(L, -2);
        if (!lua_isnil(L, -1)) {
            size_t vl;
            const char *v = luaL_tolstring(L, -1, &vl);
            if (dv_odata_query_param(&b, &started, name, v, vl)) {
                dv_buf_free(&b);
                return luaL_error(L, "out of memory");
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 3);
    }
    push_buf(L, &b);
    return 1;
}

/* Formats a number or boolean at index i the way OData literals want it. */
static const char *literal_text(lua_State *L, int i, dv_key_kind *kind)
{
    switch (lua_type(L, i)) {
    case LUA_TSTRING:
        *kind = DV_KEY_STRING;
        return lua_tostring(L, i);
    case LUA_TBOOLEAN:
        *kind = DV_KEY_BOOLEAN;
        return lua_toboolean(L, i) ? "true" : "false";
    case LUA_TNUMBER:
        if (lua_isinteger(L, i)) {
            *kind = DV_KEY_INTEGER;
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, i));
        } else {
            *kind = DV_KEY_NUMBER;
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.17g", (double)lua_tonumber(L, i));
            lua_pushstring(L, tmp);
        }
        lua_replace(L, i); /* keep the text alive where the number was */
        return lua_tostring(L, i);
    default:
        return NULL;
    }
}

/* core.literal(v) -> OData literal text of a string, number or boolean ('O''Brien', 12, true) */
static int l_literal(lua_State *L)
{
    luaL_checkany(L, 1);
    dv_key_kind kind;
    lua_settop(L, 1);
    const char *s = literal_text(L, 1, &kind);
    if (!s) return luaL_typeerror(L, 1, "string, number or boolean");
    if (kind != DV_KEY_STRING) {
        lua_pushstring(L, s);
        return 1;
    }
    size_t n;
    s = lua_tolstring(L, 1, &n);
    dv_buf b = {0};
    if (dv_odata_string_literal(&b, s, n)) {
        dv_buf_free(&b);
        return luaL_error(L, "out of memory");
    }
    push_buf(L, &b);
    return 1;
}

/* core.key(id_or_key) -> the text between the parentheses of a row address, percent-encoded:
 * a GUID, or "k1='a',k2=2" from a table of alternate-key values. Returns nil and a message
 * for a value that is neither. */
static int l_key(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, 1, &n);
        if (s[0] == '{' && n == 38 && s[37] == '}' && dv_odata_is_guid(s + 1, 36)) {
            lua_pushlstring(L, s + 1, 36);
            return 1;
        }
        if (!dv_odata_is_guid(s, n)) {
            lua_pushnil(L);
            lua_pushfstring(L, "'%s' is not a GUID", n > 60 ? "(a long string)" : s);
            return 2;
        }
        lua_settop(L, 1);
        return 1;
    }
    if (!lua_istable(L, 1)) {
        lua_pushnil(L);
        lua_pushfstring(L, "GUID string or table of alternate-key values expected, got %s",
                        luaL_typename(L, 1));
        return 2;
    }
    lua_settop(L, 1);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        n++;
        lua_pop(L, 1);
    }
    if (n == 0 || n > 16) {
        lua_pushnil(L);
        lua_pushstring(L, n ? "an alternate key has at most 16 columns"
                            : "an alternate key needs at least one column");
        return 2;
    }
    dv_key_part parts[16];
    lua_createtable(L, (int)n, 0); /* keeps formatted numbers alive */
    int keep = lua_gettop(L);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pushnil(L);
            lua_pushstring(L, "alternate-key columns must be named by strings");
            return 2;
        }
        dv_key_kind kind;
        const char *v = literal_text(L, lua_gettop(L), &kind);
        if (!v) {
            lua_pushnil(L);
            lua_pushfstring(L, "alternate-key value '%s' must be a string, number or boolean",
                            lua_tostring(L, -3));
            return 2;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, keep, (lua_Integer)i + 1);
        parts[i].name = lua_tostring(L, -2);
        parts[i].value = lua_tolstring(L, -1, &parts[i].value_len);
        parts[i].kind = kind;
        i++;
        lua_pop(L, 1);
    }
    dv_buf b = {0};
    char err[128];
    if (dv_odata_key(&b, parts, n, err, sizeof err)) {
        dv_buf_free(&b);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    push_buf(L, &b);
    return 1;
}

static int l_is_guid(lua_State *L)
{
    size_t n = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    lua_pushboolean(L, s && dv_odata_is_guid(s, n));
    return 1;
}

static int l_is_identifier(lua_State *L)
{
    size_t n = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    lua_pushboolean(L, s && dv_odata_is_identifier(s, n));
    return 1;
}

static int l_base64(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    char *out = dv_base64_encode((const unsigned char *)s, n, &m);
    if (!out) return luaL_error(L, "out of memory");
    lua_pushlstring(L, out, m);
    free(out);
    return 1;
}

/* core.read_solution(path) -> the bytes of a solution zip: the .zip file itself, or a solution
 * source folder packed in memory. Returns nil and a message on failure. */
static int l_read_solution(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    void *data = NULL;
    size_t len = 0;
    char err[512];
    if (dv_solution_zip_read(path, &data, &len, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, data, len);
    free(data);
    return 1;
}

/* core.sleep(seconds): waits used by the polling operations (solution import, key index). */
static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    /* Ends early on Ctrl-C, reported at the script's line like an interrupted request. */
    if (s > 0 && dv_interrupt_sleep(s)) return raise_interrupt(L);
    return 0;
}

/* core.now() -> seconds on a monotonic clock */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.mkdir_p(path) -> true, or nil and a message */
static int l_mkdir_p(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, n + 1);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot create %s: %s", p, strerror(errno));
            return 2;
        }
        p[i] = c;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_dataverse_core(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"send", l_send},
        {"call", l_call},
        {"close", l_close},
        {"state", l_state},
        {"change_page", l_change_page},
        {"url", l_url},
        {"base", l_base},
        {"auth", l_auth},
        {"stats", l_stats},
        {"set_concurrency", l_set_concurrency},
        {"sleep", l_conn_sleep},
        {"_pump", l_pump},
        {"_cancel", l_cancel},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_close},
        {"__close", l_close},
        {"__tostring", l_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"open", l_open},
        {"error", l_new_error},
        {"json_decode", l_json_decode},
        {"json_encode", l_json_encode},
        {"pct", l_pct},
        {"query", l_query},
        {"literal", l_literal},
        {"key", l_key},
        {"is_guid", l_is_guid},
        {"is_identifier", l_is_identifier},
        {"base64", l_base64},
        {"sleep", l_sleep},
        {"read_solution", l_read_solution},
        {"now", l_now},
        {"mkdir_p", l_mkdir_p},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, (void *)&waiting_marker);
    lua_setfield(L, -2, "waiting");
    if (luaL_newmetatable(L, CONN_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, l_index, 1);
        lua_setfield(L, -3, "__index");
        /* the Lua layer adds the operations to this same table */
        lua_setfield(L, -3, "methods");
    } else {
        lua_getfield(L, -1, "__index");
        lua_getupvalue(L, -1, 1);
        lua_setfield(L, -4, "methods");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}
