#include "jscan.h"

#include <stdlib.h>
#include <string.h>

typedef struct scan {
    const char *p, *end;
} scan;

static void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* strchr alone would also match the terminating NUL. */
static int is_number_char(char c)
{
    return c && (strchr("+-.eE", c) || (c >= '0' && c <= '9'));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(scan *s, unsigned *u)
{
    if (s->end - s->p < 4) return -1;
    *u = 0;
    for (int i = 0; i < 4; i++) {
        int v = hexval(s->p[i]);
        if (v < 0) return -1;
        *u = *u << 4 | (unsigned)v;
    }
    s->p += 4;
    return 0;
}

static size_t put_utf8(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads a string at s->p (which points at the opening quote). With out == NULL it only skips.
 * Returns the decoded length, -1 when malformed, -2 when it does not fit in out. */
static long read_string(scan *s, char *out, size_t outsz)
{
    size_t n = 0;
    int overflow = 0;
    if (s->p >= s->end || *s->p != '"') return -1;
    s->p++;
    while (s->p < s->end) {
        char c = *s->p++;
        char buf[4];
        size_t k = 1;
        if (c == '"') {
            if (out) out[n] = 0;
            return overflow ? -2 : (long)n;
        }
        if ((unsigned char)c < 0x20) return -1;
        buf[0] = c;
        if (c == '\\') {
            if (s->p >= s->end) return -1;
            c = *s->p++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                buf[0] = c;
                break;
            case 'b':
                buf[0] = '\b';
                break;
            case 'f':
                buf[0] = '\f';
                break;
            case 'n':
                buf[0] = '\n';
                break;
            case 'r':
                buf[0] = '\r';
                break;
            case 't':
                buf[0] = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (read_hex4(s, &cp)) return -1;
                if (cp >= 0xD800 && cp < 0xDC00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
                    s->p[1] == 'u') {
                    s->p += 2;
                    if (read_hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                k = put_utf8(cp, buf);
                break;
            }
            default:
                return -1;
            }
        }
        if (out) {
            if (n + k >= outsz) {
                overflow = 1;
            } else {
                memcpy(out + n, buf, k);
            }
        }
        if (!overflow) n += k;
    }
    return -1;
}

/* Skips any value; returns 0 or -1 when malformed. */
static int skip_value(scan *s, int nest)
{
    skip_ws(s);
    if (s->p >= s->end || nest > 64) return -1;
    if (*s->p == '"') return read_string(s, NULL, 0) < 0 ? -1 : 0;
    if (*s->p == '{' || *s->p == '[') {
        char close = *s->p == '{' ? '}' : ']';
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                skip_ws(s);
                if (read_string(s, NULL, 0) < 0) return -1;
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':') return -1;
                s->p++;
            }
            if (skip_value(s, nest + 1)) return -1;
            skip_ws(s);
            if (s->p >= s->end) return -1;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p == close) {
                s->p++;
                return 0;
            }
            return -1;
        }
    }
    /* number, true, false, null */
    const char *start = s->p;
    while (s->p < s->end && (is_number_char(*s->p) || (*s->p >= 'a' && *s->p <= 'z')))
        s->p++;
    return s->p > start ? 0 : -1;
}

/* Walks the object at s->p looking for key at the wanted depth; leaves s->p on its value. */
static int find_member(scan *s, const char *key, int depth, int nest)
{
    char name[128];
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{') return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') return -1;
    for (;;) {
        long n;
        skip_ws(s);
        n = read_string(s, name, sizeof name);
        if (n == -1) return -1;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') return -1;
        s->p++;
        skip_ws(s);
        if (n >= 0 && nest == depth && strcmp(name, key) == 0) return 0;
        if (nest < depth && s->p < s->end && *s->p == '{') {
            scan sub = *s;
            if (find_member(&sub, key, depth, nest + 1) == 0) {
                *s = sub;
                return 0;
            }
        }
        if (skip_value(s, nest)) return -1;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return -1;
    }
}

long dv_jscan_string(const char *json, size_t len, const char *key, int depth, char *out,
                     size_t outsz)
{
    scan s;
    long n;
    if (!json || outsz == 0) return -1;
    s.p = json;
    s.end = json + len;
    if (find_member(&s, key, depth, 1)) return -1;
    n = read_string(&s, out, outsz);
    if (n < 0) {
        out[0] = 0;
        return -1;
    }
    return n;
}

int dv_jscan_number(const char *json, size_t len, const char *key, int depth, double *out)
{
    scan s;
    char buf[64];
    char *endp;
    if (!json) return -1;
    s.p = json;
    s.end = json + len;
    if (find_member(&s, key, depth, 1)) return -1;
    if (s.p < s.end && *s.p == '"') {
        if (read_string(&s, buf, sizeof buf) <= 0) return -1;
    } else {
        const char *start = s.p;
        size_t n;
        while (s.p < s.end && is_number_char(*s.p))
            s.p++;
        n = (size_t)(s.p - start);
        if (n == 0 || n >= sizeof buf) return -1;
        memcpy(buf, start, n);
        buf[n] = 0;
    }
    *out = strtod(buf, &endp);
    return *endp == 0 && endp != buf ? 0 : -1;
}
