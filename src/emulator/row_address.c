/* Addressing a row: <set>(guid) or <set>(k1='v',k2=2) by alternate key. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"
#include "row_address.h"
#include "store.h"

static void bind_keyval(sqlite3_stmt *st, int idx, void *ud, int which)
{
    keyval *kv = &((keyval *)ud)[which];
    if (kv->type == SQLITE_TEXT)
        sqlite3_bind_text(st, idx, kv->text, -1, SQLITE_TRANSIENT);
    else if (kv->type == SQLITE_INTEGER)
        sqlite3_bind_int64(st, idx, kv->i);
    else
        sqlite3_bind_double(st, idx, kv->d);
}

void keyvals_free(keyvals *k)
{
    for (int i = 0; i < k->n; i++)
        free(k->v[i].text);
    k->n = 0;
}

/* Parses a literal at *p into kv; returns 0 or -1. */
static int parse_key_literal(const char **pp, keyval *kv)
{
    const char *p = *pp;
    if (*p == '\'') {
        sbuf b = {0};
        p++;
        for (;;) {
            if (!*p) {
                sb_free(&b);
                return -1;
            }
            if (*p == '\'') {
                if (p[1] == '\'') {
                    sb_putc(&b, '\'');
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            sb_putc(&b, *p++);
        }
        kv->type = SQLITE_TEXT;
        kv->text = strdup(sb_str(&b));
        sb_free(&b);
    } else if (guid_valid(p, strnlen(p, 36)) && (p[36] == ',' || p[36] == ')' || !p[36])) {
        kv->type = SQLITE_TEXT;
        kv->text = strndup(p, 36);
        for (char *c = kv->text; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        p += 36;
    } else if (*p == '-' || isdigit((unsigned char)*p)) {
        char *end;
        long long i = strtoll(p, &end, 10);
        if (*end == '.') {
            kv->type = SQLITE_FLOAT;
            kv->d = strtod(p, &end);
        } else {
            kv->type = SQLITE_INTEGER;
            kv->i = i;
        }
        p = end;
    } else if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
        kv->type = SQLITE_INTEGER;
        kv->i = *p == 't';
        p += *p == 't' ? 4 : 5;
    } else {
        return -1;
    }
    *pp = p;
    return 0;
}

/* Parses the part between parentheses; *end is left after ')'. */
int parse_address(emu_req *r, const emu_entity *t, const char *p, const char **end, address *a)
{
    const char *start = p;
    memset(a, 0, sizeof *a);
    if (guid_valid(p, strnlen(p, 36)) && p[36] == ')') {
        a->kind = ADDR_ID;
        for (int i = 0; i < 36; i++)
            a->id[i] = (char)tolower((unsigned char)p[i]);
        *end = p + 37;
        return 0;
    }
    while (*p && *p != ')') {
        const char *n = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p == n || *p != '=' || a->kv.n == 8) goto bad;
        keyval *kv = &a->kv.v[a->kv.n++];
        snprintf(kv->name, sizeof kv->name, "%.*s", (int)(p - n), n);
        p++;
        if (parse_key_literal(&p, kv)) goto bad;
        if (*p == ',')
            p++;
        else if (*p != ')')
            goto bad;
    }
    if (*p != ')' || a->kv.n == 0) goto bad;
    *end = p + 1;
    a->src = start;
    a->src_len = (int)(p - start);
    if (a->kv.n == 1 && strcmp(a->kv.v[0].name, t->def.primary_id) == 0) {
        keyval *kv = &a->kv.v[0];
        if (kv->type != SQLITE_TEXT || !guid_valid(kv->text, strlen(kv->text))) goto bad;
        a->kind = ADDR_ID;
        snprintf(a->id, sizeof a->id, "%s", kv->text);
        keyvals_free(&a->kv);
        return 0;
    }
    for (int k = 0; k < t->def.n_keys; k++) {
        const dv_key_def *kd = &t->def.keys[k];
        if (kd->n_attributes != a->kv.n) continue;
        keyval sorted[8];
        memset(sorted, 0, sizeof sorted);
        int ok = 1;
        for (int j = 0; j < kd->n_attributes && ok; j++) {
            ok = 0;
            for (int i = 0; i < a->kv.n; i++) {
                if (strcmp(a->kv.v[i].name, kd->attributes[j]) == 0) {
                    sorted[j] = a->kv.v[i];
                    ok = 1;
                }
            }
        }
        if (!ok) continue;
        memcpy(a->kv.v, sorted, sizeof sorted[0] * (size_t)a->kv.n);
        a->kind = ADDR_KEY;
        a->key = k;
        return 0;
    }
    keyvals_free(&a->kv);
    if (strchr(start, '=') == NULL || strchr(start, '=') > strchr(start, ')')) goto bad;
    return emu_error(r, 400, BAD_QUERY,
                     "The key used to address the record is not a key of entity '%s': no "
                     "alternate key has exactly these columns.",
                     t->def.logical_name);
bad:
    keyvals_free(&a->kv);
    return emu_error(r, 400, BAD_QUERY, "Bad Request - Error in query syntax.");
}

void key_values_text(const address *a, sbuf *b)
{
    for (int i = 0; i < a->kv.n; i++) {
        const keyval *kv = &a->kv.v[i];
        if (i) sb_putc(b, ',');
        sb_printf(b, "%s:", kv->name);
        if (kv->type == SQLITE_TEXT)
            sb_puts(b, kv->text);
        else if (kv->type == SQLITE_INTEGER)
            sb_printf(b, "%lld", kv->i);
        else
            sb_printf(b, "%g", kv->d);
    }
}

/* Resolves an address to a row id; 1 found, 0 missing. */
int find_row(emu_req *r, const emu_entity *t, const address *a, char id[37])
{
    if (a->kind == ADDR_ID) {
        snprintf(id, 37, "%s", a->id);
        return store_row_get(r->emu, t, id, NULL, NULL);
    }
    return store_row_by_key(r->emu, t, a->key, bind_keyval, (void *)a->kv.v, id);
}

int not_found(emu_req *r, const emu_entity *t, const address *a)
{
    if (a->kind == ADDR_ID)
        return emu_error(r, 404, NOT_FOUND, "Entity '%s' With Id = %s Does Not Exist",
                         t->def.logical_name, a->id);
    return emu_error(r, 404, NOT_FOUND,
                     "A record with the specified key values does not exist in %s entity",
                     t->def.logical_name);
}
