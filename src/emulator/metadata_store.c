#include "sbuf.h"
#include "metadata_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

char *mdx_get(dv_emulator *e, const char *kind, const char *entity, const char *name, char sol[37])
{
    if (sol) sol[0] = 0;
    sqlite3_stmt *st =
        store_stmt(e, "SELECT json, solution FROM mdx WHERE kind=?1 AND entity=?2 AND name=?3");
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, entity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name ? name : "", -1, SQLITE_TRANSIENT);
    char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *j = sqlite3_column_text(st, 0);
        const unsigned char *s = sqlite3_column_text(st, 1);
        out = strdup(j ? (const char *)j : "{}");
        if (sol && s) snprintf(sol, 37, "%s", (const char *)s);
    }
    sqlite3_reset(st);
    return out;
}

int mdx_put(dv_emulator *e, const char *kind, const char *entity, const char *name,
            const char *solution, const char *json)
{
    sqlite3_stmt *st = store_stmt(e, "INSERT OR REPLACE INTO mdx VALUES(?1,?2,?3,?4,json(?5))");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, entity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name ? name : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, solution && *solution ? solution : NULL, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, json ? json : "{}", -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int mdx_delete(dv_emulator *e, const char *kind, const char *entity, const char *name)
{
    sqlite3_stmt *st = store_stmt(e, "DELETE FROM mdx WHERE kind=?1 AND entity=?2 AND name=?3");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, entity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name ? name : "", -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

char **mdx_names(dv_emulator *e, const char *kind, int *n)
{
    *n = 0;
    sqlite3_stmt *st =
        store_stmt(e, "SELECT name FROM mdx WHERE kind=?1 AND entity='' ORDER BY rowid");
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    char **out = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char **grown = realloc(out, sizeof *out * (size_t)(*n + 1));
        if (!grown) break;
        out = grown;
        out[(*n)++] = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_reset(st);
    return out;
}

char *mdx_str(dv_emulator *e, const char *json, const char *path)
{
    if (!json) return NULL;
    sqlite3_stmt *st = store_stmt(e, "SELECT CASE WHEN json_valid(?1) THEN "
                                     "CASE json_type(?1, ?2) WHEN 'text' THEN json_extract(?1, ?2) "
                                     "WHEN 'integer' THEN json_extract(?1, ?2) "
                                     "WHEN 'real' THEN json_extract(?1, ?2) END END");
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return out;
}

long long mdx_int(dv_emulator *e, const char *json, const char *path, long long def)
{
    if (!json) return def;
    sqlite3_stmt *st =
        store_stmt(e, "SELECT CASE WHEN json_valid(?1) THEN "
                      "CASE json_type(?1, ?2) WHEN 'integer' THEN json_extract(?1, ?2) "
                      "WHEN 'real' THEN CAST(json_extract(?1, ?2) AS INTEGER) "
                      "WHEN 'true' THEN 1 WHEN 'false' THEN 0 END END");
    if (!st) return def;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    long long v = def;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

const char *mdx_type(dv_emulator *e, const char *json, const char *path, char out[16])
{
    out[0] = 0;
    if (!json) return out;
    sqlite3_stmt *st = store_stmt(e, "SELECT CASE WHEN json_valid(?1) THEN json_type(?1, ?2) END");
    if (!st) return out;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, 16, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return out;
}

static int run1(dv_emulator *e, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = store_stmt(e, sql);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int mdx_drop_column(dv_emulator *e, const char *entity, const char *column)
{
    char path[200], lpath[210];
    snprintf(path, sizeof path, "$.%s", column);
    snprintf(lpath, sizeof lpath, "$._%s_value", column);
    sqlite3_stmt *st = store_rows_stmt(e, entity,
                                       "UPDATE row SET data = json_remove(data, ?2, ?3) "
                                       "WHERE entity = ?1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, lpath, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) return -1;
    if (run1(e, "DELETE FROM attr WHERE entity=?1 AND logical=?2", entity, column)) return -1;
    if (mdx_delete(e, MDX_ATTR, entity, column)) return -1;
    return mdx_delete(e, MDX_REL, entity, column);
}

int mdx_drop_key(dv_emulator *e, const char *entity, const char *key)
{
    sqlite3_stmt *kv = store_rows_stmt(e, entity, "DELETE FROM keyval WHERE entity=?1 AND key=?2");
    if (!kv) return -1;
    sqlite3_bind_text(kv, 1, entity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(kv, 2, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(kv) != SQLITE_DONE ||
        run1(e, "DELETE FROM ekey WHERE entity=?1 AND logical=?2", entity, key))
        return -1;
    return mdx_delete(e, MDX_KEY, entity, key);
}

int mdx_add_column(dv_emulator *e, const char *entity, const dv_attribute_def *a)
{
    sqlite3_stmt *st = store_stmt(e, "INSERT INTO attr VALUES(?1,?2,?3,?4,?5,?6,?7,"
                                     "(SELECT coalesce(max(ord),0)+1 FROM attr WHERE entity=?1))");
    if (!st) return -1;
    store_bind_attr(st, entity, a);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int mdx_add_key(dv_emulator *e, const emu_entity *t, const dv_key_def *k, double now)
{
    const char *ent = t->def.logical_name;
    sbuf attrs = {0}, sql = {0};
    for (int j = 0; j < k->n_attributes; j++) {
        if (j) sb_putc(&attrs, ',');
        sb_puts(&attrs, k->attributes[j]);
    }
    sqlite3_stmt *st = store_stmt(e, "INSERT INTO ekey VALUES(?1,?2,?3,?4,?5,0,"
                                     "(SELECT coalesce(max(ord),0)+1 FROM ekey WHERE entity=?1))");
    int rc = -1;
    if (!st) goto out;
    sqlite3_bind_text(st, 1, ent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, k->logical_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, k->display_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, sb_str(&attrs), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 5, now);
    if (sqlite3_step(st) != SQLITE_DONE) goto out;
    /* The rows already there are indexed now; a value two rows share fails the index the
     * way Dataverse's index job fails on duplicates. ?1 entity, ?2 key, ?3.. JSON paths. */
    sb_puts(&sql, "SELECT count(*), count(DISTINCT v) FROM (SELECT CASE WHEN ");
    for (int j = 0; j < k->n_attributes; j++)
        sb_printf(&sql, "%sjson_extract(data, ?%d) IS NOT NULL", j ? " AND " : "", 3 + j);
    sb_puts(&sql, " THEN json_array(");
    for (int j = 0; j < k->n_attributes; j++)
        sb_printf(&sql, "%sjson_extract(data, ?%d)", j ? "," : "", 3 + j);
    sb_puts(&sql,
            ") END AS v, id FROM row WHERE entity=?1 AND ?2 IS NOT NULL) WHERE v IS NOT NULL");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            sql.n = 0;
            sb_puts(&sql,
                    "INSERT OR IGNORE INTO keyval SELECT ?1, ?2, v, id FROM (SELECT CASE WHEN ");
            for (int j = 0; j < k->n_attributes; j++)
                sb_printf(&sql, "%sjson_extract(data, ?%d) IS NOT NULL", j ? " AND " : "", 3 + j);
            sb_puts(&sql, " THEN json_array(");
            for (int j = 0; j < k->n_attributes; j++)
                sb_printf(&sql, "%sjson_extract(data, ?%d)", j ? "," : "", 3 + j);
            sb_puts(&sql, ") END AS v, id FROM row WHERE entity=?1) WHERE v IS NOT NULL");
        }
        st = store_row_stmt(e, t, sb_str(&sql));
        if (!st) goto out;
        sqlite3_bind_text(st, 1, ent, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, k->logical_name, -1, SQLITE_TRANSIENT);
        store_bind_key_paths(st, t, k, 3);
        int step = sqlite3_step(st);
        if (pass == 0) {
            if (step != SQLITE_ROW) goto out;
            int dup = sqlite3_column_int(st, 0) != sqlite3_column_int(st, 1);
            sqlite3_reset(st);
            if (dup) {
                char msg[400];
                snprintf(msg, sizeof msg,
                         "The index for key '%s' on table '%s' could not be created: "
                         "duplicate values exist in the key columns (%s).",
                         k->logical_name, ent, sb_str(&attrs));
                rc = mdx_fail_key(e, ent, k->logical_name, msg, now) ? -1 : 1;
                goto out;
            }
        } else if (step != SQLITE_DONE) {
            goto out;
        }
    }
    rc = 0;
out:
    sb_free(&attrs);
    sb_free(&sql);
    return rc;
}

int mdx_fail_key(dv_emulator *e, const char *entity, const char *key, const char *message,
                 double now)
{
    if (run1(e, "UPDATE ekey SET failed = 1 WHERE entity=?1 AND logical=?2", entity, key))
        return -1;
    emu_entity *jobs = store_by_logical(e, "asyncoperation", 14);
    if (!jobs) return 0;
    char id[37], ts[32];
    guid_new(id);
    time_iso(now, ts);
    int64_t v = store_next_version(e, jobs);
    sbuf d = {0};
    sb_printf(&d, "{\"%s\":\"%s\",\"name\":", jobs->def.primary_id, id);
    char name[300];
    snprintf(name, sizeof name, "Create index for key %s on %s", key, entity);
    sb_json_str(&d, name);
    sb_printf(&d,
              ",\"statecode\":3,\"statuscode\":31,\"createdon\":\"%s\",\"modifiedon\":\"%s\","
              "\"completedon\":\"%s\",\"versionnumber\":%lld,\"_ownerid_value\":\"%s\","
              "\"message\":",
              ts, ts, ts, (long long)v, EMU_USER_ID);
    sb_json_str(&d, message);
    sb_putc(&d, '}');
    int rc = store_row_put(e, jobs, id, sb_str(&d), v, NULL);
    sb_free(&d);
    if (rc) return -1;
    char *old = mdx_get(e, MDX_KEY, entity, key, NULL);
    char sol[37];
    free(mdx_get(e, MDX_KEY, entity, key, sol));
    sqlite3_stmt *st = store_stmt(e, "SELECT json_set(coalesce(?1,'{}'), '$.AsyncJobId', ?2)");
    sqlite3_bind_text(st, 1, old, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    char *upd = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) upd = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    free(old);
    rc = upd ? mdx_put(e, MDX_KEY, entity, key, sol, upd) : -1;
    free(upd);
    return rc;
}

int mdx_drop_solution(dv_emulator *e, const char *solution_id)
{
    /* Relationships first: their lookup columns go with them. */
    sqlite3_stmt *st =
        store_stmt(e, "SELECT json_group_array(json_array(kind, entity, name)) "
                      "FROM mdx WHERE solution = ?1 AND kind IN ('rel','attr','key','optionset') "
                      "ORDER BY kind = 'optionset'");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, solution_id, -1, SQLITE_TRANSIENT);
    char *all = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        all = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (!all) return 0;
    int n = 0;
    char **items = NULL;
    st = store_stmt(e, "SELECT value->>0, value->>1, value->>2 FROM json_each(?1)");
    sqlite3_bind_text(st, 1, all, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char **grown = realloc(items, sizeof *items * (size_t)(n + 3));
        if (!grown) break;
        items = grown;
        for (int i = 0; i < 3; i++)
            items[n++] = strdup((const char *)sqlite3_column_text(st, i));
    }
    sqlite3_reset(st);
    int rc = 0;
    for (int i = 0; i < n; i += 3) {
        const char *kind = items[i], *ent = items[i + 1], *name = items[i + 2];
        if (rc == 0) {
            if (strcmp(kind, MDX_KEY) == 0)
                rc = mdx_drop_key(e, ent, name);
            else if (strcmp(kind, MDX_OPTIONSET) == 0)
                rc = mdx_delete(e, MDX_OPTIONSET, "", name);
            else
                rc = mdx_drop_column(e, ent, name); /* a relationship's lookup, or a column */
        }
        free(items[i]), free(items[i + 1]), free(items[i + 2]);
    }
    free(items);
    free(all);
    return rc;
}
