/* CreateMultiple, UpdateMultiple, UpsertMultiple. See bulk.h. */
#include "bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwalk.h"
#include "row_put.h"
#include "row_write.h"
#include "store.h"

typedef struct {
    char *json;    /* the Target object's text */
    char *type;    /* @odata.type, or NULL */
    char *odataid; /* @odata.id, or NULL */
    char *pid;     /* the primary id column's value, or NULL */
} target;

static void targets_free(target *v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i].json), free(v[i].type), free(v[i].odataid), free(v[i].pid);
    free(v);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? strdup((const char *)s) : NULL;
}

/* A member's value as json_extract gives it (text, integer, 1 or 0), or NULL. */
static char *member_dup(const jw_member *m, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++) {
        if (m[i].key_len != kl || memcmp(m[i].key, key, kl) != 0) continue;
        if (strcmp(m[i].type, "null") == 0) return NULL;
        if (strcmp(m[i].type, "true") == 0) return strdup("1");
        if (strcmp(m[i].type, "false") == 0) return strdup("0");
        return strndup(m[i].text, m[i].text_len);
    }
    return NULL;
}

/* read_targets for the bodies jwalk reads (flat records): no JSON1 parse of the body, nor
 * of each record three times over. Returns the count, or -1 to read the body with JSON1. */
static int read_flat_targets(emu_req *r, const emu_entity *t, target **out)
{
    size_t *starts = NULL, *lens = NULL;
    int n = jw_targets(r->body, r->body_len, "Targets", &starts, &lens);
    if (n <= 0) return -1;
    target *v = calloc((size_t)n, sizeof *v);
    jw_member *m = NULL;
    int ok = v != NULL;
    for (int i = 0; ok && i < n; i++) {
        int nm = 0;
        const char *s = r->body + starts[i];
        if (jw_object(s, lens[i], &m, &nm)) {
            ok = 0;
            break;
        }
        v[i].json = strndup(s, lens[i]);
        v[i].type = member_dup(m, nm, "@odata.type");
        v[i].odataid = member_dup(m, nm, "@odata.id");
        v[i].pid = member_dup(m, nm, t->def.primary_id);
        free(m);
        m = NULL;
    }
    free(starts);
    free(lens);
    if (!ok) {
        if (v) targets_free(v, n);
        return -1;
    }
    *out = v;
    return n;
}

/* Reads the Targets array with JSON1. Returns the count (> 0), or -1 after an error
 * answer. */
static int read_json_targets(emu_req *r, const emu_entity *t, target **out)
{
    dv_emulator *e = r->emu;
    sqlite3_stmt *st = store_stmt(e, "SELECT json_valid(?1) AND json_type(?1) = 'object', "
                                     "json_type(?1, '$.Targets')");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    const unsigned char *ty = ok ? sqlite3_column_text(st, 1) : NULL;
    int is_array = ty && strcmp((const char *)ty, "array") == 0;
    sqlite3_reset(st);
    if (!ok)
        return emu_error(r, 400, BAD_QUERY,
                         "The request body is not a JSON object (or is not valid JSON).");
    if (!is_array)
        return emu_error(r, 400, BAD_QUERY,
                         "The parameter 'Targets' (an array of %s records) is "
                         "missing from the request body.",
                         t->def.logical_name);
    char path[160];
    snprintf(path, sizeof path, "$.\"%s\"", t->def.primary_id);
    st = store_stmt(e, "SELECT value, type, json_extract(value, '$.\"@odata.type\"'), "
                       "json_extract(value, '$.\"@odata.id\"'), json_extract(value, ?2) "
                       "FROM json_each(?1, '$.Targets')");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    target *v = NULL;
    int n = 0, cap = 0, bad = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (strcmp((const char *)sqlite3_column_text(st, 1), "object") != 0) {
            bad = n;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            target *nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) break;
            v = nv;
        }
        v[n].json = col_dup(st, 0);
        v[n].type = col_dup(st, 2);
        v[n].odataid = col_dup(st, 3);
        v[n].pid = col_dup(st, 4);
        n++;
    }
    sqlite3_reset(st);
    if (bad >= 0) {
        targets_free(v, n);
        return emu_error(r, 400, BAD_QUERY, "Targets[%d] is not a JSON object.", bad);
    }
    if (n == 0) {
        free(v);
        return emu_error(r, 400, BAD_QUERY,
                         "The parameter 'Targets' must contain at least one "
                         "record.");
    }
    *out = v;
    return n;
}

/* Reads the Targets array, every record of the action's table. Returns the count (> 0), or
 * -1 after an error answer. */
static int read_targets(emu_req *r, const emu_entity *t, target **out)
{
    target *v = NULL;
    int n = read_flat_targets(r, t, &v);
    if (n < 0) n = read_json_targets(r, t, &v);
    if (n < 0) return -1;
    char want[200];
    snprintf(want, sizeof want, "Microsoft.Dynamics.CRM.%s", t->def.logical_name);
    for (int i = 0; i < n; i++) {
        const char *ty2 = v[i].type;
        if (ty2 && ty2[0] == '#') ty2++;
        if (!v[i].type || strcmp(ty2, want) != 0) {
            if (v[i].type)
                emu_error(r, 400, BAD_QUERY,
                          "Targets[%d]: the @odata.type '%s' is not '%s': all records must be "
                          "of the table the action is bound to.",
                          i, v[i].type, want);
            else
                emu_error(r, 400, BAD_QUERY,
                          "Targets[%d]: the @odata.type annotation is required for every record "
                          "in Targets (expected '%s').",
                          i, want);
            targets_free(v, n);
            return -1;
        }
    }
    *out = v;
    return n;
}

/* The text inside "set(…)" of an @odata.id (relative or absolute), or NULL. */
static const char *odataid_addr(const emu_entity *t, const char *u)
{
    const char *seg = strrchr(u, '/');
    seg = seg ? seg + 1 : u;
    size_t sl = strlen(t->def.entity_set_name);
    if (strncmp(seg, t->def.entity_set_name, sl) != 0 || seg[sl] != '(') return NULL;
    return seg + sl + 1;
}

enum { B_CREATE, B_UPDATE, B_UPSERT };

int h_bulk(emu_req *r, const char *set, size_t set_len, const char *action)
{
    emu_entity *t = store_by_set(r->emu, set, set_len);
    if (!t)
        return emu_error(r, 404, BAD_QUERY, "Resource not found for the segment '%.*s'.",
                         (int)set_len, set);
    int op;
    if (strcmp(action, "CreateMultiple") == 0)
        op = B_CREATE;
    else if (strcmp(action, "UpdateMultiple") == 0)
        op = B_UPDATE;
    else if (strcmp(action, "UpsertMultiple") == 0)
        op = B_UPSERT;
    else
        return emu_error(r, 404, BAD_QUERY,
                         "Resource not found for the segment 'Microsoft.Dynamics.CRM.%s'.", action);
    if (strcmp(r->method, "POST") != 0)
        return emu_error(r, 405, BAD_QUERY, "%s is an action: use POST.", action);
    target *v = NULL;
    int n = read_targets(r, t, &v);
    if (n < 0) return -1;
    /* Targets that nest (deep inserts) may write other tables; flat ones write t's rows
     * alone, beside writers of other tables. */
    int nests = jw_depth(r->body, r->body_len) > 3;
    if (nests ? store_begin(r->emu) : store_begin_rows(r->emu, t)) {
        targets_free(v, n);
        return emu_error(r, 503, "0x80040216", "The store is busy.");
    }
    /* One step of the version counter for the whole call; every row still gets its own. */
    store_reserve_versions(r->emu, t, n);
    sbuf ids = {0};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char id[37];
        int created = 0;
        const char *addr = NULL;
        char byid[40];
        if (v[i].odataid) {
            addr = odataid_addr(t, v[i].odataid);
            if (!addr) {
                rc = emu_error(r, 400, BAD_QUERY,
                               "Targets[%d]: '@odata.id' must address a record of '%s', not '%s'.",
                               i, t->def.entity_set_name, v[i].odataid);
                break;
            }
        } else if (v[i].pid && op != B_CREATE) {
            snprintf(byid, sizeof byid, "%.36s)", v[i].pid);
            addr = byid;
        }
        if (op == B_CREATE) {
            rc = rows_create_json(r, t, v[i].json, id);
        } else if (!addr && op == B_UPDATE) {
            rc = emu_error(r, 400, BAD_QUERY,
                           "Targets[%d]: a record to update must carry its primary key '%s' or "
                           "an '@odata.id'.",
                           i, t->def.primary_id);
        } else if (!addr) {
            rc = rows_create_json(r, t, v[i].json, id);
        } else {
            rc = row_put_json(r, t, addr, v[i].json, strlen(v[i].json), op == B_UPSERT, id,
                              &created);
        }
        if (rc == 0 && op == B_CREATE) sb_printf(&ids, "%s\"%s\"", i ? "," : "", id);
    }
    targets_free(v, n);
    if (rc) {
        sb_free(&ids);
        store_rollback(r->emu);
        return -1;
    }
    if (store_commit(r->emu)) {
        sb_free(&ids);
        return emu_error(r, 500, "0x80040216", "The commit failed.");
    }
    if (op == B_CREATE) {
        emu_json(r, 200);
        sb_printf(&r->out,
                  "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM."
                  "CreateMultipleResponse\",\"Ids\":[%s]}",
                  r->base, sb_str(&ids));
    } else {
        r->status = 204;
    }
    sb_free(&ids);
    return 0;
}
