/* Flat JSON objects read without SQLite. See jwalk.h. */
#include "jwalk.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end;
} cur;

static void ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A string without escapes or control characters; *s, *n its characters. */
static int plain_string(cur *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"') return -1;
    const char *q = ++c->p;
    while (q < c->end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20) return -1;
        q++;
    }
    if (q >= c->end) return -1;
    *s = c->p;
    *n = (size_t)(q - c->p);
    c->p = q + 1;
    return 0;
}

static int word(cur *c, const char *w, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return -1;
    c->p += n;
    return 0;
}

/* A scalar member value, in the forms JSON1 would give back unchanged. */
static int scalar(cur *c, jw_member *m)
{
    const char *start = c->p;
    if (c->p >= c->end) return -1;
    switch (*c->p) {
    case '"':
        if (plain_string(c, &m->text, &m->text_len)) return -1;
        m->type = "text";
        m->json = start;
        m->json_len = (size_t)(c->p - start);
        return 0;
    case 't':
        m->type = "true";
        if (word(c, "true", 4)) return -1;
        break;
    case 'f':
        m->type = "false";
        if (word(c, "false", 5)) return -1;
        break;
    case 'n':
        m->type = "null";
        if (word(c, "null", 4)) return -1;
        break;
    default: {
        /* -?(0|[1-9][0-9]*) that fits a 64-bit integer; "-0", fractions and exponents are
         * JSON1's to render. */
        const char *q = c->p;
        if (*q == '-') q++;
        const char *digits = q;
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
        size_t nd = (size_t)(q - digits);
        if (nd == 0 || nd > 18 || (nd > 1 && *digits == '0')) return -1;
        if (*c->p == '-' && nd == 1 && *digits == '0') return -1;
        if (q < c->end && (*q == '.' || *q == 'e' || *q == 'E')) return -1;
        m->type = "integer";
        c->p = q;
    }
    }
    m->json = m->text = start;
    m->json_len = m->text_len = (size_t)(c->p - start);
    /* a word must end where a JSON token could follow */
    if (c->p < c->end && !strchr(" \t\n\r,}]", *c->p)) return -1;
    return 0;
}

/* Reads a flat object at c->p into a growing array; 0 or -1. */
static int object(cur *c, jw_member **v, int *n, int *cap)
{
    ws(c);
    if (c->p >= c->end || *c->p != '{') return -1;
    c->p++;
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        jw_member m;
        ws(c);
        if (plain_string(c, &m.key, &m.key_len)) return -1;
        ws(c);
        if (c->p >= c->end || *c->p != ':') return -1;
        c->p++;
        ws(c);
        if (scalar(c, &m)) return -1;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            jw_member *nv = realloc(*v, sizeof **v * (size_t)*cap);
            if (!nv) return -1;
            *v = nv;
        }
        (*v)[(*n)++] = m;
        ws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == '}') {
            c->p++;
            return 0;
        }
        if (*c->p != ',') return -1;
        c->p++;
    }
}

int jw_object(const char *json, size_t len, jw_member **out, int *n)
{
    cur c = {json, json + len};
    jw_member *v = NULL;
    int cnt = 0, cap = 0;
    if (object(&c, &v, &cnt, &cap)) {
        free(v);
        return 1;
    }
    ws(&c);
    if (c.p != c.end) {
        free(v);
        return 1;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int jw_targets(const char *json, size_t len, const char *name, size_t **starts, size_t **lens)
{
    cur c = {json, json + len};
    size_t *st = NULL, *ln = NULL;
    int cnt = 0, cap = 0, found = 0;
    jw_member *scratch = NULL;
    int sn = 0, scap = 0;
    size_t name_len = strlen(name);
    ws(&c);
    if (c.p >= c.end || *c.p != '{') goto fail;
    c.p++;
    ws(&c);
    if (c.p < c.end && *c.p == '}') goto fail;
    for (;;) {
        const char *key;
        size_t klen;
        ws(&c);
        if (plain_string(&c, &key, &klen)) goto fail;
        ws(&c);
        if (c.p >= c.end || *c.p != ':') goto fail;
        c.p++;
        ws(&c);
        if (klen == name_len && memcmp(key, name, klen) == 0) {
            if (found || c.p >= c.end || *c.p != '[') goto fail;
            found = 1;
            c.p++;
            ws(&c);
            if (c.p < c.end && *c.p == ']') {
                c.p++;
            } else {
                for (;;) {
                    ws(&c);
                    const char *s = c.p;
                    sn = 0;
                    if (object(&c, &scratch, &sn, &scap)) goto fail;
                    if (cnt == cap) {
                        cap = cap ? cap * 2 : 64;
                        size_t *ns = realloc(st, sizeof *st * (size_t)cap);
                        if (!ns) goto fail;
                        st = ns;
                        size_t *nl = realloc(ln, sizeof *ln * (size_t)cap);
                        if (!nl) goto fail;
                        ln = nl;
                    }
                    st[cnt] = (size_t)(s - json);
                    ln[cnt++] = (size_t)(c.p - s);
                    ws(&c);
                    if (c.p >= c.end) goto fail;
                    if (*c.p == ']') {
                        c.p++;
                        break;
                    }
                    if (*c.p != ',') goto fail;
                    c.p++;
                }
            }
        } else {
            jw_member m;
            if (scalar(&c, &m)) goto fail;
        }
        ws(&c);
        if (c.p >= c.end) goto fail;
        if (*c.p == '}') {
            c.p++;
            break;
        }
        if (*c.p != ',') goto fail;
        c.p++;
    }
    ws(&c);
    if (c.p != c.end || !found || cnt == 0) goto fail;
    free(scratch);
    *starts = st;
    *lens = ln;
    return cnt;
fail:
    free(scratch);
    free(st);
    free(ln);
    return -1;
}

int jw_depth(const char *json, size_t len)
{
    int depth = 0, deepest = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > deepest) deepest = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return deepest;
}
