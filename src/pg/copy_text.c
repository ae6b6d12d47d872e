#include "copy_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgc_free(pgc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int reserve(pgc_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int pgc_raw(pgc_buf *b, const char *s, size_t n)
{
    if (reserve(b, n)) return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

int pgc_text(pgc_buf *b, const char *s, size_t n)
{
    /* At worst every byte doubles. */
    if (reserve(b, 2 * n)) return -1;
    char *o = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '\0':
            return -2;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        default:
            *o++ = c;
        }
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

int pgc_int(pgc_buf *b, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    return pgc_raw(b, tmp, (size_t)n);
}

int pgc_double(pgc_buf *b, double v)
{
    if (isnan(v)) return pgc_raw(b, "NaN", 3);
    if (isinf(v)) return v > 0 ? pgc_raw(b, "Infinity", 8) : pgc_raw(b, "-Infinity", 9);
    char tmp[40];
    int n = 0;
    /* Fewest digits first: 0.1 stays "0.1" and numeric columns get no noise digits. */
    for (int p = 15; p <= 17; p++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (strtod(tmp, NULL) == v) break;
    }
    return pgc_raw(b, tmp, (size_t)n);
}

int pgc_null(pgc_buf *b)
{
    return pgc_raw(b, "\\N", 2);
}
