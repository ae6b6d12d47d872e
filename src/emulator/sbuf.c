#include "sbuf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static void grow(sbuf *b, size_t need)
{
    if (b->n + need + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + need + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) abort(); /* out of memory: nothing sensible is left to answer with */
    b->p = p;
    b->cap = cap;
}

void sb_put(sbuf *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

void sb_putc(sbuf *b, char c)
{
    grow(b, 1);
    b->p[b->n++] = c;
    b->p[b->n] = 0;
}

void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void sb_json_strn(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    grow(b, n + 2);
    sb_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_put(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"':
            sb_put(b, "\\\"", 2);
            break;
        case '\\':
            sb_put(b, "\\\\", 2);
            break;
        case '\n':
            sb_put(b, "\\n", 2);
            break;
        case '\r':
            sb_put(b, "\\r", 2);
            break;
        case '\t':
            sb_put(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sb_put(b, u, 6);
        }
        }
    }
    sb_put(b, s + start, n - start);
    sb_putc(b, '"');
}

void sb_json_str(sbuf *b, const char *s)
{
    if (!s) {
        sb_puts(b, "null");
        return;
    }
    sb_json_strn(b, s, strlen(s));
}

void sb_url_enc(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == '$' || c == ',' || c == '\'' ||
            c == '(' || c == ')') {
            sb_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_put(b, e, 3);
        }
    }
}

const char *sb_str(sbuf *b)
{
    return b->p ? b->p : "";
}

void sb_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t url_decode(char *s, int plus_space)
{
    char *o = s;
    for (char *i = s; *i; i++) {
        if (*i == '%' && hexval(i[1]) >= 0 && hexval(i[2]) >= 0) {
            *o++ = (char)(hexval(i[1]) * 16 + hexval(i[2]));
            i += 2;
        } else if (*i == '+' && plus_space) {
            *o++ = ' ';
        } else {
            *o++ = *i;
        }
    }
    *o = 0;
    return (size_t)(o - s);
}

int guid_valid(const char *s, size_t n)
{
    if (n != 36) return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (hexval((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

static void guid_format(const unsigned char b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[36] = 0;
}

/* Random bytes for new ids, fetched 16 ids at a time: bulk writes create thousands of ids
 * per request, and a system call per id showed. Each thread has its own. */
static __thread unsigned char pool[256];
static __thread size_t pool_left;

static int pool_take(unsigned char b[16])
{
    if (pool_left < 16) {
        if (getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool) return -1;
        pool_left = sizeof pool;
    }
    memcpy(b, pool + sizeof pool - pool_left, 16);
    memset(pool + sizeof pool - pool_left, 0, 16); /* an id's bytes are not kept */
    pool_left -= 16;
    return 0;
}

/* The next value of the ids' leading 48 bits: milliseconds since 2020 times 256 when first
 * asked, then one more per id, so ids made later sort later, as the sequential GUIDs SQL
 * Server makes for Dataverse rows do. Rows then land at the end of the primary key's index
 * instead of on a random page of it, which for a large table is most of a write's cost.
 * One sequence for the process: ids stay distinct whichever emulator or thread asks. */
static uint64_t id_prefix(void)
{
    static uint64_t seq;
    uint64_t v = __atomic_load_n(&seq, __ATOMIC_RELAXED);
    if (v == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        uint64_t start = ((ms - 1577836800000ull) << 8) & 0xffffffffffffull;
        __atomic_compare_exchange_n(&seq, &v, start, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    return __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED) & 0xffffffffffffull;
}

void guid_new(char out[37])
{
    unsigned char b[16];
    if (pool_take(b)) {
        /* No urandom: a clock-and-counter mix still gives distinct ids within a process. */
        static unsigned long ctr;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x =
            (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (++ctr * 0x9e3779b97f4a7c15ull);
        for (int i = 0; i < 16; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[i] = (unsigned char)x;
        }
    }
    uint64_t p = id_prefix();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(p >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    guid_format(b, out);
}

void guid_from_name(const char *name, char out[37])
{
    uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h1 = (h1 ^ *p) * 1099511628211ull;
        h2 = (h2 ^ *p) * 0x100000001b3ull + (h2 >> 29);
    }
    unsigned char b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(h1 >> (i * 8));
        b[8 + i] = (unsigned char)(h2 >> (i * 8));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x50);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    guid_format(b, out);
}

void time_iso(double t, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

unsigned char *base64_decode(const char *s, size_t n, size_t *outlen)
{
    unsigned char *out = malloc(n / 4 * 3 + 4);
    if (!out) return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else if (c == '=')
            break;
        else if (c == '\r' || c == '\n' || c == ' ')
            continue;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *outlen = o;
    return out;
}

void sb_xml_str(sbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            sb_puts(b, "&lt;");
            break;
        case '>':
            sb_puts(b, "&gt;");
            break;
        case '&':
            sb_puts(b, "&amp;");
            break;
        case '"':
            sb_puts(b, "&quot;");
            break;
        case '\'':
            sb_puts(b, "&apos;");
            break;
        default:
            sb_putc(b, *s);
        }
    }
}
