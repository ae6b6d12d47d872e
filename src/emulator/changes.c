/* Change tracking: the odata.track-changes preference, delta tokens with retention, and
 * pages of changed rows then deletions. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "changes.h"
#include "clock.h"
#include "emu_internal.h"
#include "row_select.h"
#include "store.h"

#define TOKEN_EXPIRED "0x80044352"

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
        sqlite3_stmt *st = store_row_stmt(
            r->emu, t,
            part == 0 ? "SELECT ver, id, data FROM row WHERE entity=?1 AND ver > ?2 AND "
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
    if (parse_token(tok, from, &when) || *from > store_version_ceiling(e))
        /* Not echoed: a token read from a file by mistake may hold anything, secrets too. */
        return emu_error(r, 400, BAD_QUERY, "The delta token is not valid.");
    double now = emu_now(e);
    /* A token older than the retention may need tombstones that are gone (deletes purge
     * them, store_row_delete): it expires. A younger one never does. */
    if (now - when > e->retention)
        return emu_error(r, 400, TOKEN_EXPIRED,
                         "Version stamp associated with the client has expired. Please perform a "
                         "full sync.");
    return 0;
}

int h_changes(emu_req *r, emu_entity *t, int count_only)
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
    int64_t to = store_current_version(r->emu, t);
    double now = emu_now(r->emu);
    if (!dtok) return ct_page(r, t, 0, 0, to, now, 0, 0);
    int64_t from = 0;
    if (ct_check_token(r, dtok, &from)) return -1;
    if (count_only) {
        sqlite3_stmt *st = store_row_stmt(
            r->emu, t,
            "SELECT (SELECT count(*) FROM row WHERE entity=?1 AND ver > ?2 AND ver <= ?3)"
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
