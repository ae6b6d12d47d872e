#include "functions.h"

#include <stdio.h>
#include <string.h>

#include "request.h"
#include "store.h"

#define RTRC "RetrieveTotalRecordCount"
#define MAX_NAMES 64

#define RV "RetrieveVersion"

static int named(const char *path, const char *name)
{
    size_t n = strlen(name);
    return strncmp(path, name, n) == 0 && (path[n] == '(' || path[n] == '\0');
}

int emu_is_function(const char *path)
{
    return named(path, RTRC) || named(path, RV);
}

/* The text of parameter name in "(A=x,B=y)", resolving a parameter alias ("@p") from the
 * query string. Returns a pointer into the path or the query value, *len set; NULL if absent. */
static const char *param(emu_req *r, const char *args, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = args;
    while (p && *p) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            int depth = 0;
            const char *e = v;
            while (*e && !(depth == 0 && (*e == ',' || *e == ')'))) {
                if (*e == '[') depth++;
                if (*e == ']') depth--;
                e++;
            }
            if (*v == '@') {
                char alias[64];
                snprintf(alias, sizeof alias, "%.*s", (int)(e - v), v);
                const char *q = emu_arg(r, alias);
                if (q) *len = strlen(q);
                return q;
            }
            *len = (size_t)(e - v);
            return v;
        }
        p = strchr(p, ',');
        if (p) p++;
    }
    return NULL;
}

/* Splits ['a','b'] or ["a","b"] into names (pointers into a copy in buf). Returns the count,
 * or -1 when the text is not a list of quoted names. */
static int parse_names(const char *v, size_t len, char *buf, size_t bufsz, const char **names)
{
    if (len < 2 || len >= bufsz || v[0] != '[' || v[len - 1] != ']') return -1;
    memcpy(buf, v + 1, len - 2);
    buf[len - 2] = 0;
    int n = 0;
    char *p = buf;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p) break;
        char q = *p;
        if (q != '\'' && q != '"') return -1;
        char *s = ++p;
        while (*p && *p != q)
            p++;
        if (!*p || n == MAX_NAMES) return -1;
        *p++ = 0;
        names[n++] = s;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

static int count_rows(dv_emulator *e, const char *logical, long long *out)
{
    sqlite3_stmt *st = store_rows_stmt(e, logical, "SELECT count(*) FROM row WHERE entity=?1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, logical, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) return -1;
    *out = sqlite3_column_int64(st, 0);
    return 0;
}

/* Dataverse answers from a snapshot refreshed in the background (up to 24 hours old); the
 * emulator counts the rows as they are now (docs/EMULATOR.md). */
static int retrieve_total_record_count(emu_req *r, const char *path)
{
    const char *open = strchr(path, '(');
    size_t len = 0;
    const char *v = open ? param(r, open + 1, "EntityNames", &len) : NULL;
    if (!v)
        return emu_error(r, 400, "0x80060888",
                         "The parameter 'EntityNames' of the function '" RTRC "' is missing.");
    char buf[4096];
    const char *names[MAX_NAMES];
    int n = parse_names(v, len, buf, sizeof buf, names);
    if (n < 0)
        return emu_error(r, 400, "0x80060888",
                         "The value of 'EntityNames' must be a list of table logical names, "
                         "such as ['account','contact'].");
    long long counts[MAX_NAMES];
    for (int i = 0; i < n; i++) {
        if (!store_by_logical(r->emu, names[i], strlen(names[i])))
            return emu_error(r, 404, "0x80040217", "Could not find an entity with the name '%s'.",
                             names[i]);
        if (count_rows(r->emu, names[i], &counts[i]))
            return emu_error(r, 500, "0x80040216", "The store could not count the rows.");
    }
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM."
              "RetrieveTotalRecordCountResponse\",\"EntityRecordCountCollection\":"
              "{\"Count\":%d,\"IsReadOnly\":false,\"Keys\":[",
              r->base, n);
    for (int i = 0; i < n; i++) {
        if (i) sb_putc(&r->out, ',');
        sb_json_str(&r->out, names[i]);
    }
    sb_puts(&r->out, "],\"Values\":[");
    for (int i = 0; i < n; i++)
        sb_printf(&r->out, "%s%lld", i ? "," : "", counts[i]);
    sb_puts(&r->out, "]}}");
    return 0;
}

/* The service's version; the number is the emulator's own (real ones look like
 * 9.2.24074.00200), of the v9.2 Web API it serves. */
static int retrieve_version(emu_req *r, const char *path)
{
    if (strcmp(path, RV) != 0 && strcmp(path, RV "()") != 0)
        return emu_error(r, 400, "0x80060888", "The function '" RV "' takes no parameters.");
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM.RetrieveVersionResponse\","
              "\"Version\":\"9.2.0.0\"}",
              r->base);
    return 0;
}

int h_function(emu_req *r, const char *path)
{
    int rv = named(path, RV);
    if (strcmp(r->method, "GET") != 0)
        return emu_error(r, 405, "0x80060888", "%s is a function: use GET.", rv ? RV : RTRC);
    return rv ? retrieve_version(r, path) : retrieve_total_record_count(r, path);
}
