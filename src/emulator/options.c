#include "request.h"
#include "options.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

/* Options a collection or row path may carry; the handlers below apply each or refuse it. */
static const char *const served[] = {"$select",  "$filter",    "$orderby",    "$top",   "$count",
                                     "$expand",  "$skiptoken", "$deltatoken", "$apply", "$skip",
                                     "fetchXml", "tag",        NULL};
/* Documented, not served: refused with 501 instead of being ignored. */
static const char *const unserved[] = {
    "$search", "$format",    "$compute",  "$index", "$levels", "$schemaversion",
    "$id",     "savedQuery", "userQuery", "sql",    NULL};

typedef struct {
    emu_req *r;
    int rc;
} walk;

static int in(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

/* Functions called inside $filter ("Microsoft.Dynamics.CRM.In(", "any(") that the query
 * compiler does not know: named in a 501 rather than reported as a syntax error. */
static int unserved_function(emu_req *r, const char *opt, const char *v)
{
    int q = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '\'') q = !q;
        if (q) continue;
        if (strncmp(p, "Microsoft.Dynamics.CRM.", 23) == 0) {
            const char *e = p + 23;
            while (isalnum((unsigned char)*e) || *e == '_')
                e++;
            if (*e == '(')
                return emu_error(r, 501, BAD_QUERY, "not served: the query function %.*s in %s.",
                                 (int)(e - p), p, opt);
        }
        if ((strncmp(p, "/any(", 5) == 0 || strncmp(p, "/all(", 5) == 0))
            return emu_error(r, 501, BAD_QUERY, "not served: the lambda operator %.3s in %s.",
                             p + 1, opt);
    }
    return 0;
}

static enum MHD_Result visit(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    walk *w = cls;
    if (w->rc) return MHD_NO;
    if (key[0] == '@') return MHD_YES; /* parameter aliases */
    if (in(unserved, key)) {
        w->rc = emu_error(w->r, 501, BAD_QUERY, "not served: the %s query option%s.", key,
                          strcmp(key, "sql") == 0 ? " (Dataverse's SQL query preview)" : "");
        return MHD_NO;
    }
    if (!in(served, key)) {
        w->rc = emu_error(w->r, 400, BAD_QUERY, "The query parameter %s is not supported.", key);
        return MHD_NO;
    }
    if (value && (strcmp(key, "$filter") == 0 || strcmp(key, "$expand") == 0))
        w->rc = unserved_function(w->r, key, value);
    return w->rc ? MHD_NO : MHD_YES;
}

int emu_check_query_options(emu_req *r)
{
    walk w = {r, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, visit, &w);
    return w.rc ? -1 : 0;
}

const char *const emu_unserved_names[] = {
    "AddToQueue",
    "BulkDelete",
    "BulkDetectDuplicates",
    "CalculateRollupField",
    "CloneAsPatch",
    "CloneAsSolution",
    "CommitAnnotationBlocksUpload",
    "CommitFileBlocksUpload",
    "CreateMultiple",
    "DeleteAndPromote",
    "DeleteAndPromoteAsync",
    "DeleteMultiple",
    "DownloadBlock",
    "ExecuteCosmosSqlQuery",
    "ExportSolution",
    "ExportSolutionAsync",
    "ExportTranslation",
    "GrantAccess",
    "ImportTranslation",
    "InitializeAnnotationBlocksUpload",
    "InitializeFileBlocksDownload",
    "InitializeFileBlocksUpload",
    "InitializeFrom",
    "InstantiateTemplate",
    "ManagedPropertyDefinitions",
    "Merge",
    "ModifyAccess",
    "PublishAllXml",
    "PublishAllXmlAsync",
    "PublishXml",
    "QualifyLead",
    "RetrieveCurrentOrganization",
    "RetrieveDuplicates",
    "RetrieveMetadataChanges",
    "RetrievePrincipalAccess",
    "RetrieveSharedPrincipalsAndAccess",
    "RetrieveTotalRecordCount",
    "RetrieveUserQueues",
    "RetrieveVersion",
    "RevokeAccess",
    "SendEmail",
    "StageAndUpgrade",
    "StageAndUpgradeAsync",
    "StageSolution",
    "UninstallSolutionAsync",
    "UpdateMultiple",
    "UploadBlock",
    "UpsertMultiple",
    "ValidateFetchXmlExpression",
    NULL,
};

int emu_unserved_operation(emu_req *r, const char *path)
{
    const char *p = path;
    if (strncmp(p, "Microsoft.Dynamics.CRM.", 23) == 0) p += 23;
    size_t n = strcspn(p, "(/");
    for (int i = 0; emu_unserved_names[i]; i++)
        if (strlen(emu_unserved_names[i]) == n && strncmp(emu_unserved_names[i], p, n) == 0) {
            emu_error(r, 501, BAD_QUERY, "not served: %.*s (a Dataverse Web API %s).", (int)n, p,
                      strcmp(emu_unserved_names[i], "ManagedPropertyDefinitions") == 0
                          ? "entity set"
                          : "operation");
            return 1;
        }
    return 0;
}

int emu_not_allowed(emu_req *r, const char *what, const char *allowed)
{
    emu_add_header(r, "Allow", allowed);
    return emu_error(r, 405, BAD_QUERY, "The HTTP method '%s' is not allowed on %s (allowed: %s).",
                     r->method, what, allowed);
}
