/* Solutions over the Web API: the ImportSolution action (a base64 solution zip, parsed by
 * solution_parse.c, whose tables, columns and keys are created in one transaction) and the
 * uninstall of a managed solution by deleting its solution row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "emu_internal.h"
#include "row_write.h"
#include "solutions.h"
#include "store.h"

/* The parser is linked in when present; without it ImportSolution answers 501. */
#pragma weak dv_solution_parse_zip
#pragma weak dv_solution_def_free

#define BAD_ARG "0x80040203"

static int find_solution(dv_emulator *e, const char *unique_name, char id[37])
{
    sqlite3_stmt *st = store_stmt(e, "SELECT id FROM row WHERE entity='solution' AND "
                                     "data->>'$.uniquename' = ?1 COLLATE NOCASE");
    sqlite3_bind_text(st, 1, unique_name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) return 0;
    snprintf(id, 37, "%s", sqlite3_column_text(st, 0));
    return 1;
}

static int import_def(emu_req *r, const dv_solution_def *def)
{
    dv_emulator *e = r->emu;
    char sol_id[37], err[512];
    if (!def->unique_name || !*def->unique_name)
        return emu_error(r, 400, BAD_ARG, "The solution file has no UniqueName in solution.xml.");
    if (store_begin(e)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    if (!find_solution(e, def->unique_name, sol_id)) {
        emu_entity *st = store_by_logical(e, "solution", 8);
        char ts[32];
        time_iso(emu_now(e), ts);
        sbuf row = {0};
        sb_puts(&row, "{\"uniquename\":");
        sb_json_str(&row, def->unique_name);
        sb_puts(&row, ",\"friendlyname\":");
        sb_json_str(&row, def->friendly_name ? def->friendly_name : def->unique_name);
        sb_puts(&row, ",\"version\":");
        sb_json_str(&row, def->version ? def->version : "1.0.0.0");
        sb_printf(&row, ",\"ismanaged\":%s,\"installedon\":\"%s\"}",
                  def->managed ? "true" : "false", ts);
        int rc = rows_create_json(r, st, sb_str(&row), sol_id);
        sb_free(&row);
        if (rc) return -1;
    }
    for (int i = 0; i < def->n_entities; i++) {
        const dv_entity_def *d = &def->entities[i];
        emu_entity *have =
            d->logical_name ? store_by_logical(e, d->logical_name, strlen(d->logical_name)) : NULL;
        if (have && strcmp(have->solution_id, sol_id) == 0) continue; /* re-import: keep data */
        if (have)
            return emu_error(r, 400, BAD_ARG,
                             "The import failed: table '%s' already exists outside solution "
                             "'%s'.",
                             d->logical_name, def->unique_name);
        if (store_add_entity(e, d, sol_id, emu_now(e), err, sizeof err))
            return emu_error(r, 400, BAD_ARG, "The import failed: %s", err);
    }
    if (store_commit(e)) return emu_error(r, 500, "0x80040216", "The import could not commit.");
    store_reload(e);
    r->status = 204;
    return 0;
}

int h_import_solution(emu_req *r)
{
    dv_emulator *e = r->emu;
    if (!dv_solution_parse_zip)
        return emu_error(r, 501, BAD_ARG, "ImportSolution is not available in this build.");
    sqlite3_stmt *st = store_stmt(e, "SELECT json_extract(?1, '$.CustomizationFile') "
                                     "WHERE json_valid(?1)");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    const char *b64 = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
        b64 = (const char *)sqlite3_column_text(st, 0);
    if (!b64 || !*b64)
        return emu_error(r, 400, BAD_ARG,
                         "ImportSolution needs CustomizationFile: the solution zip in base64.");
    size_t len;
    unsigned char *zip = base64_decode(b64, strlen(b64), &len);
    sqlite3_reset(st);
    if (!zip) return emu_error(r, 400, BAD_ARG, "CustomizationFile is not valid base64.");
    dv_solution_def def;
    memset(&def, 0, sizeof def);
    char err[512] = "";
    int rc = dv_solution_parse_zip(zip, len, &def, err, sizeof err);
    free(zip);
    if (rc) {
        if (dv_solution_def_free) dv_solution_def_free(&def);
        return emu_error(r, 400, BAD_ARG, "The import file is invalid: %s", err);
    }
    rc = import_def(r, &def);
    if (dv_solution_def_free) dv_solution_def_free(&def);
    if (rc) {
        store_rollback(e);
        store_reload(e);
    }
    return rc;
}

int h_uninstall_solution(emu_req *r, const char *solution_id)
{
    dv_emulator *e = r->emu;
    emu_entity *sol = store_by_logical(e, "solution", 8);
    char *data = NULL;
    if (!store_row_get(e, sol, solution_id, &data, NULL))
        return emu_error(r, 404, "0x80040217", "Entity 'solution' With Id = %s Does Not Exist",
                         solution_id);
    sqlite3_stmt *st = store_stmt(e, "SELECT json_extract(?1, '$.ismanaged')");
    sqlite3_bind_text(st, 1, data, -1, SQLITE_TRANSIENT);
    int managed = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    free(data);
    if (store_begin(e)) return emu_error(r, 503, "0x80040216", "The store is busy.");
    char id[37];
    snprintf(id, sizeof id, "%s", solution_id);
    if (managed) {
        /* Collect first: dropping changes nothing in the cache until the reload. */
        for (int i = 0; i < e->n_ents; i++) {
            if (strcmp(e->ents[i].solution_id, id) != 0) continue;
            if (store_drop_entity(e, e->ents[i].def.logical_name))
                return emu_error(r, 500, "0x80040216", "The uninstall failed.");
        }
    }
    if (store_row_delete(e, sol, id, emu_now(e)) || store_commit(e))
        return emu_error(r, 500, "0x80040216", "The uninstall failed.");
    store_reload(e);
    r->status = 204;
    return 0;
}

int h_import_solution_async(emu_req *r)
{
    dv_emulator *e = r->emu;
    h_import_solution(r);
    int ok = r->status == 204;
    char *message = NULL;
    if (!ok) {
        sqlite3_stmt *st = store_stmt(e, "SELECT json_extract(?1, '$.error.message')");
        sqlite3_bind_text(st, 1, sb_str(&r->out), (int)r->out.n, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            message = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
    }
    r->out.n = 0;
    r->status = 0;
    /* The job is over already: Completed (3) with Succeeded (30) or Failed (31). */
    char ts[32];
    time_iso(emu_now(e), ts);
    sbuf row = {0};
    sb_printf(&row,
              "{\"name\":\"ImportSolution\",\"operationtype\":203,\"statecode\":3,"
              "\"statuscode\":%d,\"completedon\":\"%s\",\"message\":",
              ok ? 30 : 31, ts);
    sb_json_str(&row, message);
    sb_putc(&row, '}');
    free(message);
    emu_entity *jobs = store_by_logical(e, "asyncoperation", 14);
    char job[37], key[37];
    int rc = -1;
    if (jobs && store_begin(e) == 0) {
        rc = rows_create_json(r, jobs, sb_str(&row), job);
        if (rc == 0 && store_commit(e)) rc = emu_error(r, 500, "0x80040216", "The commit failed.");
    }
    sb_free(&row);
    if (rc) return r->status ? -1 : emu_error(r, 500, "0x80040216", "The job was not recorded.");
    guid_new(key);
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM."
              "ImportSolutionAsyncResponse\",\"AsyncOperationId\":\"%s\",\"ImportJobKey\":\"%s\"}",
              r->base, job, key);
    return 0;
}
