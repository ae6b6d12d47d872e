/* Dispatch of Web API paths (after "/api/data/v9.x/") and methods to the handlers. */
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "bulk.h"
#include "changes.h"
#include "csdl.h"
#include "emu_internal.h"
#include "functions.h"
#include "metadata.h"
#include "options.h"
#include "queries.h"
#include "row_address.h"
#include "row_select.h"
#include "router.h"
#include "rows.h"
#include "solutions.h"
#include "store.h"

/* Deleting a solution's row uninstalls the solution. */
static int delete_solution(emu_req *r, emu_entity *t, const address *a)
{
    char id[37];
    if (!find_row(r, t, a, id)) return not_found(r, t, a);
    return h_uninstall_solution(r, id);
}

/* `<set>…` paths: collections, change tracking, single rows and their columns. */
static int route_rows(emu_req *r, const char *path)
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
                return h_changes(r, t, count_only);
            return h_query_rows(r, t, count_only);
        }
        if (!strcmp(m, "POST") && !count_only) return h_row_post(r, t);
        return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on '%s'.", m,
                         path);
    }
    if (*p != '(')
        return emu_error(r, 404, BAD_QUERY, "Resource not found for the segment '%s'.", path);
    address a;
    const char *end = NULL;
    if (parse_address(r, t, p + 1, &end, &a)) return -1;
    int rc;
    if (*end == '/' && end[1] != '$' && end[1]) {
        rc = h_row_property(r, t, &a, end + 1);
    } else if (*end) {
        rc = emu_error(r, 501, BAD_QUERY, "The path '%s' is not served by the dvlua emulator.",
                       path);
    } else if (!strcmp(m, "GET")) {
        rc = h_row_get(r, t, &a);
    } else if (!strcmp(m, "PATCH")) {
        rc = h_row_patch(r, t, &a);
    } else if (!strcmp(m, "DELETE")) {
        rc = strcmp(t->def.logical_name, "solution") == 0 ? delete_solution(r, t, &a)
                                                          : h_row_delete(r, t, &a);
    } else {
        rc = emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on a record.", m);
    }
    keyvals_free(&a.kv);
    return rc;
}

/* Each part of a $batch comes back through the router: the batch handler never calls up. */
static int batch_dispatch(emu_req *sub, const char *path, void *ud)
{
    (void)ud;
    return router_route(sub, path);
}

int router_route(emu_req *r, const char *rest)
{
    dv_emulator *e = r->emu;
    if (emu_check_query_options(r)) return -1;
    if (!*rest || strcmp(rest, "/") == 0) {
        if (strcmp(r->method, "GET") != 0) return emu_not_allowed(r, "the service document", "GET");
        emu_json(r, 200);
        sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata\",\"value\":[", r->base);
        for (int i = 0; i < e->n_ents; i++) {
            const char *s = e->ents[i].def.entity_set_name;
            sb_printf(&r->out, "%s{\"name\":\"%s\",\"kind\":\"EntitySet\",\"url\":\"%s\"}",
                      i ? "," : "", s, s);
        }
        sb_puts(&r->out, "]}");
        return 0;
    }
    if (strcmp(rest, "WhoAmI") == 0 || strcmp(rest, "WhoAmI()") == 0) {
        if (strcmp(r->method, "GET") != 0) return emu_not_allowed(r, "WhoAmI (a function)", "GET");
        return h_whoami(r);
    }
    if (strncmp(rest, "EntityDefinitions", 17) == 0 && (!rest[17] || strchr("(/", rest[17])))
        return h_metadata(r, rest);
    if (strncmp(rest, "RelationshipDefinitions", 23) == 0 && (!rest[23] || strchr("(/", rest[23])))
        return h_relationship_defs(r, rest);
    if (strncmp(rest, "GlobalOptionSetDefinitions", 26) == 0 &&
        (!rest[26] || strchr("(/", rest[26])))
        return h_optionset_defs(r, rest);
    if (strcmp(rest, "ImportSolution") == 0) {
        if (strcmp(r->method, "POST") != 0)
            return emu_not_allowed(r, "ImportSolution (an action)", "POST");
        return h_import_solution(r);
    }
    if (strcmp(rest, "ImportSolutionAsync") == 0) {
        if (strcmp(r->method, "POST") != 0)
            return emu_not_allowed(r, "ImportSolutionAsync (an action)", "POST");
        return h_import_solution_async(r);
    }
    if (strcmp(rest, "ReactivateEntityKey") == 0) return h_reactivate_key(r, NULL, NULL);
    if (strcmp(rest, "$metadata") == 0) return h_csdl(r);
    if (emu_is_function(rest)) return h_function(r, rest);
    if (strcmp(rest, "$batch") == 0) return h_batch(r, batch_dispatch, NULL);
    const char *bound = strstr(rest, "/Microsoft.Dynamics.CRM.");
    if (bound && !strchr(bound + 1, '/') && memchr(rest, '(', (size_t)(bound - rest)) == NULL)
        return h_bulk(r, rest, (size_t)(bound - rest), bound + 24);
    if (strncmp(rest, "$metadata", 9) == 0)
        return emu_error(r, 501, "0x80060888", "'%s' is not served by the dvlua emulator.", rest);
    if (emu_unserved_operation(r, rest)) return -1;
    return route_rows(r, rest);
}
