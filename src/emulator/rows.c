/* Single rows: read by id or alternate key, create, update, upsert, delete, and single
 * columns. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "emu_internal.h"
#include "jwalk.h"
#include "row_address.h"
#include "row_put.h"
#include "row_select.h"
#include "row_write.h"
#include "rows.h"
#include "store.h"

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
    sqlite3_stmt *st = store_row_stmt(r->emu, t, sb_str(&sql));
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
    char etag[64];
    snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)sqlite3_column_int64(st, 0));
    emu_add_header(r, "ETag", etag);
    emu_annotations_applied(r);
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

/* An upsert addressed by alternate key answers with the key as the request wrote it
 * (`<set>(k1=2,k2=2)`), percent-encoded where a URL needs it. */
static void key_entity_id_header(emu_req *r, const emu_entity *t, const address *a)
{
    sbuf b = {0};
    sb_printf(&b, "%s%s(", r->base, t->def.entity_set_name);
    for (int i = 0; i < a->src_len; i++) {
        unsigned char c = (unsigned char)a->src[i];
        if (isalnum(c) || strchr("-._~'=,:@!$*+;", c))
            sb_putc(&b, (char)c);
        else
            sb_printf(&b, "%%%02X", c);
    }
    sb_putc(&b, ')');
    emu_add_header(r, "OData-EntityId", sb_str(&b));
    sb_free(&b);
}

/* 1 when If-Match names a version other than the row's (`*` matches any). */

/* The write transaction of a request that writes t's rows: t's alone, beside writers of
 * other tables, unless the body nests objects or arrays (deep inserts write other tables). */
static int begin_write(emu_req *r, const emu_entity *t)
{
    if (jw_depth(r->body, r->body_len) > 1) return store_begin(r->emu);
    return store_begin_rows(r->emu, t);
}

int h_row_post(emu_req *r, emu_entity *t)
{
    char id[37];
    /* A flat body is read and checked before the table's turn is taken, so the turn is only
     * the write itself; a nested one may create related rows as it is read. */
    int nests = jw_depth(r->body, r->body_len) > 1;
    if (nests && store_begin(r->emu)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    fieldset fs = {0};
    if (body_fields(r, t, r->body, r->body_len, &fs)) {
        fs_free(&fs);
        return -1;
    }
    if (!nests && store_begin_rows(r->emu, t)) {
        fs_free(&fs);
        return emu_error(r, 503, "0x80040216", "The store is busy.");
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
    if (parse_prefer(r).return_repr) {
        /* "Create with data returned": the row is the answer, no OData-EntityId header */
        emu_add_header(r, "Preference-Applied", "return=representation");
        return answer_row(r, t, id, 201);
    }
    entity_id_header(r, t, id);
    r->status = 204;
    return 0;
}

int h_row_patch(emu_req *r, emu_entity *t, const address *a)
{
    dv_emulator *e = r->emu;
    const char *if_match = emu_header(r, "If-Match");
    const char *if_none = emu_header(r, "If-None-Match");
    if (begin_write(r, t)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    char id[37];
    int exists = 0;
    if (row_put_addressed(r, t, a, r->body, r->body_len, if_match, if_none, id, &exists)) return -1;
    if (store_commit(e)) return emu_error(r, 500, "0x80040216", "The commit failed.");
    if (a->kind == ADDR_KEY)
        key_entity_id_header(r, t, a);
    else
        entity_id_header(r, t, id);
    if (parse_prefer(r).return_repr) {
        emu_add_header(r, "Preference-Applied", "return=representation");
        return answer_row(r, t, id, exists ? 200 : 201);
    }
    r->status = 204;
    return 0;
}

int h_row_delete(emu_req *r, emu_entity *t, const address *a)
{
    char id[37];
    if (store_begin_rows(r->emu, t)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    int64_t ver = 0;
    if (!find_row(r, t, a, id) || !store_row_get(r->emu, t, id, NULL, &ver)) {
        store_rollback(r->emu);
        return not_found(r, t, a);
    }
    if (etag_mismatch(emu_header(r, "If-Match"), ver)) {
        store_rollback(r->emu);
        return version_mismatch(r);
    }
    if (store_row_delete(r->emu, t, id, emu_now(r->emu)) || store_commit(r->emu))
        return emu_error(r, 500, "0x80040216", "The delete failed.");
    r->status = 204;
    return 0;
}

/* The stored JSON value of one member of a row ("name" or "_x_value"); NULL when absent or
 * null. The caller frees it. */
static char *row_member(emu_req *r, const emu_entity *t, const char *id, const char *member,
                        int raw)
{
    char path[200];
    snprintf(path, sizeof path, "$.\"%s\"", member);
    sqlite3_stmt *st = store_row_stmt(r->emu, t,
                                      raw ? "SELECT data ->> ?3 FROM row WHERE entity=?1 AND id=?2"
                                          : "SELECT data -> ?3 FROM row WHERE entity=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
    const unsigned char *v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    char *out = v && strcmp((const char *)v, "null") != 0 ? strdup((const char *)v) : NULL;
    sqlite3_reset(st);
    return out;
}

/* `<row>/<single-valued navigation>`: the related row, answered as a GET of it would be
 * (with the request's $select). */
static int navigation_get(emu_req *r, emu_entity *t, const address *a, const dv_attribute_def *at)
{
    emu_entity *target =
        at->target ? store_by_logical(r->emu, at->target, strlen(at->target)) : NULL;
    if (!target)
        return emu_error(r, 501, BAD_QUERY,
                         "The navigation property '%s' (a lookup to more than one table) is not "
                         "served by the dvlua emulator.",
                         at->logical_name);
    char id[37];
    if (!find_row(r, t, a, id)) return not_found(r, t, a);
    char member[160];
    emu_prop_name(at, member, sizeof member);
    char *to = row_member(r, t, id, member, 1);
    if (!to) {
        r->status = 204; /* no related row (a guess: OData's answer for a null navigation) */
        return 0;
    }
    int rc = answer_row(r, target, to, 200);
    free(to);
    return rc;
}

/* Runs body as a PATCH of the row addressed by id (the single-column and reference forms
 * are updates of one member). */
static int patch_with(emu_req *r, emu_entity *t, const char *id, const char *body)
{
    const char *saved = r->body;
    size_t saved_len = r->body_len;
    r->body = body;
    r->body_len = strlen(body);
    address by_id = {ADDR_ID, "", 0, {{{0}}, 0}, NULL, 0};
    snprintf(by_id.id, sizeof by_id.id, "%s", id);
    int rc = h_row_patch(r, t, &by_id);
    r->body = saved;
    r->body_len = saved_len;
    return rc;
}

/* "Associate and disassociate": PUT <row>/<nav>/$ref with {"@odata.id": "<entity URI>"}
 * sets the lookup, DELETE <row>/<nav>/$ref clears it. */
static int navigation_ref(emu_req *r, emu_entity *t, const address *a, const dv_attribute_def *nav)
{
    char id[37];
    if (!find_row(r, t, a, id)) return not_found(r, t, a);
    int del = strcmp(r->method, "DELETE") == 0;
    sqlite3_stmt *st =
        store_stmt(r->emu, "SELECT CASE WHEN ?3 THEN json_object(?2, NULL) "
                           "WHEN json_valid(?1) AND json_type(?1, '$.\"@odata.id\"') "
                           "= 'text' THEN json_object(?2, ?1 ->> '$.\"@odata.id\"') END");
    if (!st) return emu_error(r, 500, "0x80040216", "The store failed.");
    char key[160];
    snprintf(key, sizeof key, "%s@odata.bind", nav->logical_name);
    sqlite3_bind_text(st, 1, r->body ? r->body : "", (int)r->body_len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, del);
    if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_text(st, 0)) {
        sqlite3_reset(st);
        return emu_error(r, 400, BAD_QUERY,
                         "The body must be a JSON object with an '@odata.id' naming the row "
                         "to refer to.");
    }
    char *body = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    int rc = patch_with(r, t, id, body);
    free(body);
    if (rc == 0) {
        /* the reference answers bare 204, without the update's OData-EntityId */
        for (int i = 0; i < r->n_hdr; i++) {
            if (strcmp(r->hdr_name[i], "OData-EntityId") != 0) continue;
            free(r->hdr_name[i]);
            free(r->hdr_val[i]);
            r->n_hdr--;
            memmove(&r->hdr_name[i], &r->hdr_name[i + 1],
                    sizeof *r->hdr_name * (size_t)(r->n_hdr - i));
            memmove(&r->hdr_val[i], &r->hdr_val[i + 1],
                    sizeof *r->hdr_val * (size_t)(r->n_hdr - i));
            i--;
        }
    }
    return rc;
}

int h_row_property(emu_req *r, emu_entity *t, const address *a, const char *path)
{
    /* "prop", "prop/$value", "nav", "nav/$ref", "nav/…" */
    const char *slash = strchr(path, '/');
    size_t plen = slash ? (size_t)(slash - path) : strlen(path);
    const char *rest = slash ? slash + 1 : "";
    char prop[128];
    snprintf(prop, sizeof prop, "%.*s", (int)(plen < 127 ? plen : 127), path);
    const dv_attribute_def *at = store_prop(t, prop, strlen(prop));
    const dv_attribute_def *nav = at ? NULL : store_attr(t, prop);
    if (nav && nav->type != DV_ATTR_LOOKUP && nav->type != DV_ATTR_OWNER) nav = NULL;
    if (nav) {
        if (!*rest && strcmp(r->method, "GET") == 0) return navigation_get(r, t, a, nav);
        if (strcmp(rest, "$ref") == 0 &&
            (!strcmp(r->method, "PUT") || !strcmp(r->method, "DELETE")))
            return navigation_ref(r, t, a, nav);
        return emu_error(r, 501, BAD_QUERY,
                         "'%s %s' is not served by the dvlua emulator (a single-valued "
                         "navigation property takes GET, and PUT or DELETE of its /$ref).",
                         r->method, path);
    }
    if (!at && *rest)
        return emu_error(r, 501, BAD_QUERY,
                         "The path '%s' (collection-valued navigation properties, /$ref, "
                         "/$count) is not served by the dvlua emulator.",
                         path);
    if (!at)
        return emu_error(r, 400, BAD_QUERY,
                         "Could not find a property named '%s' on type "
                         "'Microsoft.Dynamics.CRM.%s'.",
                         prop, t->def.logical_name);
    if ((at->type == DV_ATTR_LOOKUP || at->type == DV_ATTR_OWNER) && strcmp(r->method, "GET") != 0)
        return emu_error(r, 400, BAD_QUERY,
                         "The lookup property '%s' is read-only: set the lookup with "
                         "'<navigation property>@odata.bind' or PUT <row>/<navigation "
                         "property>/$ref.",
                         prop);
    int raw = strcmp(rest, "$value") == 0;
    if (raw && (at->type == DV_ATTR_FILE || at->type == DV_ATTR_IMAGE))
        return emu_error(r, 501, BAD_QUERY,
                         "Downloading the content of %s column '%s' is not served by the dvlua "
                         "emulator.",
                         dv_attr_type_name(at->type), prop);
    if (*rest && !raw)
        return emu_error(r, 400, BAD_QUERY, "Resource not found for the segment '%s'.", rest);
    char id[37];
    if (!find_row(r, t, a, id)) return not_found(r, t, a);
    const char *m = r->method;
    if (!strcmp(m, "GET")) {
        char *v = row_member(r, t, id, prop, raw);
        if (!v) {
            r->status = 204; /* Dataverse answers a null column with no content */
            return 0;
        }
        if (raw) {
            /* the value alone, as text ("Retrieve a table row": /name/$value) */
            r->status = 200;
            r->content_type = "text/plain";
            sb_puts(&r->out, v);
        } else {
            emu_json(r, 200);
            sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#%s(%s)/%s\",\"value\":%s}",
                      r->base, t->def.entity_set_name, id, prop, v);
        }
        free(v);
        return 0;
    }
    if (raw)
        return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on '%s'.", m,
                         path);
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
    int rc = patch_with(r, t, id, body);
    free(body);
    return rc;
}

int h_row_get(emu_req *r, emu_entity *t, const address *a)
{
    char id[37];
    int64_t ver = 0;
    if (!find_row(r, t, a, id) || !store_row_get(r->emu, t, id, NULL, &ver))
        return not_found(r, t, a);
    const char *if_none = emu_header(r, "If-None-Match");
    if (if_none && strcmp(if_none, "null") != 0 && !etag_mismatch(if_none, ver)) {
        r->status = 304; /* the client's copy is current */
        return 0;
    }
    return answer_row(r, t, id, 200);
}
