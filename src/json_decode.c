/* JSON text -> Lua values, parsed straight onto the Lua stack.
 *
 * Why it is fast: members of an array or object are pushed on the Lua stack first and the table
 * is created afterwards with its exact size (no rehashing as it fills); strings without escapes
 * are handed to Lua without an intermediate copy, found by scanning 8 bytes at a time; integers
 * and short decimals are converted without strtod. */
#include "json.h"

#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* Members gathered on the stack before they are moved into their table. Bounded so that deep
 * nesting cannot exhaust the Lua stack: DV_JSON_MAX_DEPTH * (2 * BATCH + slack) < LUAI_MAXSTACK. */
#define BATCH 128

/* The keys last seen at each member position of the objects of the first few nesting
 * levels. A page's rows repeat the same keys in the same order, so most keys are found here
 * by one memcmp instead of being hashed and looked up in Lua's string table again. */
#define KEY_DEPTHS 4
#define KEY_SLOTS 32

struct key_slot {
    const char *p; /* the bytes of the string anchored in the cache table */
    size_t n;
};

struct dec {
    lua_State *L;
    const char *start, *end;
    int depth;
    int array_mt; /* stack index of the array metatable */
    int keys;     /* stack index of the table anchoring the cached keys */
    struct key_slot key[KEY_DEPTHS][KEY_SLOTS];
};

static const char *parse_value(struct dec *d, const char *p);

/* ---- errors ---- */

static void describe_found(const struct dec *d, const char *p, char *out, size_t outlen)
{
    if (p >= d->end)
        snprintf(out, outlen, "end of input");
    else if (*p > ' ' && *p < 127)
        snprintf(out, outlen, "'%c'", *p);
    else
        snprintf(out, outlen, "byte 0x%02x", (unsigned char)*p);
}

/* Raises "json: <what> at offset N" with N the 0-based byte offset of p. */
static void fail_at(struct dec *d, const char *p, const char *what)
{
    lua_pushfstring(d->L, "json: %s at offset %I", what, (lua_Integer)(p - d->start));
    lua_error(d->L);
}

/* Raises "json: expected <what> at offset N, found <the byte at p>". */
static void expected(struct dec *d, const char *p, const char *what)
{
    char found[32];
    describe_found(d, p, found, sizeof found);
    lua_pushfstring(d->L, "json: expected %s at offset %I, found %s", what,
                    (lua_Integer)(p - d->start), found);
    lua_error(d->L);
}

/* ---- whitespace ---- */

static inline const char *skip_ws(const struct dec *d, const char *p)
{
    while (p < d->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* ---- strings ---- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero when one of the 8 bytes in w is '"', '\\' or a control character (< 0x20). Bytes
 * >= 0x80 are excluded by ~w, so UTF-8 passes straight through. */
static inline uint64_t special_bytes(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    return ((w - ONES * 0x20) | (q - ONES) | (b - ONES)) & ~w & HIGHS;
}

/* First byte in [p, end) that is '"', '\\' or a control character; end if none. */
static inline const char *scan_string(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t w, hit;
        memcpy(&w, p, 8);
        /* The lowest flagged byte is always a true one (borrows only run upwards), so on a
         * little-endian machine it is the first special byte of the eight. */
        if ((hit = special_bytes(w))) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + __builtin_ctzll(hit) / 8;
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at p (p points at the 'u'); -1 when malformed. */
static long read_u4(const struct dec *d, const char *p)
{
    if (d->end - p < 5) return -1;
    long v = 0;
    for (int i = 1; i <= 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static char *put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Decodes the escaped string body [p, q) (q is the closing quote) into o, which has room for
 * q - p bytes: no escape produces more bytes than it occupies. Returns the end of the output. */
static char *unescape(struct dec *d, const char *p, const char *q, char *o)
{
    while (p < q) {
        const char *s = p;
        while (p < q && *p != '\\')
            p++;
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        if (p >= q) break;
        p++; /* the backslash; scan_string guaranteed a byte follows it before q */
        switch (*p) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            long cp = read_u4(d, p);
            if (cp < 0 || p + 5 > q)
                fail_at(d, p - 1, "invalid \\u escape (expected 4 hex digits)");
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate must be followed by \uDC00-\uDFFF; alone it becomes U+FFFD. */
                long lo = (q - p >= 7 && p[1] == '\\' && p[2] == 'u') ? read_u4(d, p + 2) : -1;
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            o = put_utf8(o, (unsigned long)cp);
            break;
        }
        default: {
            char what[48];
            if (*p > ' ' && *p < 127)
                snprintf(what, sizeof what, "invalid escape '\\%c'", *p);
            else
                snprintf(what, sizeof what, "invalid escape (byte 0x%02x after '\\')",
                         (unsigned char)*p);
            fail_at(d, p - 1, what);
        }
        }
        p++;
    }
    return o;
}

/* p is just after the opening quote. Pushes the string, returns the byte after the closing quote.
 */
static const char *parse_string(struct dec *d, const char *p)
{
    const char *s = p;
    p = scan_string(p, d->end);
    if (p < d->end && *p == '"') {
        lua_pushlstring(d->L, s, (size_t)(p - s));
        return p + 1;
    }
    /* Escapes (or an error): find the closing quote first, then decode in one go. */
    for (;;) {
        if (p >= d->end) fail_at(d, s - 1, "unterminated string starting");
        if (*p == '"') break;
        if (*p == '\\') {
            if (d->end - p < 2) fail_at(d, s - 1, "unterminated string starting");
            p += 2;
        } else {
            char what[64];
            snprintf(what, sizeof what, "unescaped control character 0x%02x in string",
                     (unsigned char)*p);
            fail_at(d, p, what);
        }
        p = scan_string(p, d->end);
    }
    size_t n = (size_t)(p - s);
    char local[512];
    if (n <= sizeof local) {
        char *e = unescape(d, s, p, local);
        lua_pushlstring(d->L, local, (size_t)(e - local));
    } else {
        luaL_Buffer b;
        char *o = luaL_buffinitsize(d->L, &b, n);
        char *e = unescape(d, s, p, o);
        luaL_pushresultsize(&b, (size_t)(e - o));
    }
    return p + 1;
}

/* p is just after the opening quote of the key of member k of an object. Pushes the key,
 * taken from the cache when it is the one seen last at this place. */
static const char *parse_key(struct dec *d, const char *p, int k)
{
    if (d->depth > KEY_DEPTHS || k >= KEY_SLOTS) return parse_string(d, p);
    struct key_slot *slot = &d->key[d->depth - 1][k];
    const char *q = scan_string(p, d->end);
    size_t n = (size_t)(q - p);
    if (q >= d->end || *q != '"') return parse_string(d, p); /* escapes, or an error */
    int at = (d->depth - 1) * KEY_SLOTS + k + 1;
    if (slot->n == n && slot->p && memcmp(slot->p, p, n) == 0) {
        lua_rawgeti(d->L, d->keys, at);
        return q + 1;
    }
    lua_pushlstring(d->L, p, n);
    slot->p = lua_tostring(d->L, -1);
    slot->n = n;
    lua_pushvalue(d->L, -1);
    lua_rawseti(d->L, d->keys, at);
    return q + 1;
}

/* ---- numbers ---- */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_digit(const struct dec *d, const char *p)
{
    return p < d->end && (unsigned)(*p - '0') < 10;
}

/* strtod on the validated token [s, e): correctly rounded by the C library. The token is copied
 * so that it is NUL-terminated, with '.' replaced by the locale's decimal point. */
static double slow_double(struct dec *d, const char *s, const char *e)
{
    size_t n = (size_t)(e - s);
    char local[128];
    /* Absurdly long numbers borrow a userdata as the buffer (collected like the rest). */
    char *buf = n < sizeof local ? local : lua_newuserdatauv(d->L, n + 1, 0);
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *dot = memchr(buf, '.', n);
    if (dot) *dot = localeconv()->decimal_point[0];
    double v = strtod(buf, NULL);
    if (buf != local) lua_pop(d->L, 1);
    return v;
}

static const char *parse_number(struct dec *d, const char *p)
{
    const char *s = p;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    uint64_t m = 0;
    ptrdiff_t digits = 0; /* digits accumulated into m */
    if (!is_digit(d, p)) expected(d, p, "a digit");
    if (*p == '0') {
        p++;
        if (is_digit(d, p)) fail_at(d, p - 1, "leading zero in number");
    } else {
        const char *ds = p;
        while (is_digit(d, p))
            p++;
        digits = p - ds;
        for (const char *q = ds; q < p && q < ds + 19; q++)
            m = m * 10 + (uint64_t)(*q - '0');
    }
    ptrdiff_t int_digits = digits, frac = 0;
    int has_frac = 0, has_exp = 0;
    long exp10 = 0;
    if (p < d->end && *p == '.') {
        has_frac = 1;
        p++;
        if (!is_digit(d, p)) expected(d, p, "a digit after '.'");
        const char *fs = p;
        while (is_digit(d, p))
            p++;
        frac = p - fs;
        for (const char *q = fs; q < p && digits < 19; q++, digits++)
            m = m * 10 + (uint64_t)(*q - '0');
        if (frac + int_digits > 19) digits = 20; /* too many for the fast path */
    }
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        has_exp = 1;
        p++;
        int eneg = 0;
        if (p < d->end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (!is_digit(d, p)) expected(d, p, "a digit in the exponent");
        while (is_digit(d, p)) {
            if (exp10 < 100000) exp10 = exp10 * 10 + (*p - '0');
            p++;
        }
        if (eneg) exp10 = -exp10;
    }

    if (!has_frac && !has_exp) {
        /* An integer: exact over the whole int64 range, a float beyond it. */
        if (digits <= 18 || (digits == 19 && m <= (uint64_t)INT64_MAX + (uint64_t)neg)) {
            lua_Integer v;
            if (!neg)
                v = (lua_Integer)m;
            else if (m == (uint64_t)INT64_MAX + 1)
                v = INT64_MIN;
            else
                v = -(lua_Integer)m;
            lua_pushinteger(d->L, v);
            return p;
        }
        lua_pushnumber(d->L, slow_double(d, s, p));
        return p;
    }
    /* Clinger's fast path: m and 10^|e| are exact doubles, so one rounding gives the correctly
     * rounded result. */
    ptrdiff_t e10 = exp10 - frac;
    if (digits <= 19 && int_digits <= 19 && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        double v = (double)m;
        v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
        lua_pushnumber(d->L, neg ? -v : v);
        return p;
    }
    lua_pushnumber(d->L, slow_double(d, s, p));
    return p;
}

/* ---- literals ---- */

static const char *parse_literal(struct dec *d, const char *p, const char *word, size_t n)
{
    if ((size_t)(d->end - p) < n || memcmp(p, word, n) != 0) {
        /* Show the letters that were there instead ("found 'tru'"), as far as they go. */
        size_t k = 0;
        while (k < n && p + k < d->end && p[k] >= 'a' && p[k] <= 'z')
            k++;
        char msg[96];
        snprintf(msg, sizeof msg, "json: expected '%s' at offset %lld, found '%.*s'", word,
                 (long long)(p - d->start), (int)k, p);
        lua_pushstring(d->L, msg);
        lua_error(d->L);
    }
    return p + n;
}

/* ---- containers ---- */

static void enter(struct dec *d, const char *p)
{
    if (++d->depth > DV_JSON_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d levels", DV_JSON_MAX_DEPTH);
        fail_at(d, p, what);
    }
    luaL_checkstack(d->L, 2 * BATCH + 8, "json: nesting too deep");
}

/* Puts a new marked array of size hint `size` at base+1, below the members already pushed. */
static void new_array_below(struct dec *d, int base, int size)
{
    lua_createtable(d->L, size, 0);
    lua_rotate(d->L, base + 1, 1);
    lua_pushvalue(d->L, d->array_mt);
    lua_setmetatable(d->L, base + 1);
}

/* Pops the n members on top of the stack into the array at tbl as items first..first+n-1. */
static void pop_into_array(lua_State *L, int tbl, int n, lua_Integer first)
{
    for (int i = n; i >= 1; i--)
        lua_rawseti(L, tbl, first + i - 1);
}

/* p is just after '['. */
static const char *parse_array(struct dec *d, const char *p)
{
    lua_State *L = d->L;
    enter(d, p - 1);
    int base = lua_gettop(L);
    int n = 0, has_table = 0;
    lua_Integer first = 1;
    p = skip_ws(d, p);
    if (p < d->end && *p == ']') {
        new_array_below(d, base, 0);
        d->depth--;
        return p + 1;
    }
    for (;;) {
        p = parse_value(d, p);
        if (++n == BATCH) {
            /* Keep the stack bounded: move what we have into the table and carry on. */
            if (!has_table) {
                new_array_below(d, base, 4 * BATCH);
                has_table = 1;
                base++; /* members now sit above the table */
            }
            pop_into_array(L, base, n, first);
            first += n;
            n = 0;
        }
        p = skip_ws(d, p);
        if (p < d->end && *p == ',') {
            p = skip_ws(d, p + 1);
            continue;
        }
        if (p < d->end && *p == ']') break;
        expected(d, p, "',' or ']'");
    }
    if (!has_table) {
        new_array_below(d, base, n);
        base++;
    }
    pop_into_array(L, base, n, first);
    d->depth--;
    return p + 1;
}

/* Sets the n key/value pairs at from.. into the table at tbl, in document order so that the last
 * of duplicate keys wins. */
static void set_pairs(lua_State *L, int tbl, int from, int n)
{
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, from + 2 * i);
        lua_pushvalue(L, from + 2 * i + 1);
        lua_rawset(L, tbl);
    }
}

/* p is just after '{'. */
static const char *parse_object(struct dec *d, const char *p)
{
    lua_State *L = d->L;
    enter(d, p - 1);
    int base = lua_gettop(L);
    int n = 0, tbl = 0, k = 0;
    p = skip_ws(d, p);
    if (p < d->end && *p == '}') {
        lua_createtable(L, 0, 0);
        d->depth--;
        return p + 1;
    }
    for (;;) {
        if (p >= d->end || *p != '"')
            expected(d, p, n || tbl ? "a string key" : "a string key or '}'");
        p = parse_key(d, p + 1, k++);
        p = skip_ws(d, p);
        if (p >= d->end || *p != ':') expected(d, p, "':'");
        p = parse_value(d, skip_ws(d, p + 1));
        if (++n == BATCH) {
            if (!tbl) {
                lua_createtable(L, 0, 2 * BATCH);
                tbl = lua_gettop(L);
                set_pairs(L, tbl, base + 1, n);
                lua_replace(L, base + 1);
                tbl = base + 1;
            } else {
                set_pairs(L, tbl, tbl + 1, n);
            }
            lua_settop(L, tbl);
            n = 0;
        }
        p = skip_ws(d, p);
        if (p < d->end && *p == ',') {
            p = skip_ws(d, p + 1);
            continue;
        }
        if (p < d->end && *p == '}') break;
        expected(d, p, "',' or '}'");
    }
    if (tbl) {
        set_pairs(L, tbl, tbl + 1, n);
    } else {
        lua_createtable(L, 0, n);
        set_pairs(L, lua_gettop(L), base + 1, n);
        lua_replace(L, base + 1);
        tbl = base + 1;
    }
    lua_settop(L, tbl);
    d->depth--;
    return p + 1;
}

/* ---- values ---- */

/* p is at the first byte of a value (whitespace already skipped). Pushes it. */
static const char *parse_value(struct dec *d, const char *p)
{
    if (p >= d->end) expected(d, p, "a value");
    switch (*p) {
    case '"':
        return parse_string(d, p + 1);
    case '{':
        return parse_object(d, p + 1);
    case '[':
        return parse_array(d, p + 1);
    case 't':
        lua_pushboolean(d->L, 1);
        return parse_literal(d, p, "true", 4);
    case 'f':
        lua_pushboolean(d->L, 0);
        return parse_literal(d, p, "false", 5);
    case 'n':
        lua_pushlightuserdata(d->L, NULL);
        return parse_literal(d, p, "null", 4);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(d, p);
    default:
        expected(d, p, "a value");
        return p;
    }
}

/* Runs inside lua_pcall: upvalue-free, the input comes as a light userdata argument. */
struct job {
    const char *s;
    size_t len;
};

static int decode_protected(lua_State *L)
{
    const struct job *j = lua_touserdata(L, 1);
    lua_settop(L, 0);
    dv_json_push_array_mt(L);
    lua_createtable(L, KEY_DEPTHS * KEY_SLOTS, 0);
    struct dec d = {.L = L, .start = j->s, .end = j->s + j->len, .array_mt = 1, .keys = 2};
    const char *p = d.start;
    /* A UTF-8 byte order mark is allowed before the text (RFC 8259 section 8.1). */
    if (j->len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    p = parse_value(&d, skip_ws(&d, p));
    p = skip_ws(&d, p);
    if (p < d.end) expected(&d, p, "end of input");
    return 1;
}

int dv_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
    struct job j = {s ? s : "", s ? len : 0};
    if (!lua_checkstack(L, 3)) {
        if (errlen) snprintf(err, errlen, "json: Lua stack exhausted");
        return -1;
    }
    lua_pushcfunction(L, decode_protected);
    lua_pushlightuserdata(L, &j);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) return 0;
    if (errlen) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "json: decoding failed");
    }
    lua_pop(L, 1);
    return -1;
}
