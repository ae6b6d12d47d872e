/* Answering rows: the Prefer header, $select and $expand, the context URL, a row written
 * out from its stored JSON, and the paging both queries and change tracking use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu_internal.h"
#include "row_select.h"
#include "store.h"

prefs parse_prefer(emu_req *r)
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

void selection_free(selection *s)
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
            if (dv_attr_is_property(t->def.attributes[i].type))
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
        if (a->type == DV_ATTR_IMAGE || a->type == DV_ATTR_MULTISELECT)
            return emu_error(r, 501, "0x80040203",
                             "The dvlua emulator does not store the content of column '%s' (%s) "
                             "of table '%s'.",
                             a->logical_name, dv_attr_type_name(a->type), t->def.logical_name);
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
        if (strchr(nav, '/'))
            return emu_error(r, 501, BAD_QUERY,
                             "'$expand=%s' (/$ref and paths in $expand) is not served by the "
                             "dvlua emulator.",
                             nav);
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

/* 1 when the include-annotations pattern list (comma-separated: "*", "A.B.*", "A.B.name")
 * covers the annotation name. */
static int pattern_covers(const char *list, size_t len, const char *name)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        size_t n = j - i;
        const char *p = list + i;
        if ((n == 1 && *p == '*') || (n == strlen(name) && memcmp(p, name, n) == 0) ||
            (n >= 2 && p[n - 1] == '*' && p[n - 2] == '.' && strncmp(name, p, n - 1) == 0))
            return 1;
        i = j + 1;
    }
    return 0;
}

/* The EMU_ANN_* bits of Prefer: odata.include-annotations="…". */
static unsigned wanted_annotations(emu_req *r)
{
    const char *h = emu_header(r, "Prefer");
    const char *p = h ? strstr(h, "odata.include-annotations=") : NULL;
    if (!p) return 0;
    p += strlen("odata.include-annotations=");
    size_t len;
    if (*p == '"') {
        const char *end = strchr(++p, '"');
        len = end ? (size_t)(end - p) : strlen(p);
    } else {
        len = strcspn(p, ", ");
    }
    unsigned ann = 0;
    if (pattern_covers(p, len, "Microsoft.Dynamics.CRM.lookuplogicalname")) ann |= EMU_ANN_LOOKUP;
    if (pattern_covers(p, len, "OData.Community.Display.V1.FormattedValue"))
        ann |= EMU_ANN_FORMATTED;
    return ann;
}

int parse_select(emu_req *r, const emu_entity *t, selection *s)
{
    memset(s, 0, sizeof *s);
    s->annotate = wanted_annotations(r);
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
void context_url(emu_req *r, const emu_entity *t, const selection *s, sbuf *b)
{
    sb_printf(b, "%s$metadata#%s", r->base, t->def.entity_set_name);
    if (s && (s->explicit_select || s->nx)) {
        sb_putc(b, '(');
        select_list(s, b);
        sb_putc(b, ')');
    }
}

/* The select list after "ver, id": the stored row, whose members emit_row copies out. */
void select_sql(const selection *s, sbuf *b)
{
    (void)s;
    sb_puts(b, ", data");
}

static void emit_expanded(dv_emulator *e, sbuf *out, const expansion *x, const char *id)
{
    /* Worded unlike answer_row's query: the cache must hand out a different statement
     * while the outer row is still being read. */
    sqlite3_stmt *st =
        store_row_stmt(e, x->target, "SELECT ver, id, data FROM row WHERE id=?2 AND entity=?1");
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
/* The annotations that follow a column's value: a lookup's target table and the target
 * row's primary name, a boolean's Yes/No. (Dataverse formats more: option set labels, money,
 * dates in the user's locale; the emulator does not know those.) */
static void emit_annotations(dv_emulator *e, sbuf *out, const dv_attribute_def *a, const char *prop,
                             size_t plen, const char *v, size_t vlen, unsigned ann)
{
    const char *fv = "@OData.Community.Display.V1.FormattedValue";
    if (vlen == 4 && memcmp(v, "null", 4) == 0) return;
    if (a->type == DV_ATTR_BOOLEAN && (ann & EMU_ANN_FORMATTED)) {
        sb_printf(out, ",\"%.*s%s\":\"%s\"", (int)plen, prop, fv, *v == 't' ? "Yes" : "No");
        return;
    }
    if (a->type != DV_ATTR_LOOKUP || !a->target || vlen < 3 || vlen > 40 || *v != '"') return;
    if (ann & EMU_ANN_LOOKUP)
        sb_printf(out, ",\"%.*s@Microsoft.Dynamics.CRM.lookuplogicalname\":\"%s\"", (int)plen, prop,
                  a->target);
    const emu_entity *target = store_by_logical(e, a->target, strlen(a->target));
    if (!(ann & EMU_ANN_FORMATTED) || !target || !target->def.primary_name) return;
    char path[160];
    snprintf(path, sizeof path, "$.%s", target->def.primary_name);
    sqlite3_stmt *st =
        store_row_stmt(e, target, "SELECT data ->> ?3 FROM row WHERE entity=?1 AND id=?2");
    if (!st) return;
    sqlite3_bind_text(st, 1, a->target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v + 1, (int)vlen - 2, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT) {
        sb_printf(out, ",\"%.*s%s\":", (int)plen, prop, fv);
        sb_json_str(out, (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_reset(st);
}

void emit_row(dv_emulator *e, sbuf *out, sqlite3_stmt *st, int col, const emu_entity *t,
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
                if (s->annotate)
                    emit_annotations(e, out, &t->def.attributes[idx], k, klen, v, vlen,
                                     s->annotate);
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

/* ---- paging ---- */

void next_link(emu_req *r, const emu_entity *t, const char *token, int keep_args, sbuf *out)
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

int page_size(emu_req *r, prefs *p)
{
    int n = p->maxpagesize > 0 && p->maxpagesize < MAX_PAGE ? p->maxpagesize : MAX_PAGE;
    if (p->maxpagesize > 0) {
        char v[48];
        snprintf(v, sizeof v, "odata.maxpagesize=%d", n);
        if (!p->track_changes) emu_add_header(r, "Preference-Applied", v);
    }
    return n;
}
