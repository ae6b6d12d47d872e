/* Rows over the Web API: create, read (by id or alternate key), update, upsert, delete,
 * collection queries with paging, $count, and change tracking (delta links). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "emu_internal.h"
#include "rows.h"
#include "solutions.h"
#include "query.h"
#include "store.h"

#define MAX_PAGE 5000
#define BAD_QUERY "0x80060888"
#define NOT_FOUND "0x80040217"
#define DUP_KEY "0x80060892"
#define DUP_RECORD "0x80040237"
#define TOKEN_EXPIRED "0x80044352"

/* ---- small pieces ---- */

typedef struct {
    char *name; /* property name */
    char *json; /* its value as JSON text */
} field;

typedef struct {
    field *f;
    int n, cap;
} fieldset;

static void fs_set(fieldset *fs, const char *name, const char *json)
{
    for (int i = 0; i < fs->n; i++) {
        if (strcmp(fs->f[i].name, name) == 0) {
            free(fs->f[i].json);
            fs->f[i].json = strdup(json);
            return;
        }
    }
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 16;
        fs->f = realloc(fs->f, sizeof *fs->f * (size_t)fs->cap);
    }
    fs->f[fs->n].name = strdup(name);
    fs->f[fs->n++].json = strdup(json);
}

static const char *fs_get(const fieldset *fs, const char *name)
{
    for (int i = 0; i < fs->n; i++)
        if (strcmp(fs->f[i].name, name) == 0) return fs->f[i].json;
    return NULL;
}

static void fs_free(fieldset *fs)
{
    for (int i = 0; i < fs->n; i++)
        free(fs->f[i].name), free(fs->f[i].json);
    free(fs->f);
    memset(fs, 0, sizeof *fs);
}

/* Splits a flat JSON object into fields, using SQLite's JSON1 parser. */
typedef int (*field_cb)(void *ud, const char *key, const char *type, const char *json,
                        const char *text);

static int each_field(dv_emulator *e, const char *json, size_t len, field_cb cb, void *ud)
{
    sqlite3_stmt *st = store_stmt(
        e, "SELECT key, type, CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
           "WHEN 'null' THEN 'null' WHEN 'object' THEN value WHEN 'array' THEN value "
           "ELSE json_quote(value) END, value FROM json_each(?1)");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, json, (int)len, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = cb(
            ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
        if (r) {
            sqlite3_reset(st);
            return r;
        }
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

static int json_is_object(dv_emulator *e, const char *json, size_t len)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT json_valid(?1) AND json_type(?1) = 'object'");
    sqlite3_bind_text(st, 1, json, (int)len, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
}

static int collect_cb(void *ud, const char *key, const char *type, const char *json,
                      const char *text)
{
    (void)type, (void)text;
    fs_set(ud, key, json);
    return 0;
}

static const char *edm_name(dv_attr_type t)
{
    switch (t) {
    case DV_ATTR_STRING:
    case DV_ATTR_MEMO:
        return "Edm.String";
    case DV_ATTR_INTEGER:
    case DV_ATTR_PICKLIST:
    case DV_ATTR_STATE:
    case DV_ATTR_STATUS:
        return "Edm.Int32";
    case DV_ATTR_BIGINT:
        return "Edm.Int64";
    case DV_ATTR_DECIMAL:
    case DV_ATTR_MONEY:
        return "Edm.Decimal";
    case DV_ATTR_DOUBLE:
        return "Edm.Double";
    case DV_ATTR_BOOLEAN:
        return "Edm.Boolean";
    case DV_ATTR_DATETIME:
        return "Edm.DateTimeOffset";
    default:
        return "Edm.Guid";
    }
}

static int query_kind(dv_attr_type t)
{
    switch (t) {
    case DV_ATTR_STRING:
    case DV_ATTR_MEMO:
        return QK_STRING;
    case DV_ATTR_BOOLEAN:
        return QK_BOOL;
    case DV_ATTR_DATETIME:
        return QK_DATE;
    case DV_ATTR_LOOKUP:
    case DV_ATTR_OWNER:
    case DV_ATTR_UNIQUEIDENTIFIER:
        return QK_GUID;
    default:
        return QK_NUMBER;
    }
}

static int resolve_prop(void *ud, const char *name, size_t n, char *expr, size_t cap)
{
    const emu_entity *t = ud;
    const dv_attribute_def *a = store_prop(t, name, n);
    if (!a) return 0;
    char prop[160];
    emu_prop_name(a, prop, sizeof prop);
    snprintf(expr, cap, "(data->>'$.%s')", prop);
    return query_kind(a->type);
}

/* Prefer header preferences this emulator honours. */
typedef struct {
    int track_changes, return_repr, maxpagesize;
} prefs;

static prefs parse_prefer(emu_req *r)
{
    prefs p = {0, 0, 0};
    const char *h = emu_header(r, "Prefer");
    if (!h) return p;
    char *copy = strdup(h), *save = NULL;
    for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        while (*it == ' ')
            it++;
        if (strncasecmp(it, "odata.track-changes", 19) == 0)
            p.track_changes = 1;
        else if (strncasecmp(it, "return=representation", 21) == 0)
            p.return_repr = 1;
        else if (strncasecmp(it, "odata.maxpagesize=", 18) == 0)
            p.maxpagesize = atoi(it + 18);
    }
    free(copy);
    return p;
}

/* ---- $select and $expand ---- */

typedef struct selection selection;

/* A single-valued navigation expanded inline: the lookup and the target's columns. */
typedef struct {
    const dv_attribute_def *a;
    const emu_entity *target;
    selection *sel;
} expansion;

struct selection {
    const dv_attribute_def **a;
    int n;
    int explicit_select;
    expansion *x;
    int nx;
    /* Built once per request by selection_prepare, indexed by column position: */
    const emu_entity *t;
    unsigned char *want; /* 1 when the column goes out */
    char **prop;         /* the property name */
    size_t *prop_len;
    char **prefix; /* ,"<prop>": */
    size_t *prefix_len;
    int *xcol;           /* for each expansion, the position of its lookup column */
    unsigned char *seen; /* scratch: columns met in the current row */
    const char **xval;   /* scratch: each expansion's id in the current row */
    size_t *xval_len;
};

static void selection_free(selection *s)
{
    for (int i = 0; i < s->nx; i++) {
        selection_free(s->x[i].sel);
        free(s->x[i].sel);
    }
    if (s->t) {
        for (int i = 0; i < s->t->def.n_attributes; i++)
            free(s->prop[i]), free(s->prefix[i]);
    }
    free(s->x);
    free(s->a);
    free(s->want), free(s->prop), free(s->prop_len), free(s->prefix), free(s->prefix_len);
    free(s->xcol), free(s->seen), free(s->xval), free(s->xval_len);
    memset(s, 0, sizeof *s);
}

static void selection_prepare(selection *s, const emu_entity *t);

static int parse_select_str(emu_req *r, const emu_entity *t, const char *sel, size_t len,
                            selection *s)
{
    s->a = calloc((size_t)t->def.n_attributes + 1, sizeof *s->a);
    s->n = 0;
    s->explicit_select = sel != NULL;
    if (!sel) {
        for (int i = 0; i < t->def.n_attributes; i++)
            s->a[s->n++] = &t->def.attributes[i];
        return 0;
    }
    const char *p = sel, *stop = sel + len;
    while (p < stop) {
        const char *q = p;
        while (q < stop && *q != ',')
            q++;
        size_t n = (size_t)(q - p);
        while (n && p[n - 1] == ' ')
            n--;
        while (n && *p == ' ')
            p++, n--;
        const dv_attribute_def *a = store_prop(t, p, n);
        if (!a)
            return emu_error(r, 400, BAD_QUERY,
                             "Could not find a property named '%.*s' on type "
                             "'Microsoft.Dynamics.CRM.%s'.",
                             (int)n, p, t->def.logical_name);
        int dup = 0;
        for (int i = 0; i < s->n; i++)
            dup |= s->a[i] == a;
        if (!dup && s->n < t->def.n_attributes) s->a[s->n++] = a;
        p = q < stop ? q + 1 : q;
    }
    return 0;
}

/* $expand=nav or nav($select=a,b), comma-separated: single-valued lookups only. */
static int parse_expand(emu_req *r, const emu_entity *t, const char *ex, selection *s)
{
    const char *p = ex;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p) break;
        const char *name = p;
        while (*p && *p != '(' && *p != ',')
            p++;
        size_t n = (size_t)(p - name);
        while (n && name[n - 1] == ' ')
            n--;
        const char *opts = NULL;
        size_t optlen = 0;
        if (*p == '(') {
            int depth = 1;
            opts = ++p;
            while (*p && depth) {
                if (*p == '(') depth++;
                if (*p == ')') depth--;
                p++;
            }
            if (depth) return emu_error(r, 400, BAD_QUERY, "Syntax error in $expand '%s'.", ex);
            optlen = (size_t)(p - 1 - opts);
        }
        char nav[128];
        snprintf(nav, sizeof nav, "%.*s", (int)(n < 127 ? n : 127), name);
        const dv_attribute_def *a = store_attr(t, nav);
        if (!a || (a->type != DV_ATTR_LOOKUP && a->type != DV_ATTR_OWNER))
            return emu_error(r, 400, BAD_QUERY,
                             "Could not find a property named '%s' on type "
                             "'Microsoft.Dynamics.CRM.%s'.",
                             nav, t->def.logical_name);
        emu_entity *target =
            a->target ? store_by_logical(r->emu, a->target, strlen(a->target)) : NULL;
        if (!target)
            return emu_error(r, 501, BAD_QUERY,
                             "Expanding '%s' is not served by the dvlua "
                             "emulator.",
                             nav);
        const char *sel = NULL;
        size_t sellen = 0;
        if (opts) {
            if (optlen < 8 || strncmp(opts, "$select=", 8) != 0 || memchr(opts, ';', optlen))
                return emu_error(r, 501, BAD_QUERY, "Only $select is served inside $expand.");
            sel = opts + 8;
            sellen = optlen - 8;
        }
        s->x = realloc(s->x, sizeof *s->x * (size_t)(s->nx + 1));
        expansion *x = &s->x[s->nx++];
        x->a = a;
        x->target = target;
        x->sel = calloc(1, sizeof *x->sel);
        if (parse_select_str(r, target, sel, sellen, x->sel)) return -1;
        selection_prepare(x->sel, target);
    }
    return 0;
}

/* Precomputes what emit_row needs so that a row costs one scan of its stored JSON. */
static void selection_prepare(selection *s, const emu_entity *t)
{
    int n = t->def.n_attributes;
    s->t = t;
    s->want = calloc((size_t)n + 1, 1);
    s->seen = calloc((size_t)n + 1, 1);
    s->prop = calloc((size_t)n + 1, sizeof *s->prop);
    s->prop_len = calloc((size_t)n + 1, sizeof *s->prop_len);
    s->prefix = calloc((size_t)n + 1, sizeof *s->prefix);
    s->prefix_len = calloc((size_t)n + 1, sizeof *s->prefix_len);
    s->xcol = calloc((size_t)s->nx + 1, sizeof *s->xcol);
    s->xval = calloc((size_t)s->nx + 1, sizeof *s->xval);
    s->xval_len = calloc((size_t)s->nx + 1, sizeof *s->xval_len);
    for (int k = 0; k < n; k++) {
        char prop[160], pre[170];
        emu_prop_name(&t->def.attributes[k], prop, sizeof prop);
        snprintf(pre, sizeof pre, ",\"%s\":", prop);
        s->prop[k] = strdup(prop);
        s->prop_len[k] = strlen(prop);
        s->prefix[k] = strdup(pre);
        s->prefix_len[k] = strlen(pre);
        /* the primary id always goes out, as Dataverse does */
        s->want[k] = strcmp(t->def.attributes[k].logical_name, t->def.primary_id) == 0;
    }
    for (int i = 0; i < s->n; i++)
        s->want[s->a[i] - t->def.attributes] = 1;
    for (int i = 0; i < s->nx; i++)
        s->xcol[i] = (int)(s->x[i].a - t->def.attributes);
}

static int parse_select(emu_req *r, const emu_entity *t, selection *s)
{
    memset(s, 0, sizeof *s);
    const char *sel = emu_arg(r, "$select");
    if (parse_select_str(r, t, sel, sel ? strlen(sel) : 0, s)) return -1;
    const char *ex = emu_arg(r, "$expand");
    if (ex && parse_expand(r, t, ex, s)) return -1;
    selection_prepare(s, t);
    return 0;
}

static void select_list(const selection *s, sbuf *b)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        char prop[160];
        emu_prop_name(s->a[i], prop, sizeof prop);
        sb_printf(b, "%s%s", n++ ? "," : "", prop);
    }
    for (int i = 0; i < s->nx; i++) {
        sb_printf(b, "%s%s(", n++ ? "," : "", s->x[i].a->logical_name);
        select_list(s->x[i].sel, b);
        sb_putc(b, ')');
    }
}

/* "<base>$metadata#<set>" plus "(a,b,nav(c))" when $select or $expand was given. */
static void context_url(emu_req *r, const emu_entity *t, const selection *s, sbuf *b)
{
    sb_printf(b, "%s$metadata#%s", r->base, t->def.entity_set_name);
    if (s && (s->explicit_select || s->nx)) {
        sb_putc(b, '(');
        select_list(s, b);
        sb_putc(b, ')');
    }
}

/* The select list after "ver, id": the stored row, whose members emit_row copies out. */
static void select_sql(const selection *s, sbuf *b)
{
    (void)s;
    sb_puts(b, ", data");
}

static void emit_row(dv_emulator *e, sbuf *out, sqlite3_stmt *st, int col, const emu_entity *t,
                     const selection *s);

static void emit_expanded(dv_emulator *e, sbuf *out, const expansion *x, const char *id)
{
    /* Worded unlike answer_row's query: the cache must hand out a different statement
     * while the outer row is still being read. */
    sqlite3_stmt *st = store_stmt(e, "SELECT ver, id, data FROM row WHERE id=?2 AND entity=?1");
    if (st) {
        sqlite3_bind_text(st, 1, x->target->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    }
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        emit_row(e, out, st, 0, x->target, x->sel);
        sqlite3_reset(st);
    } else {
        sb_puts(out, "null");
    }
}

/* End of the JSON value starting at p (the stored rows hold scalars, but nesting is
 * skipped correctly too). */
static const char *skip_value(const char *p)
{
    int depth = 0;
    for (;;) {
        char c = *p;
        if (!c) return p;
        if (c == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
            if (!depth) return p;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (!depth) return p;
            if (--depth == 0) return p + 1;
        } else if (c == ',' && !depth) {
            return p;
        }
        p++;
    }
}

static void put_int(sbuf *out, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[n++] = '-';
    char rev[24];
    for (int i = 0; i < n; i++)
        rev[i] = tmp[n - 1 - i];
    sb_put(out, rev, (size_t)n);
}

/* Writes one row from a statement whose columns are ver, id and the stored JSON: one scan
 * of the stored members, copying out the selected ones (the stored text is the emulator's
 * own compact JSON, keys in column order). */
static void emit_row(dv_emulator *e, sbuf *out, sqlite3_stmt *st, int col, const emu_entity *t,
                     const selection *s)
{
    int n = t->def.n_attributes;
    sb_put(out, "{\"@odata.etag\":\"W/\\\"", 20);
    put_int(out, sqlite3_column_int64(st, col));
    sb_put(out, "\\\"\"", 3);
    const char *p = (const char *)sqlite3_column_text(st, col + 2);
    memset(s->seen, 0, (size_t)n);
    for (int i = 0; i < s->nx; i++)
        s->xval[i] = NULL;
    int next = 0;
    if (p && *p == '{') p++;
    while (p && *p == '"') {
        const char *k = ++p;
        while (*p && *p != '"')
            p++;
        size_t klen = (size_t)(p - k);
        if (*p) p++;
        if (*p == ':') p++;
        const char *v = p;
        p = skip_value(p);
        size_t vlen = (size_t)(p - v);
        /* members come in column order: try the expected column first */
        int idx = -1;
        if (next < n && s->prop_len[next] == klen && memcmp(s->prop[next], k, klen) == 0) {
            idx = next;
        } else {
            for (int j = 0; j < n; j++)
                if (s->prop_len[j] == klen && memcmp(s->prop[j], k, klen) == 0) idx = j;
        }
        if (idx >= 0) {
            next = idx + 1;
            s->seen[idx] = 1;
            if (s->want[idx]) {
                sb_put(out, s->prefix[idx], s->prefix_len[idx]);
                sb_put(out, v, vlen);
            }
            for (int i = 0; i < s->nx; i++) {
                if (s->xcol[i] == idx && vlen > 2 && *v == '"') {
                    s->xval[i] = v + 1;
                    s->xval_len[i] = vlen - 2;
                }
            }
        }
        if (*p == ',') p++;
    }
    for (int k = 0; k < n; k++) {
        if (s->want[k] && !s->seen[k]) {
            sb_put(out, s->prefix[k], s->prefix_len[k]);
            if (strcmp(t->def.attributes[k].logical_name, t->def.primary_id) == 0)
                sb_json_str(out, (const char *)sqlite3_column_text(st, col + 1));
            else
                sb_puts(out, "null");
        }
    }
    for (int i = 0; i < s->nx; i++) {
        sb_printf(out, ",\"%s\":", s->x[i].a->logical_name);
        if (s->xval[i] && s->xval_len[i] < 40) {
            char id[40];
            memcpy(id, s->xval[i], s->xval_len[i]);
            id[s->xval_len[i]] = 0;
            emit_expanded(e, out, &s->x[i], id);
        } else {
            sb_puts(out, "null");
        }
    }
    sb_putc(out, '}');
}

/* ---- addressing a row: <set>(guid) or <set>(k1='v',k2=2) ---- */

typedef struct {
    int type; /* SQLITE_TEXT / INTEGER / FLOAT */
    char *text;
    long long i;
    double d;
    char name[128];
} keyval;

typedef struct {
    keyval v[8];
    int n;
} keyvals;

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

static void keyvals_free(keyvals *k)
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

typedef enum { ADDR_NONE, ADDR_ID, ADDR_KEY } addr_kind;

typedef struct {
    addr_kind kind;
    char id[37];
    int key; /* index into t->def.keys */
    keyvals kv;
} address;

/* Parses the part between parentheses; *end is left after ')'. */
static int parse_address(emu_req *r, const emu_entity *t, const char *p, const char **end,
                         address *a)
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

static void key_values_text(const address *a, sbuf *b)
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
static int find_row(emu_req *r, const emu_entity *t, const address *a, char id[37])
{
    if (a->kind == ADDR_ID) {
        snprintf(id, 37, "%s", a->id);
        return store_row_get(r->emu, t, id, NULL, NULL);
    }
    return store_row_by_key(r->emu, t, a->key, bind_keyval, (void *)a->kv.v, id);
}

static int not_found(emu_req *r, const emu_entity *t, const address *a)
{
    if (a->kind == ADDR_ID)
        return emu_error(r, 404, NOT_FOUND, "Entity '%s' With Id = %s Does Not Exist",
                         t->def.logical_name, a->id);
    return emu_error(r, 404, NOT_FOUND,
                     "A record with the specified key values does not exist in %s entity",
                     t->def.logical_name);
}

/* ---- writing ---- */

typedef struct {
    emu_req *r;
    emu_entity *t;
    fieldset *fs;
    fieldset deep; /* related rows to create first: lookup column -> JSON object */
    int failed;
} apply_ctx;

static int date_ok(const char *s)
{
    return strlen(s) >= 10 && isdigit((unsigned char)s[0]) && s[4] == '-' && s[7] == '-';
}

static int apply_cb(void *ud, const char *key, const char *type, const char *json, const char *text)
{
    apply_ctx *c = ud;
    emu_req *r = c->r;
    const emu_entity *t = c->t;
    const char *tn = t->def.logical_name;
    if (key[0] == '@') return 0; /* instance annotations such as @odata.type */
    size_t klen = strlen(key);
    if (klen > 11 && strcmp(key + klen - 11, "@odata.bind") == 0) {
        char nav[128];
        snprintf(nav, sizeof nav, "%.*s", (int)(klen - 11), key);
        const dv_attribute_def *a = store_attr(t, nav);
        const char *want_target = a ? a->target : NULL;
        char *us = strrchr(nav, '_');
        if (!a && us) {
            /* customer lookups bind as <column>_<table>: parentcustomerid_account */
            *us = 0;
            a = store_attr(t, nav);
            want_target = us + 1;
            if (a && a->target) a = NULL;
            if (!a) *us = '_';
        }
        if (!a || (a->type != DV_ATTR_LOOKUP && a->type != DV_ATTR_OWNER)) {
            c->failed = 1;
            return emu_error(r, 400, BAD_QUERY,
                             "An undeclared property '%s' which only has property annotations "
                             "in the payload but no property value was found in the payload. In "
                             "OData, only declared navigation properties and declared named "
                             "streams can be represented as properties without values.",
                             nav);
        }
        char prop[160];
        emu_prop_name(a, prop, sizeof prop);
        if (strcmp(type, "null") == 0) {
            fs_set(c->fs, prop, "null");
            return 0;
        }
        const char *seg = text && strcmp(type, "text") == 0 ? strrchr(text, '/') : NULL;
        seg = seg ? seg + 1 : (strcmp(type, "text") == 0 ? text : NULL);
        const char *lp = seg ? strchr(seg, '(') : NULL;
        emu_entity *target = lp ? store_by_set(r->emu, seg, (size_t)(lp - seg)) : NULL;
        if (!target || !guid_valid(lp + 1, strnlen(lp + 1, 36)) || lp[37] != ')') {
            c->failed = 1;
            return emu_error(r, 400, BAD_QUERY,
                             "The value of '%s' is not a valid entity reference: expected "
                             "'/<entityset>(<guid>)'.",
                             key);
        }
        if (want_target && strcmp(want_target, target->def.logical_name) != 0) {
            c->failed = 1;
            return emu_error(r, 400, BAD_QUERY, "'%s' refers to table '%s'; '%s' expects a '%s'.",
                             key, target->def.logical_name, nav, want_target);
        }
        char id[37];
        for (int i = 0; i < 36; i++)
            id[i] = (char)tolower((unsigned char)lp[1 + i]);
        id[36] = 0;
        if (!store_row_get(r->emu, target, id, NULL, NULL)) {
            c->failed = 1;
            return emu_error(r, 404, NOT_FOUND, "Entity '%s' With Id = %s Does Not Exist",
                             target->def.logical_name, id);
        }
        char q[40];
        snprintf(q, sizeof q, "\"%s\"", id);
        fs_set(c->fs, prop, q);
        return 0;
    }
    if (strcmp(type, "object") == 0 || strcmp(type, "array") == 0) {
        /* Deep insert: "primarycontactid": {…} creates the contact and links it. */
        const dv_attribute_def *nav = store_attr(t, key);
        if (nav && nav->type == DV_ATTR_LOOKUP && nav->target && !strcmp(type, "object")) {
            fs_set(&c->deep, key, json);
            return 0;
        }
        c->failed = 1;
        if (!strcmp(type, "array"))
            return emu_error(r, 501, BAD_QUERY,
                             "Creating related rows through the collection '%s' is not served by "
                             "the dvlua emulator.",
                             key);
    }
    const dv_attribute_def *a = store_prop(t, key, klen);
    if (!a || a->type == DV_ATTR_LOOKUP || a->type == DV_ATTR_OWNER) {
        c->failed = 1;
        return emu_error(r, 400, BAD_QUERY,
                         "The property '%s' does not exist on type 'Microsoft.Dynamics.CRM.%s'. "
                         "Make sure to only use property names that are defined by the type.",
                         key, tn);
    }
    if (!strcmp(key, "createdon") || !strcmp(key, "modifiedon") || !strcmp(key, "versionnumber"))
        return 0; /* system-maintained: Dataverse ignores what a client sends */
    int ok;
    if (strcmp(type, "null") == 0)
        ok = 1;
    else
        switch (a->type) {
        case DV_ATTR_STRING:
        case DV_ATTR_MEMO:
            ok = !strcmp(type, "text");
            break;
        case DV_ATTR_INTEGER:
        case DV_ATTR_BIGINT:
        case DV_ATTR_PICKLIST:
        case DV_ATTR_STATE:
        case DV_ATTR_STATUS:
            ok = !strcmp(type, "integer");
            break;
        case DV_ATTR_DECIMAL:
        case DV_ATTR_DOUBLE:
        case DV_ATTR_MONEY:
            ok = !strcmp(type, "integer") || !strcmp(type, "real");
            break;
        case DV_ATTR_BOOLEAN:
            ok = !strcmp(type, "true") || !strcmp(type, "false");
            break;
        case DV_ATTR_DATETIME:
            ok = !strcmp(type, "text") && date_ok(text);
            break;
        default:
            ok = !strcmp(type, "text") && guid_valid(text, strlen(text));
            break;
        }
    if (!ok) {
        c->failed = 1;
        return emu_error(r, 400, BAD_QUERY,
                         "Cannot convert a primitive value to the expected type '%s'. See the "
                         "inner exception for more details. (property '%s')",
                         edm_name(a->type), key);
    }
    if ((a->type == DV_ATTR_STRING || a->type == DV_ATTR_MEMO) && a->max_length > 0 &&
        strcmp(type, "text") == 0) {
        long chars = 0; /* UTF-8 code points, close to Dataverse's UTF-16 units */
        for (const unsigned char *q = (const unsigned char *)text; *q; q++)
            chars += (*q & 0xC0) != 0x80;
        if (chars > a->max_length) {
            c->failed = 1;
            return emu_error(r, 400, "0x80044331",
                             "A validation error occurred. The length of the '%s' attribute of "
                             "the '%s' entity exceeded the maximum allowed length of '%d'.",
                             key, tn, a->max_length);
        }
    }
    if (a->type == DV_ATTR_UNIQUEIDENTIFIER && strcmp(type, "text") == 0) {
        char low[40];
        snprintf(low, sizeof low, "\"%s\"", text);
        for (char *p = low; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        fs_set(c->fs, key, low);
        return 0;
    }
    fs_set(c->fs, key, json);
    return 0;
}

/* Builds the stored JSON of a row from its fields, in the table's column order. */
static void build_data(const emu_entity *t, const fieldset *fs, sbuf *out)
{
    sb_putc(out, '{');
    for (int i = 0; i < t->def.n_attributes; i++) {
        char prop[160];
        emu_prop_name(&t->def.attributes[i], prop, sizeof prop);
        const char *v = fs_get(fs, prop);
        sb_printf(out, "%s\"%s\":%s", i ? "," : "", prop, v ? v : "null");
    }
    sb_putc(out, '}');
}

static int dup_key_error(emu_req *r, const emu_entity *t, int k)
{
    const dv_key_def *kd = &t->def.keys[k];
    sbuf cols = {0};
    for (int j = 0; j < kd->n_attributes; j++) {
        const dv_attribute_def *a = store_attr(t, kd->attributes[j]);
        sb_printf(&cols, "%s%s", j ? ", " : "",
                  a && a->display_name ? a->display_name : kd->attributes[j]);
    }
    int rc = emu_error(r, 412, DUP_KEY,
                       "A record that has the attribute values %s already exists. The entity "
                       "key %s requires that this set of attributes contains unique values. "
                       "Select unique values and try again.",
                       sb_str(&cols), kd->display_name ? kd->display_name : kd->logical_name);
    sb_free(&cols);
    return rc;
}

/* Writes a row from fs (already validated) at a new version. existing is 1 for updates. */
/* contact.fullname is computed from the name parts, as Dataverse does. */
static void contact_fullname(dv_emulator *e, const emu_entity *t, fieldset *fs)
{
    if (strcmp(t->def.logical_name, "contact") != 0) return;
    const char *first = fs_get(fs, "firstname"), *last = fs_get(fs, "lastname");
    sqlite3_stmt *st =
        store_stmt(e, "SELECT nullif(trim(coalesce(json_extract(?1,'$'),'') || ' ' || "
                      "coalesce(json_extract(?2,'$'),'')), '')");
    if (!st) return;
    sqlite3_bind_text(st, 1, first ? first : "null", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, last ? last : "null", -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        sbuf v = {0};
        sb_json_str(&v, (const char *)sqlite3_column_text(st, 0));
        fs_set(fs, "fullname", sb_str(&v));
        sb_free(&v);
    }
    sqlite3_reset(st);
}

static int write_row(emu_req *r, const emu_entity *t, const char *id, fieldset *fs, int existing)
{
    dv_emulator *e = r->emu;
    contact_fullname(e, t, fs);
    int64_t v = store_next_version(e);
    char ts[32], q[64];
    time_iso(emu_now(e), ts);
    snprintf(q, sizeof q, "\"%s\"", ts);
    if (!existing) {
        fs_set(fs, "createdon", q);
        if (!fs_get(fs, "statecode") || !strcmp(fs_get(fs, "statecode"), "null"))
            fs_set(fs, "statecode", "0");
        if (!fs_get(fs, "statuscode") || !strcmp(fs_get(fs, "statuscode"), "null"))
            fs_set(fs, "statuscode", "1");
        if (!fs_get(fs, "_ownerid_value")) fs_set(fs, "_ownerid_value", "\"" EMU_USER_ID "\"");
    }
    fs_set(fs, "modifiedon", q);
    snprintf(q, sizeof q, "%lld", (long long)v);
    fs_set(fs, "versionnumber", q);
    snprintf(q, sizeof q, "\"%s\"", id);
    fs_set(fs, t->def.primary_id, q);
    sbuf data = {0};
    build_data(t, fs, &data);
    int dup = -1;
    int rc = store_row_put(e, t, id, sb_str(&data), v, &dup);
    sb_free(&data);
    if (rc == 1) return dup_key_error(r, t, dup);
    if (rc) return emu_error(r, 500, "0x80040216", "The store failed: %s", sqlite3_errmsg(e->db));
    return 0;
}

/* Parses the request body into fs (validated against t); returns 0 or -1 (answer set). */
static int body_fields(emu_req *r, emu_entity *t, const char *json, size_t len, fieldset *fs)
{
    if (!json_is_object(r->emu, json, len))
        return emu_error(r, 400, BAD_QUERY,
                         "The request body is not a JSON object (or is not valid JSON).");
    apply_ctx c = {r, t, fs, {0}, 0};
    int rc = each_field(r->emu, json, len, apply_cb, &c);
    if (c.failed || rc) {
        if (!c.failed) emu_error(r, 400, BAD_QUERY, "The request body could not be read.");
        fs_free(&c.deep);
        return -1;
    }
    /* After the walk over this body: creating a related row reads another body. */
    for (int i = 0; i < c.deep.n; i++) {
        const dv_attribute_def *nav = store_attr(t, c.deep.f[i].name);
        emu_entity *target = store_by_logical(r->emu, nav->target, strlen(nav->target));
        char id[37], prop[160], q[40];
        if (!target || rows_create_json(r, target, c.deep.f[i].json, id)) {
            if (!target) emu_error(r, 400, BAD_QUERY, "No table '%s' to create.", nav->target);
            fs_free(&c.deep);
            return -1;
        }
        emu_prop_name(nav, prop, sizeof prop);
        snprintf(q, sizeof q, "\"%s\"", id);
        fs_set(fs, prop, q);
    }
    fs_free(&c.deep);
    return 0;
}

int rows_create_json(emu_req *r, emu_entity *t, const char *json, char id_out[37])
{
    fieldset fs = {0};
    if (body_fields(r, t, json, strlen(json), &fs)) {
        fs_free(&fs);
        return -1;
    }
    const char *given = fs_get(&fs, t->def.primary_id);
    if (given && strcmp(given, "null") != 0)
        snprintf(id_out, 37, "%.36s", given + 1);
    else
        guid_new(id_out);
    if (store_row_get(r->emu, t, id_out, NULL, NULL)) {
        fs_free(&fs);
        return emu_error(r, 412, DUP_RECORD, "Cannot insert duplicate key.");
    }
    int rc = write_row(r, t, id_out, &fs, 0);
    fs_free(&fs);
    return rc;
}

/* Answers a single row (after a write with return=representation, or a GET). */
static int answer_row(emu_req *r, const emu_entity *t, const char *id, int status)
{
    selection s;
    if (parse_select(r, t, &s)) {
        selection_free(&s);
        return -1;
    }
    sbuf sql = {0};
    sb_puts(&sql, "SELECT ver, id");
    select_sql(&s, &sql);
    sb_puts(&sql, " FROM row WHERE entity=?1 AND id=?2");
    sqlite3_stmt *st = store_stmt(r->emu, sb_str(&sql));
    sb_free(&sql);
    if (!st) {
        selection_free(&s);
        return emu_error(r, 500, "0x80040216", "The store failed.");
    }
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        selection_free(&s);
        return emu_error(r, 404, NOT_FOUND, "Entity '%s' With Id = %s Does Not Exist",
                         t->def.logical_name, id);
    }
    emu_json(r, status);
    sbuf ctx = {0};
    context_url(r, t, &s, &ctx);
    sb_puts(&r->out, "{\"@odata.context\":");
    sb_puts(&ctx, "/$entity");
    sb_json_str(&r->out, sb_str(&ctx));
    sb_free(&ctx);
    sb_putc(&r->out, ',');
    size_t mark = r->out.n;
    emit_row(r->emu, &r->out, st, 0, t, &s);
    /* splice: drop the row's own '{' so its members join the context object */
    memmove(r->out.p + mark, r->out.p + mark + 1, r->out.n - mark);
    r->out.n--;
    selection_free(&s);
    return 0;
}

static void entity_id_header(emu_req *r, const emu_entity *t, const char *id)
{
    char loc[512];
    snprintf(loc, sizeof loc, "%s%s(%s)", r->base, t->def.entity_set_name, id);
    emu_add_header(r, "OData-EntityId", loc);
}

static int post_row(emu_req *r, emu_entity *t)
{
    char id[37];
    if (store_begin(r->emu)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    fieldset fs = {0};
    if (body_fields(r, t, r->body, r->body_len, &fs)) {
        fs_free(&fs);
        return -1;
    }
    const char *given = fs_get(&fs, t->def.primary_id);
    if (given && strcmp(given, "null") != 0)
        snprintf(id, sizeof id, "%.36s", given + 1);
    else
        guid_new(id);
    if (store_row_get(r->emu, t, id, NULL, NULL)) {
        fs_free(&fs);
        return emu_error(r, 412, DUP_RECORD, "Cannot insert duplicate key.");
    }
    int rc = write_row(r, t, id, &fs, 0);
    fs_free(&fs);
    if (rc) return -1;
    if (store_commit(r->emu)) return emu_error(r, 500, "0x80040216", "The commit failed.");
    entity_id_header(r, t, id);
    if (parse_prefer(r).return_repr) {
        emu_add_header(r, "Preference-Applied", "return=representation");
        return answer_row(r, t, id, 201);
    }
    r->status = 204;
    return 0;
}

static int patch_row(emu_req *r, emu_entity *t, const address *a)
{
    dv_emulator *e = r->emu;
    const char *if_match = emu_header(r, "If-Match");
    const char *if_none = emu_header(r, "If-None-Match");
    if (store_begin(e)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    char id[37];
    int exists = find_row(r, t, a, id);
    if (exists && if_none && strcmp(if_none, "*") == 0)
        return emu_error(r, 412, DUP_RECORD, "A record with matching key values already exists.");
    if (!exists && if_match) return not_found(r, t, a);
    fieldset fs = {0};
    int64_t ver = 0;
    if (exists) {
        char *old = NULL;
        store_row_get(e, t, id, &old, &ver);
        if (if_match && strcmp(if_match, "*") != 0) {
            char want[64];
            snprintf(want, sizeof want, "W/\"%lld\"", (long long)ver);
            if (strcmp(if_match, want) != 0) {
                free(old);
                return emu_error(r, 412, "0x80060882",
                                 "The version of the existing record doesn't match the RowVersion "
                                 "property provided.");
            }
        }
        each_field(e, old, strlen(old), collect_cb, &fs);
        free(old);
    } else if (a->kind == ADDR_ID) {
        snprintf(id, sizeof id, "%s", a->id);
    } else {
        guid_new(id);
        /* An upsert by alternate key creates the row with the key's values. */
        for (int i = 0; i < a->kv.n; i++) {
            const keyval *kv = &a->kv.v[i];
            const dv_attribute_def *at = store_attr(t, kv->name);
            char prop[160];
            if (!at) continue;
            emu_prop_name(at, prop, sizeof prop);
            sbuf v = {0};
            if (kv->type == SQLITE_TEXT)
                sb_json_str(&v, kv->text);
            else if (kv->type == SQLITE_INTEGER)
                sb_printf(&v, "%lld", kv->i);
            else
                sb_printf(&v, "%.17g", kv->d);
            fs_set(&fs, prop, sb_str(&v));
            sb_free(&v);
        }
    }
    if (body_fields(r, t, r->body, r->body_len, &fs)) {
        fs_free(&fs);
        return -1;
    }
    const char *given = fs_get(&fs, t->def.primary_id);
    if (given && strcmp(given, "null") != 0 && strncmp(given + 1, id, 36) != 0) {
        fs_free(&fs);
        return emu_error(r, 400, "0x80040203",
                         "The primary id in the body does not match the record addressed.");
    }
    int rc = write_row(r, t, id, &fs, exists);
    fs_free(&fs);
    if (rc) return -1;
    if (store_commit(e)) return emu_error(r, 500, "0x80040216", "The commit failed.");
    entity_id_header(r, t, id);
    if (parse_prefer(r).return_repr) {
        emu_add_header(r, "Preference-Applied", "return=representation");
        return answer_row(r, t, id, exists ? 200 : 201);
    }
    r->status = 204;
    return 0;
}

static int delete_row(emu_req *r, emu_entity *t, const address *a)
{
    char id[37];
    if (!find_row(r, t, a, id)) return not_found(r, t, a);
    if (strcmp(t->def.logical_name, "solution") == 0) return h_uninstall_solution(r, id);
    if (store_begin(r->emu)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    if (store_row_delete(r->emu, t, id, emu_now(r->emu)) || store_commit(r->emu))
        return emu_error(r, 500, "0x80040216", "The delete failed.");
    r->status = 204;
    return 0;
}

/* ---- collection queries ---- */

static void next_link(emu_req *r, const emu_entity *t, const char *token, int keep_args, sbuf *out)
{
    static const char *const skip[] = {"$skiptoken", "$deltatoken", NULL};
    sb_printf(out, "%s%s?", r->base, t->def.entity_set_name);
    size_t before = out->n;
    if (keep_args) {
        emu_args_except(r, out, skip);
    } else {
        const char *sel = emu_arg(r, "$select");
        if (sel) {
            sb_puts(out, "$select=");
            sb_url_enc(out, sel);
        }
    }
    if (out->n > before) sb_putc(out, '&');
    sb_puts(out, "$skiptoken=");
    sb_url_enc(out, token);
}

static int page_size(emu_req *r, prefs *p)
{
    int n = p->maxpagesize > 0 && p->maxpagesize < MAX_PAGE ? p->maxpagesize : MAX_PAGE;
    if (p->maxpagesize > 0) {
        char v[48];
        snprintf(v, sizeof v, "odata.maxpagesize=%d", n);
        if (!p->track_changes) emu_add_header(r, "Preference-Applied", v);
    }
    return n;
}

static int count_rows(emu_req *r, const emu_entity *t, const query_filter *f)
{
    sbuf sql = {0};
    sb_puts(&sql, "SELECT count(*) FROM row WHERE entity=?1");
    if (f) sb_printf(&sql, " AND %s", sb_str((sbuf *)&f->sql));
    sqlite3_stmt *st = store_stmt(r->emu, sb_str(&sql));
    sb_free(&sql);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    if (f) query_filter_bind(f, st);
    return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
}

static int query_rows(emu_req *r, emu_entity *t, int count_only)
{
    prefs p = parse_prefer(r);
    const char *filter = emu_arg(r, "$filter");
    const char *orderby = emu_arg(r, "$orderby");
    const char *top_s = emu_arg(r, "$top");
    const char *skiptoken = emu_arg(r, "$skiptoken");
    if (emu_arg(r, "$apply") || emu_arg(r, "fetchXml"))
        return emu_error(r, 501, BAD_QUERY,
                         "$apply and fetchXml are not served by the dvlua "
                         "emulator.");
    if (emu_arg(r, "$skip"))
        return emu_error(r, 400, BAD_QUERY, "The query parameter $skip is not supported");
    long top = -1;
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*end || top < 0)
            return emu_error(r, 400, BAD_QUERY,
                             "Invalid value '%s' for $top query option found. "
                             "The $top query option requires a non-negative integer value.",
                             top_s);
    }
    query_filter f;
    int have_filter = filter != NULL;
    if (have_filter && query_filter_compile(&f, filter, t->def.logical_name, resolve_prop, t, 3)) {
        emu_error(r, 400, BAD_QUERY, "%s", f.err);
        query_filter_free(&f);
        return -1;
    }
    if (count_only) {
        int n = count_rows(r, t, have_filter ? &f : NULL);
        if (have_filter) query_filter_free(&f);
        r->status = 200;
        r->content_type = "text/plain";
        sb_printf(&r->out, "%d", n > MAX_PAGE ? MAX_PAGE : n);
        return 0;
    }
    selection s;
    if (parse_select(r, t, &s)) {
        if (have_filter) query_filter_free(&f);
        selection_free(&s);
        return -1;
    }
    sbuf order = {0};
    char err[512];
    if (orderby && query_orderby_compile(&order, orderby, t->def.logical_name, resolve_prop, t, err,
                                         sizeof err)) {
        if (have_filter) query_filter_free(&f);
        selection_free(&s);
        sb_free(&order);
        return emu_error(r, 400, BAD_QUERY, "%s", err);
    }
    /* Paging state: keyset on the id without $orderby, an offset with it. */
    long offset = 0;
    const char *after = NULL;
    if (skiptoken) {
        if (strncmp(skiptoken, "k!", 2) == 0 && guid_valid(skiptoken + 2, strlen(skiptoken + 2)) &&
            !orderby)
            after = skiptoken + 2;
        else if (strncmp(skiptoken, "o!", 2) == 0 && orderby)
            offset = atol(skiptoken + 2);
        else {
            if (have_filter) query_filter_free(&f);
            selection_free(&s);
            sb_free(&order);
            return emu_error(r, 400, BAD_QUERY, "The $skiptoken '%s' is not valid.", skiptoken);
        }
    }
    int size = page_size(r, &p);
    long limit = top >= 0 ? (top < MAX_PAGE ? top : MAX_PAGE) : size;
    sbuf sql = {0};
    sb_puts(&sql, "SELECT ver, id");
    select_sql(&s, &sql);
    sb_puts(&sql, " FROM row WHERE entity=?1");
    if (after) sb_puts(&sql, " AND id > ?2");
    if (have_filter) sb_printf(&sql, " AND %s", sb_str(&f.sql));
    sb_puts(&sql, " ORDER BY ");
    if (order.n) sb_printf(&sql, "%s, ", sb_str(&order));
    sb_puts(&sql, "id LIMIT :lim OFFSET :off");
    sqlite3_stmt *st = store_stmt(r->emu, sb_str(&sql));
    sb_free(&sql);
    sb_free(&order);
    if (!st) {
        if (have_filter) query_filter_free(&f);
        selection_free(&s);
        return emu_error(r, 500, "0x80040216", "The query failed.");
    }
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    if (after) sqlite3_bind_text(st, 2, after, -1, SQLITE_TRANSIENT);
    if (have_filter) query_filter_bind(&f, st);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":lim"), limit + 1);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":off"), offset);

    emu_json(r, 200);
    sbuf ctx = {0};
    context_url(r, t, &s, &ctx);
    sb_puts(&r->out, "{\"@odata.context\":");
    sb_json_str(&r->out, sb_str(&ctx));
    sb_free(&ctx);
    const char *cnt = emu_arg(r, "$count");
    if (cnt && strcmp(cnt, "true") == 0) {
        int n = count_rows(r, t, have_filter ? &f : NULL);
        /* count_rows reused the cache slot only if its SQL matched; re-bind is not needed */
        sb_printf(&r->out, ",\"@odata.count\":%d", n > MAX_PAGE ? MAX_PAGE : n);
        if (n > MAX_PAGE)
            sb_puts(&r->out, ",\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":true");
    }
    sb_puts(&r->out, ",\"value\":[");
    long rows = 0;
    char last[37] = "";
    int more = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (rows == limit) {
            more = 1;
            break;
        }
        if (rows) sb_putc(&r->out, ',');
        emit_row(r->emu, &r->out, st, 0, t, &s);
        snprintf(last, sizeof last, "%s", (const char *)sqlite3_column_text(st, 1));
        rows++;
    }
    sqlite3_reset(st);
    sb_putc(&r->out, ']');
    if (more && top < 0) {
        char tok[64];
        if (orderby)
            snprintf(tok, sizeof tok, "o!%ld", offset + rows);
        else
            snprintf(tok, sizeof tok, "k!%s", last);
        sbuf link = {0};
        next_link(r, t, tok, 1, &link);
        sb_puts(&r->out, ",\"@odata.nextLink\":");
        sb_json_str(&r->out, sb_str(&link));
        sb_free(&link);
    }
    sb_putc(&r->out, '}');
    if (have_filter) query_filter_free(&f);
    selection_free(&s);
    return 0;
}

/* ---- change tracking ---- */

/* Dataverse's token: "<version>!<MM/dd/yyyy HH:mm:ss>" (UTC). */
static void format_token(int64_t ver, double when, char out[64])
{
    time_t s = (time_t)when;
    struct tm tm;
    gmtime_r(&s, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%m/%d/%Y %H:%M:%S", &tm);
    snprintf(out, 64, "%lld!%s", (long long)ver, ts);
}

static int parse_token(const char *tok, int64_t *ver, double *when)
{
    char *end;
    long long v = strtoll(tok, &end, 10);
    if (end == tok || *end != '!' || v < 0) return -1;
    int mo, d, y, h, mi, se, n = 0;
    if (sscanf(end + 1, "%2d/%2d/%4d %2d:%2d:%2d%n", &mo, &d, &y, &h, &mi, &se, &n) != 6 ||
        end[1 + n] != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
    tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = se;
    *ver = v;
    *when = (double)timegm(&tm);
    return 0;
}

/* Token URL encoding as Dataverse writes it: lowercase hex, '!' '/' ' ' ':' all encoded. */
static void token_enc(sbuf *b, const char *tok)
{
    for (const char *p = tok; *p; p++) {
        if (isalnum((unsigned char)*p))
            sb_putc(b, *p);
        else
            sb_printf(b, "%%%02x", (unsigned char)*p);
    }
}

static int ct_refuse(emu_req *r, emu_entity *t)
{
    if (!t->def.change_tracking)
        return emu_error(r, 400, BAD_QUERY,
                         "Change tracking is not enabled for the entity '%s'. Enable change "
                         "tracking (ChangeTrackingEnabled) on the table to use the "
                         "odata.track-changes preference.",
                         t->def.logical_name);
    static const char *opts[] = {"$filter", "$orderby", "$expand", "$top"};
    for (int i = 0; i < 4; i++)
        if (emu_arg(r, opts[i]))
            return emu_error(r, 400, BAD_QUERY,
                             "The \"%s\" query parameter isn't supported when Change Tracking is "
                             "enabled.",
                             opts[i]);
    return 0;
}

/* Pages through changes in (from, to]: rows first (by version), then tombstones when
 * deletions is set. phase/lastver say where the previous page stopped. */
static int ct_page(emu_req *r, emu_entity *t, int delta, int64_t from, int64_t to, double ts,
                   int phase, int64_t lastver)
{
    prefs p = parse_prefer(r);
    selection s;
    if (parse_select(r, t, &s)) {
        selection_free(&s);
        return -1;
    }
    int size = page_size(r, &p);
    emu_json(r, 200);
    emu_add_header(r, "Preference-Applied", "odata.track-changes");
    sbuf ctx = {0};
    context_url(r, t, &s, &ctx);
    if (delta) sb_puts(&ctx, "/$delta");
    sb_puts(&r->out, "{\"@odata.context\":");
    sb_json_str(&r->out, sb_str(&ctx));
    sb_free(&ctx);
    sb_puts(&r->out, ",\"value\":[");
    int rows = 0, more = 0, last_phase = phase;
    int64_t last_ver = lastver;
    /* Two walks of the (entity, ver) indexes: changed rows, then (for a delta) tombstones. */
    for (int part = phase; part <= (delta ? 1 : 0) && !more; part++) {
        sqlite3_stmt *st = store_stmt(
            r->emu, part == 0 ? "SELECT ver, id, data FROM row WHERE entity=?1 AND ver > ?2 AND "
                                "ver <= ?3 ORDER BY ver LIMIT ?4"
                              : "SELECT ver, id FROM tomb WHERE entity=?1 AND ver > ?2 AND "
                                "ver <= ?3 ORDER BY ver LIMIT ?4");
        if (!st) {
            selection_free(&s);
            return emu_error(r, 500, "0x80040216", "The change query failed.");
        }
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, part == phase && lastver > from ? lastver : from);
        sqlite3_bind_int64(st, 3, to);
        sqlite3_bind_int(st, 4, size - rows + 1);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (rows == size) {
                more = 1;
                break;
            }
            if (rows) sb_putc(&r->out, ',');
            if (part == 0) {
                emit_row(r->emu, &r->out, st, 0, t, &s);
            } else {
                sb_printf(&r->out,
                          "{\"@odata.context\":\"%s$metadata#%s/$deletedEntity\",\"id\":\"%s\","
                          "\"reason\":\"deleted\"}",
                          r->base, t->def.entity_set_name, sqlite3_column_text(st, 1));
            }
            last_phase = part;
            last_ver = sqlite3_column_int64(st, 0);
            rows++;
        }
        sqlite3_reset(st);
    }
    sb_putc(&r->out, ']');
    sbuf link = {0};
    if (more) {
        char tok[160];
        /* whole seconds, truncated as the token's timestamp is */
        snprintf(tok, sizeof tok, "ct!%d!%lld!%lld!%lld!%d!%lld", delta, (long long)from,
                 (long long)to, (long long)ts, last_phase, (long long)last_ver);
        next_link(r, t, tok, 0, &link);
        sb_puts(&r->out, ",\"@odata.nextLink\":");
    } else {
        char tok[64];
        format_token(to, ts, tok);
        sb_printf(&link, "%s%s?", r->base, t->def.entity_set_name);
        const char *sel = emu_arg(r, "$select");
        if (sel) {
            sb_puts(&link, "$select=");
            sb_url_enc(&link, sel);
            sb_putc(&link, '&');
        }
        sb_puts(&link, "$deltatoken=");
        token_enc(&link, tok);
        sb_puts(&r->out, ",\"@odata.deltaLink\":");
    }
    sb_json_str(&r->out, sb_str(&link));
    sb_free(&link);
    sb_putc(&r->out, '}');
    selection_free(&s);
    return 0;
}

/* Validates a delta token against the table and retention; returns 0 with its version. */
static int ct_check_token(emu_req *r, const char *tok, int64_t *from)
{
    dv_emulator *e = r->emu;
    double when;
    if (parse_token(tok, from, &when) || *from > store_current_version(e))
        /* Not echoed: a token read from a file by mistake may hold anything, secrets too. */
        return emu_error(r, 400, BAD_QUERY, "The delta token is not valid.");
    double now = emu_now(e);
    /* Tombstones older than the retention are gone; so is any token that needs them. */
    sqlite3_stmt *st = store_stmt(e, "DELETE FROM tomb WHERE at < ?1");
    sqlite3_bind_double(st, 1, now - e->retention);
    sqlite3_step(st);
    if (now - when > e->retention)
        return emu_error(r, 400, TOKEN_EXPIRED,
                         "Version stamp associated with the client has expired. Please perform a "
                         "full sync.");
    return 0;
}

static int changes(emu_req *r, emu_entity *t, int count_only)
{
    const char *dtok = emu_arg(r, "$deltatoken");
    const char *skip = emu_arg(r, "$skiptoken");
    if (ct_refuse(r, t)) return -1;
    if (skip) {
        int delta, phase;
        long long from, to, lastver;
        double ts;
        int n = 0;
        if (sscanf(skip, "ct!%d!%lld!%lld!%lf!%d!%lld%n", &delta, &from, &to, &ts, &phase, &lastver,
                   &n) != 6 ||
            skip[n] != 0)
            return emu_error(r, 400, BAD_QUERY, "The $skiptoken '%s' is not valid.", skip);
        return ct_page(r, t, delta, from, to, ts, phase, lastver);
    }
    int64_t to = store_current_version(r->emu);
    double now = emu_now(r->emu);
    if (!dtok) return ct_page(r, t, 0, 0, to, now, 0, 0);
    int64_t from = 0;
    if (ct_check_token(r, dtok, &from)) return -1;
    if (count_only) {
        sqlite3_stmt *st = store_stmt(
            r->emu, "SELECT (SELECT count(*) FROM row WHERE entity=?1 AND ver > ?2 AND ver <= ?3)"
                    " + (SELECT count(*) FROM tomb WHERE entity=?1 AND ver > ?2 AND ver <= ?3)");
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, from);
        sqlite3_bind_int64(st, 3, to);
        int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
        r->status = 200;
        r->content_type = "text/plain";
        sb_printf(&r->out, "%d", n);
        return 0;
    }
    return ct_page(r, t, 1, from, to, now, 0, 0);
}

/* ---- single column: GET/PUT/DELETE <set>(<key>)/<column> ---- */

static int single_property(emu_req *r, emu_entity *t, const address *a, const char *prop)
{
    const dv_attribute_def *at = store_prop(t, prop, strlen(prop));
    if (!at)
        return emu_error(r, 400, BAD_QUERY,
                         "Could not find a property named '%s' on type "
                         "'Microsoft.Dynamics.CRM.%s'.",
                         prop, t->def.logical_name);
    if (at->type == DV_ATTR_LOOKUP || at->type == DV_ATTR_OWNER)
        return emu_error(r, 501, BAD_QUERY,
                         "Navigation paths are not served by the dvlua "
                         "emulator.");
    char id[37];
    if (!find_row(r, t, a, id)) return not_found(r, t, a);
    const char *m = r->method;
    if (!strcmp(m, "GET")) {
        char path[200];
        snprintf(path, sizeof path, "$.%s", prop);
        sqlite3_stmt *st =
            store_stmt(r->emu, "SELECT data -> ?3 FROM row WHERE entity=?1 AND id=?2");
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
        const unsigned char *v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        if (!v || strcmp((const char *)v, "null") == 0) {
            sqlite3_reset(st);
            r->status = 204; /* Dataverse answers a null column with no content */
            return 0;
        }
        emu_json(r, 200);
        sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#%s(%s)/%s\",\"value\":%s}", r->base,
                  t->def.entity_set_name, id, prop, (const char *)v);
        sqlite3_reset(st);
        return 0;
    }
    if (strcmp(m, "PUT") != 0 && strcmp(m, "DELETE") != 0)
        return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on a column.", m);
    /* Rewritten as an update of one column: {"prop": value} (null for DELETE). */
    sqlite3_stmt *st = store_stmt(r->emu, "SELECT CASE WHEN ?3 THEN json_object(?2, NULL) "
                                          "WHEN json_valid(?1) AND json_type(?1, '$.value') "
                                          "IS NOT NULL THEN json_object(?2, ?1 -> '$.value') END");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, prop, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, strcmp(m, "DELETE") == 0);
    if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_text(st, 0))
        return emu_error(r, 400, BAD_QUERY, "The body must be a JSON object with a 'value'.");
    char *body = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    const char *saved = r->body;
    size_t saved_len = r->body_len;
    r->body = body;
    r->body_len = strlen(body);
    address by_id = {ADDR_ID, "", 0, {{{0}}, 0}};
    snprintf(by_id.id, sizeof by_id.id, "%s", id);
    int rc = patch_row(r, t, &by_id);
    r->body = saved;
    r->body_len = saved_len;
    free(body);
    return rc;
}

/* ---- entry ---- */

int h_rows(emu_req *r, const char *path)
{
    const char *p = path;
    while (*p && *p != '(' && *p != '/')
        p++;
    emu_entity *t = store_by_set(r->emu, path, (size_t)(p - path));
    if (!t)
        return emu_error(r, 404, BAD_QUERY, "Resource not found for the segment '%.*s'.",
                         (int)(p - path), path);
    const char *m = r->method;
    if (*p == 0 || strcmp(p, "/$count") == 0) {
        int count_only = *p != 0;
        if (!strcmp(m, "GET")) {
            const char *skip = emu_arg(r, "$skiptoken");
            if (emu_arg(r, "$deltatoken") || (skip && strncmp(skip, "ct!", 3) == 0) ||
                (parse_prefer(r).track_changes && !count_only))
                return changes(r, t, count_only);
            return query_rows(r, t, count_only);
        }
        if (!strcmp(m, "POST") && !count_only) return post_row(r, t);
        return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on '%s'.", m,
                         path);
    }
    if (*p != '(')
        return emu_error(r, 404, BAD_QUERY, "Resource not found for the segment '%s'.", path);
    address a;
    const char *end = NULL;
    if (parse_address(r, t, p + 1, &end, &a)) return -1;
    int rc;
    if (*end == '/' && end[1] != '$' && strchr(end + 1, '/') == NULL) {
        rc = single_property(r, t, &a, end + 1);
    } else if (*end) {
        rc = emu_error(r, 501, BAD_QUERY, "The path '%s' is not served by the dvlua emulator.",
                       path);
    } else if (!strcmp(m, "GET")) {
        char id[37];
        rc = find_row(r, t, &a, id) ? answer_row(r, t, id, 200) : not_found(r, t, &a);
    } else if (!strcmp(m, "PATCH")) {
        rc = patch_row(r, t, &a);
    } else if (!strcmp(m, "DELETE")) {
        rc = delete_row(r, t, &a);
    } else {
        rc = emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on a record.", m);
    }
    keyvals_free(&a.kv);
    (void)key_values_text;
    return rc;
}
