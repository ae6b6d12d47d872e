/* Collection queries: $filter, $orderby, $top, $count, $select/$expand and paging with
 * $skiptoken next links. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"
#include "queries.h"
#include "query.h"
#include "row_select.h"
#include "store.h"

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

typedef struct {
    emu_req *r;
    const emu_entity *t;
} resolve_ctx;

/* "<single-valued navigation>/<property>" ("Filter rows": primarycontactid/fullname): the
 * related row's value through a correlated subquery on the outer row. */
static int resolve_path(resolve_ctx *c, const char *name, size_t n, char *expr, size_t cap)
{
    const char *slash = memchr(name, '/', n);
    char nav[128];
    snprintf(nav, sizeof nav, "%.*s", (int)((size_t)(slash - name) < 127 ? slash - name : 127),
             name);
    const dv_attribute_def *a = store_attr(c->t, nav);
    if (!a || a->type != DV_ATTR_LOOKUP || !a->target) return 0;
    emu_entity *target = store_by_logical(c->r->emu, a->target, strlen(a->target));
    const char *rest = slash + 1;
    size_t rn = n - (size_t)(rest - name);
    const dv_attribute_def *ta = target ? store_prop(target, rest, rn) : NULL;
    if (!ta) return 0;
    char lookup[160], prop[160];
    emu_prop_name(a, lookup, sizeof lookup);
    emu_prop_name(ta, prop, sizeof prop);
    /* The related row is in its table's file: dv_nav (store.c) reads it. Logical names are
     * checked identifiers when a table is stored, so they may be inlined. */
    snprintf(expr, cap, "dv_nav('%s', row.data->>'$.%s', '$.%s')", target->def.logical_name, lookup,
             prop);
    return query_kind(ta->type);
}

static int resolve_prop(void *ud, const char *name, size_t n, char *expr, size_t cap)
{
    resolve_ctx *c = ud;
    const emu_entity *t = c->t;
    if (memchr(name, '/', n)) return resolve_path(c, name, n, expr, cap);
    const dv_attribute_def *a = store_prop(t, name, n);
    if (!a) return 0;
    char prop[160];
    emu_prop_name(a, prop, sizeof prop);
    snprintf(expr, cap, "(data->>'$.%s')", prop);
    return query_kind(a->type);
}

/* $orderby resolves like $filter, except that a lookup sorts by the related row's primary
 * name ("Order rows": "the results are sorted using the primary name field for the related
 * table"). */
static int resolve_order(void *ud, const char *name, size_t n, char *expr, size_t cap)
{
    resolve_ctx *c = ud;
    const dv_attribute_def *a = memchr(name, '/', n) ? NULL : store_prop(c->t, name, n);
    emu_entity *target = a && a->type == DV_ATTR_LOOKUP && a->target
                             ? store_by_logical(c->r->emu, a->target, strlen(a->target))
                             : NULL;
    if (!target || !target->def.primary_name) return resolve_prop(ud, name, n, expr, cap);
    char lookup[160];
    emu_prop_name(a, lookup, sizeof lookup);
    snprintf(expr, cap, "dv_nav('%s', row.data->>'$.%s', '$.%s')", target->def.logical_name, lookup,
             target->def.primary_name);
    return QK_STRING;
}

static int count_rows(emu_req *r, const emu_entity *t, const query_filter *f)
{
    sbuf sql = {0};
    sb_puts(&sql, "SELECT count(*) FROM row WHERE entity=?1");
    if (f) sb_printf(&sql, " AND %s", sb_str((sbuf *)&f->sql));
    sqlite3_stmt *st = store_row_stmt(r->emu, t, sb_str(&sql));
    sb_free(&sql);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    if (f) query_filter_bind(f, st);
    return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
}

/* Parameter aliases (@p1) in $filter replaced by their values from the query string
 * ("Filter rows": In(PropertyName=@p1,PropertyValues=@p2)&@p1='lastname'&@p2=[…]). */
static void expand_aliases(emu_req *r, const char *filter, sbuf *out)
{
    const char *p = filter;
    while (*p) {
        if (*p == '\'') {
            const char *s = p++;
            while (*p && !(*p == '\'' && p[1] != '\''))
                p += *p == '\'' ? 2 : 1;
            if (*p) p++;
            sb_printf(out, "%.*s", (int)(p - s), s);
            continue;
        }
        if (*p == '@') {
            const char *s = p++;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            char alias[64];
            snprintf(alias, sizeof alias, "%.*s", (int)(p - s < 63 ? p - s : 63), s);
            const char *v = emu_arg(r, alias);
            sb_puts(
                out,
                v ? v
                  : "null"); /* "If the alias isn't assigned a value, it's assumed to be null." */
            continue;
        }
        sb_putc(out, *p++);
    }
}

int h_query_rows(emu_req *r, emu_entity *t, int count_only)
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
    /* "Unsupported OData query options" of "Use OData to query data" */
    static const char *unsupported[] = {"$skip", "$search", "$format"};
    for (int i = 0; i < 3; i++)
        if (emu_arg(r, unsupported[i]))
            return emu_error(r, 400, BAD_QUERY, "The query parameter %s is not supported",
                             unsupported[i]);
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
    resolve_ctx rc = {r, t};
    sbuf expanded = {0};
    if (filter && strchr(filter, '@')) {
        expand_aliases(r, filter, &expanded);
        filter = sb_str(&expanded);
    }
    int bad =
        have_filter && query_filter_compile(&f, filter, t->def.logical_name, resolve_prop, &rc, 3);
    sb_free(&expanded);
    if (bad) {
        emu_error(r, f.unserved ? 501 : 400, BAD_QUERY, "%s", f.err);
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
    sbuf order = {0}, order_expanded = {0};
    if (orderby && strchr(orderby, '@')) {
        expand_aliases(r, orderby, &order_expanded);
        orderby = sb_str(&order_expanded);
    }
    char err[512];
    int order_bad = orderby && query_orderby_compile(&order, orderby, t->def.logical_name,
                                                     resolve_order, &rc, err, sizeof err);
    sb_free(&order_expanded);
    orderby = orderby ? "" : NULL; /* from here on only whether there was one matters */
    if (order_bad) {
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
    /* With odata.maxpagesize, Dataverse ignores $top: pages of the asked size follow. */
    if (p.maxpagesize > 0) top = -1;
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
    sqlite3_stmt *st = store_row_stmt(r->emu, t, sb_str(&sql));
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
    emu_annotations_applied(r);
    sbuf ctx = {0};
    context_url(r, t, &s, &ctx);
    sb_puts(&r->out, "{\"@odata.context\":");
    sb_json_str(&r->out, sb_str(&ctx));
    sb_free(&ctx);
    const char *cnt = emu_arg(r, "$count");
    int counted = cnt && strcmp(cnt, "true") == 0;
    int total = counted ? count_rows(r, t, have_filter ? &f : NULL) : -1;
    if (counted) sb_printf(&r->out, ",\"@odata.count\":%d", total > MAX_PAGE ? MAX_PAGE : total);
    /* "Count rows": -1 without $count=true, else the count up to 5,000 */
    if (emu_annotation_wanted(r, "Microsoft.Dynamics.CRM.totalrecordcount"))
        sb_printf(&r->out, ",\"@Microsoft.Dynamics.CRM.totalrecordcount\":%d",
                  total > MAX_PAGE ? MAX_PAGE : total);
    if (total > MAX_PAGE ||
        emu_annotation_wanted(r, "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"))
        sb_printf(&r->out, ",\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":%s",
                  total > MAX_PAGE ? "true" : "false");
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
