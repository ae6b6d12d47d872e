/* Lua values -> JSON text, into a caller-owned growable buffer.
 *
 * Numbers keep their Lua type: integers are written exactly, floats with the fewest digits (15, 16
 * or 17) that read back to the same double, and always look like floats ("2.0"), so a decode of
 * the output gives back the same math.type. Object keys are sorted (byte order) so that the same
 * table always gives the same text, across runs too. */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

struct keyref {
    const char *s;
    size_t len;
};

/* Where the value being written sits, for error messages ("value[3].revenue"). */
struct seg {
    const char *key; /* NULL for an array item */
    size_t klen;
    lua_Integer index;
};

struct enc {
    lua_State *L;
    dv_json_buf *b;
    int array_mt;    /* stack index of the array metatable */
    int empty_array; /* stack index of json.empty_array */
    int depth;
    char point;          /* the locale's decimal point, which printf/strtod use */
    struct keyref *keys; /* one stack of sorted keys shared by all nesting levels */
    size_t nkeys, capkeys;
    struct seg path[DV_JSON_MAX_DEPTH + 1];
};

/* ---- errors ---- */

static int is_identifier(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Writes the Lua-style path of the first nsegs segments ("value[3].revenue") into out. */
static void format_path(const struct enc *e, int nsegs, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 1; i <= nsegs && n + 1 < outlen; i++) {
        const struct seg *s = &e->path[i];
        int w;
        if (n > outlen - 8) {
            snprintf(out + n, outlen - n, "...");
            return;
        }
        if (!s->key)
            w = snprintf(out + n, outlen - n, "[%lld]", (long long)s->index);
        else if (is_identifier(s->key, s->klen))
            w = snprintf(out + n, outlen - n, "%s%.*s", i > 1 ? "." : "", (int)s->klen, s->key);
        else
            w = snprintf(out + n, outlen - n, "[\"%.*s\"]", (int)(s->klen > 40 ? 40 : s->klen),
                         s->key);
        if (w < 0) return;
        n += (size_t)w;
        if (n >= outlen) n = outlen - 1;
    }
}

/* Raises "json: <what> at <path>" (just "json: <what>" for the top-level value). */
static void fail(struct enc *e, int nsegs, const char *what)
{
    char path[160];
    format_path(e, nsegs, path, sizeof path);
    if (path[0])
        lua_pushfstring(e->L, "json: %s at %s", what, path);
    else
        lua_pushfstring(e->L, "json: %s", what);
    lua_error(e->L);
}

/* ---- output ---- */

static void grow(struct enc *e, size_t need)
{
    dv_json_buf *b = e->b;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < need) {
        if (cap > SIZE_MAX / 2) fail(e, 0, "output too large");
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) fail(e, 0, "out of memory");
    b->data = p;
    b->cap = cap;
}

static inline char *reserve(struct enc *e, size_t need)
{
    if (e->b->cap - e->b->len < need) grow(e, need);
    return e->b->data + e->b->len;
}

static inline void put(struct enc *e, const char *s, size_t n)
{
    memcpy(reserve(e, n), s, n);
    e->b->len += n;
}

#define PUT_LITERAL(e, s) put((e), "" s, sizeof(s) - 1)

static inline void put_char(struct enc *e, char c)
{
    *reserve(e, 1) = c;
    e->b->len++;
}

/* ---- numbers ---- */

static void put_integer(struct enc *e, lua_Integer v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    /* Through unsigned arithmetic so that math.mininteger negates without overflow. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    put(e, p, (size_t)(tmp + sizeof tmp - p));
}

static void put_float(struct enc *e, int nsegs, double v)
{
    if (isnan(v)) fail(e, nsegs, "cannot encode NaN (JSON has no NaN)");
    if (isinf(v))
        fail(e, nsegs,
             v > 0 ? "cannot encode inf (JSON has no infinity)"
                   : "cannot encode -inf (JSON has no infinity)");
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp - 2, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    int looks_integral = 1;
    for (int i = 0; i < n; i++) {
        if (tmp[i] == e->point) {
            tmp[i] = '.';
            looks_integral = 0;
        } else if (tmp[i] == 'e') {
            looks_integral = 0;
        }
    }
    /* "2" would read back as an integer: keep the float a float. */
    if (looks_integral) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    put(e, tmp, (size_t)n);
}

/* ---- strings ---- */

/* 0: copy as is; 'u': write as \u00XX; other: write as a backslash and that letter. */
static const char escape_as[256] = {
    ['\0'] = 'u', [1] = 'u',    [2] = 'u',    [3] = 'u',     [4] = 'u',    [5] = 'u',
    [6] = 'u',    [7] = 'u',    ['\b'] = 'b', ['\t'] = 't',  ['\n'] = 'n', [11] = 'u',
    ['\f'] = 'f', ['\r'] = 'r', [14] = 'u',   [15] = 'u',    [16] = 'u',   [17] = 'u',
    [18] = 'u',   [19] = 'u',   [20] = 'u',   [21] = 'u',    [22] = 'u',   [23] = 'u',
    [24] = 'u',   [25] = 'u',   [26] = 'u',   [27] = 'u',    [28] = 'u',   [29] = 'u',
    [30] = 'u',   [31] = 'u',   ['"'] = '"',  ['\\'] = '\\',
};

/* Length of the valid UTF-8 sequence starting with the byte >= 0x80 at s[0], or 0. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

static void put_string(struct enc *e, int nsegs, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    put_char(e, '"');
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && s[run] < 0x80 && !escape_as[s[run]])
            run++;
        put(e, str + i, run - i);
        i = run;
        if (i >= len) break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t n = utf8_len(s + i, len - i);
            if (!n) {
                char what[96];
                snprintf(
                    what, sizeof what,
                    "cannot encode a string that is not valid UTF-8 (byte 0x%02x at index %zu)", c,
                    i + 1);
                fail(e, nsegs, what);
            }
            put(e, str + i, n);
            i += n;
        } else if (escape_as[c] == 'u') {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(e, u, 6);
            i++;
        } else {
            char u[2] = {'\\', escape_as[c]};
            put(e, u, 2);
            i++;
        }
    }
    put_char(e, '"');
}

/* ---- tables ---- */

static void encode_value(struct enc *e, int idx);

static int cmp_keys(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

static void push_keyref(struct enc *e, const char *s, size_t len)
{
    if (e->nkeys == e->capkeys) {
        size_t cap = e->capkeys ? 2 * e->capkeys : 64;
        struct keyref *k = realloc(e->keys, cap * sizeof *k);
        if (!k) fail(e, 0, "out of memory");
        e->keys = k;
        e->capkeys = cap;
    }
    e->keys[e->nkeys].s = s;
    e->keys[e->nkeys].len = len;
    e->nkeys++;
}

/* Describes a key that cannot appear in JSON (here: the key at the top of the stack). */
static void fail_bad_key(struct enc *e, int here)
{
    char what[96];
    lua_State *L = e->L;
    if (lua_isinteger(L, -1))
        snprintf(what, sizeof what,
                 "cannot encode a table with integer key %lld (array indices start at 1)",
                 (long long)lua_tointeger(L, -1));
    else if (lua_type(L, -1) == LUA_TNUMBER)
        snprintf(what, sizeof what, "cannot encode a table with float key %.17g",
                 lua_tonumber(L, -1));
    else
        snprintf(what, sizeof what, "cannot encode a table with a %s key (keys must be strings)",
                 luaL_typename(L, -1));
    fail(e, here, what);
}

static void encode_table(struct enc *e, int t)
{
    lua_State *L = e->L;
    int here = e->depth; /* path segments that lead to this table */
    if (e->depth >= DV_JSON_MAX_DEPTH) {
        char what[96];
        snprintf(what, sizeof what, "nesting deeper than %d levels (is there a reference cycle?)",
                 DV_JSON_MAX_DEPTH);
        fail(e, here, what);
    }
    luaL_checkstack(L, 6, "json: nesting too deep");
    int marked = lua_rawequal(L, t, e->empty_array);
    if (!marked && lua_getmetatable(L, t)) {
        marked = lua_rawequal(L, -1, e->array_mt);
        lua_pop(L, 1);
    }

    /* One pass over the keys decides between array and object, and collects object keys. */
    size_t mark = e->nkeys;
    lua_Integer nint = 0, maxint = 0;
    size_t nstr = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *k = lua_tolstring(L, -1, &len);
            push_keyref(e, k, len);
            nstr++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            nint++;
            if (k > maxint) maxint = k;
        } else {
            fail_bad_key(e, here);
        }
    }

    e->depth++;
    if (nstr == 0 && (nint > 0 || marked)) {
        if (maxint != nint) {
            char what[128];
            snprintf(what, sizeof what,
                     "cannot encode a sparse array (%lld items, highest index %lld)",
                     (long long)nint, (long long)maxint);
            fail(e, here, what);
        }
        put_char(e, '[');
        for (lua_Integer i = 1; i <= nint; i++) {
            if (i > 1) put_char(e, ',');
            e->path[e->depth].key = NULL;
            e->path[e->depth].index = i;
            lua_rawgeti(L, t, i);
            encode_value(e, lua_gettop(L));
            lua_pop(L, 1);
        }
        put_char(e, ']');
    } else if (nint == 0 && !marked) {
        qsort(e->keys + mark, nstr, sizeof *e->keys, cmp_keys);
        put_char(e, '{');
        for (size_t i = 0; i < nstr; i++) {
            struct keyref k = e->keys[mark + i];
            if (i) put_char(e, ',');
            e->path[e->depth].key = k.s;
            e->path[e->depth].klen = k.len;
            put_string(e, e->depth, k.s, k.len);
            put_char(e, ':');
            lua_pushlstring(L, k.s, k.len);
            lua_rawget(L, t);
            encode_value(e, lua_gettop(L));
            lua_pop(L, 1);
        }
        put_char(e, '}');
    } else {
        char what[160];
        const struct keyref *k = &e->keys[mark];
        if (marked)
            snprintf(what, sizeof what,
                     "cannot encode a table marked as an array that has string key \"%.*s\"",
                     (int)(k->len > 40 ? 40 : k->len), k->s);
        else
            snprintf(what, sizeof what,
                     "cannot encode a table with both string keys (\"%.*s\") and integer keys "
                     "(%lld): make it an object or an array",
                     (int)(k->len > 40 ? 40 : k->len), k->s, (long long)maxint);
        fail(e, here, what);
    }
    e->depth--;
    e->nkeys = mark;
}

static void encode_value(struct enc *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        PUT_LITERAL(e, "null");
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            PUT_LITERAL(e, "true");
        else
            PUT_LITERAL(e, "false");
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            put_integer(e, lua_tointeger(L, idx));
        else
            put_float(e, e->depth, lua_tonumber(L, idx));
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        put_string(e, e->depth, s, len);
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            PUT_LITERAL(e, "null");
            return;
        }
        fail(e, e->depth, "cannot encode a light userdata other than json.null");
        return;
    case LUA_TTABLE:
        encode_table(e, idx);
        return;
    default: {
        char what[64];
        snprintf(what, sizeof what, "cannot encode a %s", luaL_typename(L, idx));
        fail(e, e->depth, what);
    }
    }
}

static int encode_protected(lua_State *L)
{
    struct enc *e = lua_touserdata(L, 2);
    e->L = L;
    lua_settop(L, 1);
    dv_json_push_array_mt(L);
    dv_json_push_empty_array(L);
    e->array_mt = 2;
    e->empty_array = 3;
    encode_value(e, 1);
    return 0;
}

void dv_json_buf_free(dv_json_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int dv_json_encode(lua_State *L, int idx, dv_json_buf *out, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 3)) {
        if (errlen) snprintf(err, errlen, "json: Lua stack exhausted");
        return -1;
    }
    struct enc *e = malloc(sizeof *e);
    if (!e) {
        if (errlen) snprintf(err, errlen, "json: out of memory");
        return -1;
    }
    memset(e, 0, offsetof(struct enc, path));
    e->b = out;
    e->point = localeconv()->decimal_point[0];
    size_t start = out->len;
    lua_pushcfunction(L, encode_protected);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, e);
    int status = lua_pcall(L, 2, 0, 0);
    free(e->keys);
    free(e);
    if (status == LUA_OK) return 0;
    out->len = start;
    if (errlen) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "json: encoding failed");
    }
    lua_pop(L, 1);
    return -1;
}
