/* Solutions over the Web API: the ImportSolution action (a base64 solution zip, parsed by
 * solution_parse.c, whose components join the organization as a layer in one transaction:
 * components.c), the import job each import leaves (importjobs(<ImportJobId>)), and the
 * uninstall of a solution by deleting its solution row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "components.h"
#include "emu_internal.h"
#include "metadata_store.h"
#include "row_write.h"
#include "solutions.h"
#include "store.h"

/* The parser is linked in when present; without it ImportSolution answers 501. */
#pragma weak dv_solution_parse_zip
#pragma weak dv_solution_def_free

#define BAD_ARG "0x80040203"
/* Dataverse's import error codes (ErrorCodes: ImportCustomizationsBadZipFileError,
 * ImportNonWellFormedFileError, ImportXsdValidationError, ImportMissingDependenciesError,
 * ImportGenericError, ImportSolutionManagedToUnmanagedMismatch, ImportSolutionManagedError). */
#define IMPORT_BAD_ZIP "0x80048060"
#define IMPORT_NOT_WELL_FORMED "0x80048013"
#define IMPORT_XSD "0x8004801a"
#define IMPORT_MISSING_DEPENDENCIES "0x8004801d"
#define IMPORT_GENERIC "0x8004801e"
#define IMPORT_UNMANAGED_TO_MANAGED "0x80048040"
#define IMPORT_MANAGED_TO_UNMANAGED "0x80048038"

static int find_solution(dv_emulator *e, const char *unique_name, char id[37])
{
    sqlite3_stmt *st = store_rows_stmt(e, "solution",
                                       "SELECT id FROM row WHERE entity='solution' AND "
                                       "data->>'$.uniquename' = ?1 COLLATE NOCASE");
    sqlite3_bind_text(st, 1, unique_name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) return 0;
    snprintf(id, 37, "%s", sqlite3_column_text(st, 0));
    return 1;
}

/* A string member of the request body, malloc'd; NULL when absent or not a string. */
static char *body_string(emu_req *r, const char *member)
{
    sqlite3_stmt *st = store_stmt(r->emu, "SELECT json_extract(?1, ?2) WHERE json_valid(?1)");
    char path[64];
    snprintf(path, sizeof path, "$.%s", member);
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return v;
}

static int import_def(emu_req *r, const dv_solution_def *def, char sol_id[37])
{
    dv_emulator *e = r->emu;
    char err[512];
    if (!def->unique_name || !*def->unique_name)
        return emu_error(r, 400, BAD_ARG, "The solution file has no UniqueName in solution.xml.");
    if (store_begin(e)) return emu_error(r, 503, "0x80040216", "The store is busy.");
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
    sb_printf(&row, ",\"ismanaged\":%s", def->managed ? "true" : "false");
    int rc = 0;
    if (find_solution(e, def->unique_name, sol_id)) {
        emu_entity *sols = store_by_logical(e, "solution", 8);
        char *have = NULL;
        int was_managed = 0;
        if (store_row_get(e, sols, sol_id, &have, NULL)) {
            sqlite3_stmt *q = store_stmt(e, "SELECT json_extract(?1, '$.ismanaged'), "
                                            "json_extract(?1, '$.installedon')");
            sqlite3_bind_text(q, 1, have, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) == SQLITE_ROW) {
                was_managed = sqlite3_column_int(q, 0);
                const unsigned char *since = sqlite3_column_text(q, 1);
                if (since) snprintf(ts, sizeof ts, "%s", (const char *)since);
            }
            sqlite3_reset(q);
            free(have);
        }
        if (was_managed && !def->managed) {
            sb_free(&row);
            return emu_error(r, 400, IMPORT_MANAGED_TO_UNMANAGED,
                             "Solution '%s' already exists in this system as managed and cannot "
                             "be upgraded.",
                             def->unique_name);
        }
        if (!was_managed && def->managed) {
            sb_free(&row);
            return emu_error(r, 400, IMPORT_UNMANAGED_TO_MANAGED,
                             "The solution is already installed on this system as an unmanaged "
                             "solution and the package supplied is attempting to install it in "
                             "managed mode. Import can only update solutions when the modes "
                             "match. Uninstall the current solution and try again.");
        }
        /* An update: same solution, new version; its layer keeps its place. */
        sb_printf(&row, ",\"installedon\":\"%s\"}", ts);
        fieldset fs = {0};
        rc = body_fields(r, st, sb_str(&row), row.n, &fs);
        if (!rc) rc = write_row(r, st, sol_id, &fs, 1);
        fs_free(&fs);
    } else {
        sb_printf(&row, ",\"installedon\":\"%s\"}", ts);
        rc = rows_create_json(r, st, sb_str(&row), sol_id);
    }
    sb_free(&row);
    if (rc) return -1;
    rc = comp_import(e, def, sol_id, emu_now(e), err, sizeof err);
    if (rc == COMP_MISSING)
        return emu_error(r, 400, IMPORT_MISSING_DEPENDENCIES,
                         "The following solution cannot be imported: %s. Some dependencies are "
                         "missing. (%s)",
                         def->unique_name, err);
    if (rc)
        return emu_error(r, 400, IMPORT_GENERIC, "The import of solution %s failed: %s.",
                         def->unique_name, err);
    if (store_commit(e)) return emu_error(r, 500, "0x80040216", "The import could not commit.");
    store_reload(e);
    r->status = 204;
    return 0;
}

/* The import log Dataverse keeps in importjob.data, reduced to what the emulator knows: the
 * solution's result and one entry per table. */
static void import_log(sbuf *b, const dv_solution_def *def, const char *unique_name, int ok,
                       const char *message, const char *ts)
{
    sb_printf(b, "<importexportxml start=\"%s\" stop=\"%s\" progress=\"%s\" processed=\"true\">",
              ts, ts, ok ? "100" : "0");
    sb_puts(b, "<solutionManifests><solutionManifest languagecode=\"1033\" id=\"");
    sb_xml_str(b, unique_name ? unique_name : "");
    sb_puts(b, "\" LocalizedName=\"");
    sb_xml_str(b, def && def->friendly_name ? def->friendly_name : unique_name ? unique_name : "");
    sb_puts(b, "\" version=\"");
    sb_xml_str(b, def && def->version ? def->version : "");
    sb_printf(b, "\" processed=\"true\"><UniqueName>");
    sb_xml_str(b, unique_name ? unique_name : "");
    sb_printf(b, "</UniqueName><result result=\"%s\" errorcode=\"%s\" errortext=\"",
              ok ? "success" : "failure", ok ? "0" : BAD_ARG);
    sb_xml_str(b, ok ? "" : message);
    sb_printf(b, "\" datetime=\"%s\" /></solutionManifest></solutionManifests><entities>", ts);
    for (int i = 0; def && i < def->n_entities; i++) {
        const dv_entity_def *d = &def->entities[i];
        sb_puts(b, "<entity id=\"");
        sb_xml_str(b, d->logical_name);
        sb_puts(b, "\" LocalizedName=\"");
        sb_xml_str(b, d->display_name ? d->display_name : d->logical_name);
        sb_printf(b,
                  "\" processed=\"true\"><result result=\"%s\" errorcode=\"0\" errortext=\"\" "
                  "datetime=\"%s\" /></entity>",
                  ok ? "success" : "failure", ts);
    }
    sb_printf(b, "</entities><result result=\"%s\" errorcode=\"%s\" errortext=\"",
              ok ? "success" : "failure", ok ? "0" : BAD_ARG);
    sb_xml_str(b, ok ? "" : message);
    sb_printf(b, "\" datetime=\"%s\" /></importexportxml>", ts);
}

/* The error message of the answer r holds (a failed import), malloc'd. */
static char *answer_message(emu_req *r)
{
    sqlite3_stmt *st = store_stmt(r->emu, "SELECT json_extract(?1, '$.error.message')");
    sqlite3_bind_text(st, 1, sb_str(&r->out), (int)r->out.n, SQLITE_TRANSIENT);
    char *m = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        m = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return m ? m : strdup("The import failed.");
}

/* Records the import job, in its own transaction so that a failed import leaves one too. The
 * answer in r is kept. */
static void record_job(emu_req *r, const char *job_id, const dv_solution_def *def,
                       const char *sol_id, double started)
{
    dv_emulator *e = r->emu;
    int ok = r->status == 204;
    char *message = ok ? NULL : answer_message(r);
    char t0[32], t1[32];
    time_iso(started, t0);
    time_iso(emu_now(e), t1);
    const char *uname = def && def->unique_name ? def->unique_name : NULL;
    sbuf log = {0}, row = {0};
    import_log(&log, def, uname, ok, message, t1);
    sb_printf(&row,
              "{\"importjobid\":\"%s\",\"name\":\"Customizations\",\"solutionname\":", job_id);
    sb_json_str(&row, uname);
    if (ok && sol_id) sb_printf(&row, ",\"solutionid\":\"%s\"", sol_id);
    sb_printf(&row, ",\"progress\":%d,\"startedon\":\"%s\",\"completedon\":\"%s\",\"data\":",
              ok ? 100 : 0, t0, t1);
    sb_json_str(&row, sb_str(&log));
    sb_putc(&row, '}');
    /* The job is written with a scratch answer so that the import's own answer survives. */
    emu_req scratch = *r;
    memset(&scratch.out, 0, sizeof scratch.out);
    scratch.n_hdr = 0;
    scratch.status = 0;
    emu_entity *jobs = store_by_logical(e, "importjob", 9);
    char id[37];
    if (jobs && store_begin(e) == 0) {
        /* A reused ImportJobId describes the latest import. */
        int rc = store_row_get(e, jobs, job_id, NULL, NULL)
                     ? store_row_delete(e, jobs, job_id, emu_now(e))
                     : 0;
        if (rc || rows_create_json(&scratch, jobs, sb_str(&row), id) || store_commit(e))
            store_rollback(e);
    }
    sb_free(&scratch.out);
    for (int i = 0; i < scratch.n_hdr; i++)
        free(scratch.hdr_name[i]), free(scratch.hdr_val[i]);
    sb_free(&log);
    sb_free(&row);
    free(message);
}

/* Runs an import; the job id goes to job_id (the request's ImportJobId or a new one). */
static int import_request(emu_req *r, char job_id[37])
{
    dv_emulator *e = r->emu;
    double started = emu_now(e);
    if (!dv_solution_parse_zip)
        return emu_error(r, 501, BAD_ARG, "ImportSolution is not available in this build.");
    char *given = body_string(r, "ImportJobId");
    if (given && !guid_valid(given, strlen(given))) {
        emu_error(r, 400, BAD_ARG, "ImportJobId '%.60s' is not a GUID.", given);
        free(given);
        return -1;
    }
    if (given) {
        snprintf(job_id, 37, "%s", given);
        for (char *p = job_id; *p; p++)
            if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
        free(given);
    } else {
        guid_new(job_id);
    }
    char *b64 = body_string(r, "CustomizationFile");
    if (!b64 || !*b64) {
        free(b64);
        return emu_error(r, 400, BAD_ARG,
                         "ImportSolution needs CustomizationFile: the solution zip in base64.");
    }
    size_t len;
    unsigned char *zip = base64_decode(b64, strlen(b64), &len);
    free(b64);
    if (!zip) return emu_error(r, 400, BAD_ARG, "CustomizationFile is not valid base64.");
    dv_solution_def def;
    memset(&def, 0, sizeof def);
    char err[512] = "", sol_id[37] = "";
    int rc = dv_solution_parse_zip(zip, len, &def, err, sizeof err);
    free(zip);
    if (rc == DV_SOLUTION_ERR_ARCHIVE) {
        emu_error(r, 400, IMPORT_BAD_ZIP,
                  "The solution file is invalid. The compressed file must contain the following "
                  "files at its root: solution.xml, customizations.xml, and [Content_Types].xml. "
                  "(%s)",
                  err);
    } else if (rc == DV_SOLUTION_ERR_XML) {
        emu_error(r, 400, IMPORT_NOT_WELL_FORMED,
                  "Invalid customization file. This file is not well formed. (%s)", err);
    } else if (rc) {
        emu_error(r, 400, IMPORT_XSD,
                  "The import file is invalid. XSD validation failed with the following error: "
                  "'%s'.",
                  err);
    } else {
        rc = import_def(r, &def, sol_id);
        if (rc) {
            store_rollback(e);
            store_reload(e);
        }
    }
    record_job(r, job_id, rc ? (def.unique_name ? &def : NULL) : &def, sol_id, started);
    if (dv_solution_def_free) dv_solution_def_free(&def);
    return rc;
}

int h_import_solution(emu_req *r)
{
    char job_id[37];
    return import_request(r, job_id);
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
    char id[37], err[256];
    snprintf(id, sizeof id, "%s", solution_id);
    /* An unmanaged solution's components stay: they belong to the organization. What was
     * created over the Web API in a managed one goes first, then the solution's layer. */
    if (managed && (mdx_drop_solution(e, id) || comp_uninstall(e, id, err, sizeof err))) {
        store_rollback(e);
        store_reload(e);
        return emu_error(r, 500, "0x80040216", "The uninstall failed: %s.",
                         *err ? err : "the definitions could not be removed");
    }
    if (store_row_delete(e, sol, id, emu_now(e)) || store_commit(e)) {
        store_rollback(e);
        store_reload(e);
        return emu_error(r, 500, "0x80040216", "The uninstall failed.");
    }
    store_reload(e);
    r->status = 204;
    return 0;
}

int h_import_solution_async(emu_req *r)
{
    dv_emulator *e = r->emu;
    char job_id[37] = "";
    import_request(r, job_id);
    int ok = r->status == 204;
    if (!job_id[0]) return -1; /* refused before there was a job: the answer says why */
    char *message = ok ? NULL : answer_message(r);
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
    char job[37];
    int rc = -1;
    if (jobs && store_begin(e) == 0) {
        rc = rows_create_json(r, jobs, sb_str(&row), job);
        if (rc == 0 && store_commit(e)) rc = emu_error(r, 500, "0x80040216", "The commit failed.");
        if (rc) store_rollback(e);
    }
    sb_free(&row);
    if (rc) return r->status ? -1 : emu_error(r, 500, "0x80040216", "The job was not recorded.");
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM."
              "ImportSolutionAsyncResponse\",\"AsyncOperationId\":\"%s\",\"ImportJobKey\":\"%s\"}",
              r->base, job, job_id);
    return 0;
}
