#include "request.h"
#include "options.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Options a collection or row path may carry; the handlers below apply each or refuse it. */
static const char *const served[] = {"$select",  "$filter",    "$orderby",    "$top",   "$count",
                                     "$expand",  "$skiptoken", "$deltatoken", "$apply", "$skip",
                                     "fetchXml", "tag",        NULL};
/* Documented, not served: refused with 501 instead of being ignored. ($search and $format
 * are OData options Dataverse itself refuses ("Query data using the Web API"): they get its
 * 400 like any other unsupported option.) */
static const char *const unserved[] = {"$compute",       "$index", "$levels",
                                       "$schemaversion", "$id",    "savedQuery",
                                       "userQuery",      "sql",    NULL};

static int in(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

/* The lambda operators any/all inside $filter or $expand, which the query compiler does not
 * know: named in a 501 rather than reported as a syntax error. (Query functions such as
 * Microsoft.Dynamics.CRM.In are the compiler's: served, or refused as not served.) */
static int unserved_lambda(emu_req *r, const char *opt, const char *v)
{
    int q = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '\'') q = !q;
        if (q) continue;
        if ((strncmp(p, "/any(", 5) == 0 || strncmp(p, "/all(", 5) == 0))
            return emu_error(r, 501, BAD_QUERY, "not served: the lambda operator %.3s in %s.",
                             p + 1, opt);
    }
    return 0;
}

static int check_one(emu_req *r, const char *key, const char *value)
{
    if (key[0] == '@') return 0; /* parameter aliases */
    if (in(unserved, key))
        return emu_error(r, 501, BAD_QUERY, "not served: the %s query option%s.", key,
                         strcmp(key, "sql") == 0 ? " (Dataverse's SQL query preview)" : "");
    if (!in(served, key))
        return emu_error(r, 400, BAD_QUERY, "The query parameter %s is not supported.", key);
    if (value && (strcmp(key, "$filter") == 0 || strcmp(key, "$expand") == 0))
        return unserved_lambda(r, key, value);
    return 0;
}

int emu_check_query_options(emu_req *r)
{
    /* Read through the request layer, which also knows a $batch part's arguments. */
    sbuf all = {0};
    emu_args_except(r, &all, NULL);
    char *s = all.p;
    int rc = 0;
    while (s && *s && rc == 0) {
        char *amp = strchr(s, '&');
        if (amp) *amp = 0;
        char *eq = strchr(s, '=');
        if (eq) *eq = 0;
        url_decode(s, 1);
        if (eq) url_decode(eq + 1, 1);
        rc = check_one(r, s, eq ? eq + 1 : NULL);
        s = amp ? amp + 1 : NULL;
    }
    sb_free(&all);
    return rc ? -1 : 0;
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
    "DeleteAndPromote",
    "DeleteAndPromoteAsync",
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
    "RetrieveUserQueues",
    "RetrieveVersion",
    "RevokeAccess",
    "SendEmail",
    "StageAndUpgrade",
    "StageAndUpgradeAsync",
    "StageSolution",
    "UninstallSolutionAsync",
    "UploadBlock",
    "ValidateFetchXmlExpression",
    NULL,
};

int emu_unserved_operation(emu_req *r, const char *path)
{
    /* An operation bound to a collection or a row (`accounts(<id>)/Microsoft.Dynamics.CRM.X`)
     * that no handler before this took: named, not reported as an unknown property. */
    const char *bound = strstr(path, "/Microsoft.Dynamics.CRM.");
    if (bound) {
        const char *op = bound + 24;
        emu_error(r, 501, BAD_QUERY,
                  "not served: %.*s bound to '%.*s' (a Dataverse Web API "
                  "operation).",
                  (int)strcspn(op, "(/"), op, (int)(bound - path), path);
        return 1;
    }
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
