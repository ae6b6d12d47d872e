#include "request.h"
#include "clock.h"
#include "metadata_write.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metadata_json.h"
#include "metadata_store.h"
#include "store.h"

#define BAD_ARG "0x80040203"
#define DUP_ATTR "0x80047013" /* DuplicateAttributeSchemaName */
#define BUSY "0x80040216"

/* ---- body helpers ---- */

static char *jstr(emu_req *r, const char *json, const char *path)
{
    return mdx_str(r->emu, json, path);
}

static int jbool(emu_req *r, const char *json, const char *path, int def)
{
    return (int)mdx_int(r->emu, json, path, def);
}

static int jhas(emu_req *r, const char *json, const char *path)
{
    char t[16];
    return mdx_type(r->emu, json, path, t)[0] != 0 && strcmp(t, "null") != 0;
}

/* The first label text of a Label property (LocalizedLabels[0] or UserLocalizedLabel). */
static char *jlabel(emu_req *r, const char *json, const char *prop)
{
    char path[200];
    snprintf(path, sizeof path, "$.%s.LocalizedLabels[0].Label", prop);
    char *s = jstr(r, json, path);
    if (s) return s;
    snprintf(path, sizeof path, "$.%s.UserLocalizedLabel.Label", prop);
    return jstr(r, json, path);
}

/* A sub-object as JSON text (malloc'd), or NULL. */
static char *jobj(emu_req *r, const char *json, const char *path)
{
    sqlite3_stmt *st = store_stmt(r->emu, "SELECT json_extract(?1, ?2) WHERE json_valid(?1) "
                                          "AND json_type(?1, ?2) = 'object'");
    sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return out;
}

/* The members of json named in keys (a JSON array text), as a JSON object (malloc'd). */
static char *jpick(emu_req *r, const char *json, const char *keys)
{
    sqlite3_stmt *st = store_stmt(
        r->emu,
        "SELECT coalesce(json_group_object(j.key, CASE j.type WHEN 'true' THEN json('true') "
        "WHEN 'false' THEN json('false') WHEN 'object' THEN json(j.value) "
        "WHEN 'array' THEN json(j.value) ELSE j.value END), '{}') "
        "FROM json_each(?1) j WHERE j.key IN (SELECT value FROM json_each(?2))");
    sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, keys, -1, SQLITE_TRANSIENT);
    char *out = strdup(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)
                           ? (const char *)sqlite3_column_text(st, 0)
                           : "{}");
    sqlite3_reset(st);
    return out;
}

/* json_patch(a, b) (malloc'd). */
static char *jmerge(emu_req *r, const char *a, const char *b)
{
    sqlite3_stmt *st =
        store_stmt(r->emu, "SELECT json_patch(coalesce(?1,'{}'), coalesce(?2,'{}'))");
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    char *out = strdup(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)
                           ? (const char *)sqlite3_column_text(st, 0)
                           : "{}");
    sqlite3_reset(st);
    return out;
}

static int body_object(emu_req *r)
{
    char t[16];
    if (!r->body_len || strcmp(mdx_type(r->emu, r->body, "$", t), "object") != 0)
        return emu_error(r, 400, BAD_ARG, "The request body must be a JSON object.");
    return 0;
}

/* The odata type's name without "#Microsoft.Dynamics.CRM." into out; "" when absent. */
static void odata_type(emu_req *r, const char *json, char *out, size_t cap)
{
    char *t = jstr(r, json, "$.\"@odata.type\"");
    const char *s = t ? t : "";
    if (*s == '#') s++;
    if (!strncmp(s, "Microsoft.Dynamics.CRM.", 23)) s += 23;
    snprintf(out, cap, "%s", s);
    free(t);
}

/* A schema name with a customization prefix ("new_BankAccount"); its lowercase form to out. */
static int schema_ok(const char *s, char *logical, size_t cap)
{
    if (!s || !*s || strlen(s) >= cap || strlen(s) > 50) return 0;
    const char *us = strchr(s, '_');
    if (!us || us == s || !us[1]) return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_')) return 0;
    if (!isalpha((unsigned char)s[0])) return 0;
    size_t i = 0;
    for (; s[i]; i++)
        logical[i] = (char)tolower((unsigned char)s[i]);
    logical[i] = 0;
    return 1;
}

/* The solution named by MSCRM.SolutionUniqueName, into sol ("" without the header). */
static int solution_header(emu_req *r, char sol[37])
{
    sol[0] = 0;
    const char *h = emu_header(r, "MSCRM.SolutionUniqueName");
    if (!h || !*h) return 0;
    sqlite3_stmt *st = store_rows_stmt(r->emu, "solution",
                                       "SELECT id FROM row WHERE entity='solution' AND "
                                       "data->>'$.uniquename' = ?1 COLLATE NOCASE");
    sqlite3_bind_text(st, 1, h, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(sol, 37, "%s", sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (!sol[0])
        return emu_error(r, 404, NOT_FOUND,
                         "The solution '%s' named in MSCRM.SolutionUniqueName does not exist.", h);
    return 0;
}

static int solution_managed(emu_req *r, const char *sol)
{
    if (!sol || !*sol) return 0;
    sqlite3_stmt *st = store_rows_stmt(r->emu, "solution",
                                       "SELECT data->>'$.ismanaged' FROM row WHERE "
                                       "entity='solution' AND id=?1");
    sqlite3_bind_text(st, 1, sol, -1, SQLITE_TRANSIENT);
    int m = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return m;
}

static int begin(emu_req *r)
{
    if (store_begin(r->emu)) return emu_error(r, 503, BUSY, "The store is busy.");
    return 0;
}

/* Commits, reloads the definitions and answers 204, with OData-EntityId base+loc when loc
 * is given. */
static int done(emu_req *r, const char *loc)
{
    if (store_commit(r->emu)) {
        store_reload(r->emu);
        return emu_error(r, 500, BUSY, "The change could not be committed.");
    }
    store_reload(r->emu);
    if (loc) {
        char url[600];
        snprintf(url, sizeof url, "%s%s", r->base, loc);
        emu_add_header(r, "OData-EntityId", url);
    }
    r->status = 204;
    return 0;
}

static int fail(emu_req *r)
{
    store_rollback(r->emu);
    store_reload(r->emu);
    return -1;
}

/* Ends a change begun with begin() that has no new address to give: commits and answers 204
 * when its steps went through (rc 0), else rolls back and answers 500 with msg. */
static int finish(emu_req *r, int rc, const char *msg)
{
    if (!rc) return done(r, NULL);
    emu_error(r, 500, BUSY, "%s", msg);
    return fail(r);
}

/* Merges the definition properties of the request body that keys names into the stored
 * definition of kind entity/name, keeping its solution. */
static int merge_definition(emu_req *r, const char *kind, const char *entity, const char *name,
                            const char *keys)
{
    char sol[37];
    char *old = mdx_get(r->emu, kind, entity, name, sol);
    char *picked = jpick(r, r->body, keys);
    char *merged = jmerge(r, old, picked);
    int rc = mdx_put(r->emu, kind, entity, name, sol, merged);
    free(old), free(picked), free(merged);
    return rc;
}

/* The logical name of a key of t that column is part of, or NULL: such a column cannot be
 * deleted before the key. */
static const char *key_using(const emu_entity *t, const char *column)
{
    for (int i = 0; i < t->def.n_keys; i++)
        for (int j = 0; j < t->def.keys[i].n_attributes; j++)
            if (!strcmp(t->def.keys[i].attributes[j], column)) return t->def.keys[i].logical_name;
    return NULL;
}

/* ---- columns ---- */

static const char *attr_keys =
    "[\"SchemaName\",\"Description\",\"DisplayName\",\"Precision\",\"MinValue\",\"MaxValue\","
    "\"Format\",\"FormatName\",\"DateTimeBehavior\",\"DefaultValue\",\"ImeMode\","
    "\"IsAuditEnabled\",\"IsValidForAdvancedFind\",\"IsSecured\",\"PrecisionSource\","
    "\"IsLocalizable\",\"ExternalName\",\"IsCustomizable\",\"IsRenameable\","
    "\"DefaultFormValue\"]";

typedef struct {
    dv_attribute_def a;
    char logical[64];
    char *extras; /* JSON object kept in mdx */
} new_attr;

static void new_attr_free(new_attr *n)
{
    free(n->a.display_name);
    free(n->a.target);
    free(n->extras);
}

/* The Name of the global choice a bind names ("/GlobalOptionSetDefinitions(<id>)" or
 * "(Name='x')"), malloc'd; NULL after answering 400 when there is none. */
static char *global_choice_named(emu_req *r, const char *bind)
{
    const char *p = strstr(bind, "GlobalOptionSetDefinitions(");
    int n = 0;
    char **names = mdx_names(r->emu, MDX_OPTIONSET, &n);
    char *found = NULL;
    for (int i = 0; p && i < n && !found; i++) {
        mitem it = {MI_OPTIONSET, NULL, 0, 0, names[i]};
        char id[37], byname[300];
        mitem_id(&it, id);
        snprintf(byname, sizeof byname, "Name='%s')", names[i]);
        if (!strncasecmp(p + 27, id, 36) || !strcmp(p + 27, byname)) found = strdup(names[i]);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (!found) emu_error(r, 400, BAD_ARG, "No global choice matches '%s'.", bind);
    return found;
}

/* Reads a column definition (an AttributeMetadata object) for a new column. */
static int parse_attr(emu_req *r, const char *json, new_attr *out, int allow_lookup)
{
    memset(out, 0, sizeof *out);
    char type[80];
    odata_type(r, json, type, sizeof type);
    static const struct {
        const char *name;
        dv_attr_type t;
    } types[] = {
        {"StringAttributeMetadata", DV_ATTR_STRING},
        {"MemoAttributeMetadata", DV_ATTR_MEMO},
        {"IntegerAttributeMetadata", DV_ATTR_INTEGER},
        {"BigIntAttributeMetadata", DV_ATTR_BIGINT},
        {"DecimalAttributeMetadata", DV_ATTR_DECIMAL},
        {"DoubleAttributeMetadata", DV_ATTR_DOUBLE},
        {"MoneyAttributeMetadata", DV_ATTR_MONEY},
        {"BooleanAttributeMetadata", DV_ATTR_BOOLEAN},
        {"DateTimeAttributeMetadata", DV_ATTR_DATETIME},
        {"PicklistAttributeMetadata", DV_ATTR_PICKLIST},
        {"LookupAttributeMetadata", DV_ATTR_LOOKUP},
    };
    int found = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(types[i].name, type)) found = (int)i;
    if (!*type)
        return emu_error(r, 400, BAD_ARG,
                         "A column definition needs its @odata.type (for example "
                         "Microsoft.Dynamics.CRM.StringAttributeMetadata).");
    if (found < 0) {
        if (mtype_attr_cast(type, strlen(type)))
            return emu_error(r, 501, BAD_ARG, "not served: creating a column of type %s.", type);
        return emu_error(r, 400, BAD_ARG, "'%s' is not a column definition type.", type);
    }
    if (types[found].t == DV_ATTR_LOOKUP && !allow_lookup)
        return emu_error(r, 400, BAD_ARG,
                         "A lookup column is created with its relationship: POST a "
                         "OneToManyRelationshipMetadata to RelationshipDefinitions.");
    char *schema = jstr(r, json, "$.SchemaName");
    int ok = schema_ok(schema, out->logical, sizeof out->logical);
    if (!ok) {
        emu_error(r, 400, BAD_ARG,
                  "SchemaName '%s' is not valid: it needs a customization prefix (new_Name) and "
                  "only letters, digits and underscores, at most 50 characters.",
                  schema ? schema : "");
        free(schema);
        return -1;
    }
    free(schema);
    out->a.logical_name = out->logical;
    out->a.type = types[found].t;
    out->a.display_name = jlabel(r, json, "DisplayName");
    char *req = jstr(r, json, "$.RequiredLevel.Value");
    if (req && !strcmp(req, "SystemRequired")) {
        free(req);
        return emu_error(r, 400, BAD_ARG,
                         "RequiredLevel SystemRequired cannot be set on a custom column.");
    }
    out->a.required = req && !strcmp(req, "ApplicationRequired");
    free(req);
    static const char *numbers[] = {"$.MaxLength", "$.Precision", "$.MinValue", "$.MaxValue", NULL};
    for (int i = 0; numbers[i]; i++) {
        char jt[16];
        mdx_type(r->emu, json, numbers[i], jt);
        if (*jt && strcmp(jt, "integer") && strcmp(jt, "real") && strcmp(jt, "null"))
            return emu_error(r, 400, BAD_ARG, "%s of column '%s' must be a number.", numbers[i] + 2,
                             out->logical);
    }
    char ot[16];
    mdx_type(r->emu, json, "$.OptionSet.Options", ot);
    if (*ot && strcmp(ot, "array") && strcmp(ot, "null"))
        return emu_error(r, 400, BAD_ARG, "OptionSet.Options of column '%s' must be an array.",
                         out->logical);
    if (out->a.type == DV_ATTR_STRING || out->a.type == DV_ATTR_MEMO) {
        long long max = out->a.type == DV_ATTR_STRING ? 4000 : 1048576;
        long long len =
            mdx_int(r->emu, json, "$.MaxLength", out->a.type == DV_ATTR_STRING ? 100 : 2000);
        if (len < 1 || len > max)
            return emu_error(r, 400, BAD_ARG, "MaxLength %lld is out of range (1 to %lld).", len,
                             max);
        out->a.max_length = (int)len;
    }
    if (out->a.type == DV_ATTR_DECIMAL || out->a.type == DV_ATTR_MONEY ||
        out->a.type == DV_ATTR_DOUBLE) {
        long long p = mdx_int(r->emu, json, "$.Precision", 2);
        int maxp = out->a.type == DV_ATTR_DECIMAL ? 10 : out->a.type == DV_ATTR_MONEY ? 4 : 5;
        if (p < 0 || p > maxp)
            return emu_error(r, 400, BAD_ARG, "Precision %lld is out of range (0 to %d).", p, maxp);
    }
    char *global = NULL;
    if (jhas(r, json, "$.\"GlobalOptionSet@odata.bind\"") || jhas(r, json, "$.GlobalOptionSet")) {
        char *bind = jstr(r, json, "$.\"GlobalOptionSet@odata.bind\"");
        if (!bind || out->a.type != DV_ATTR_PICKLIST) {
            free(bind);
            return emu_error(r, 400, BAD_ARG,
                             "A choice column names its global choice with "
                             "GlobalOptionSet@odata.bind: \"/GlobalOptionSetDefinitions(<id>)\".");
        }
        global = global_choice_named(r, bind);
        free(bind);
        if (!global) return -1;
    }
    char *picked = jpick(r, json, attr_keys);
    char *extras = jmerge(r, picked, "{\"_created\":true}");
    free(picked);
    if (out->a.type == DV_ATTR_PICKLIST || out->a.type == DV_ATTR_BOOLEAN) {
        /* Options without a Value get the default publisher's numbering. */
        sqlite3_stmt *st = store_stmt(
            r->emu,
            "SELECT json_set(?2, '$._OptionSet', json_set(coalesce(json_extract(?1,'$.OptionSet'),"
            "'{}'), '$.Options', (SELECT json_group_array(CASE WHEN json_type(value,'$.Value') = "
            "'integer' THEN json(value) ELSE json_set(value, '$.Value', 100000000 + key) END) "
            "FROM json_each(?1, '$.OptionSet.Options'))))");
        sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, extras, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            free(extras);
            extras = strdup((const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_reset(st);
        if (out->a.type == DV_ATTR_PICKLIST) {
            /* Two options with one value would make rows ambiguous. */
            st = store_stmt(r->emu, "SELECT count(*) - count(DISTINCT value->>'$.Value') "
                                    "FROM json_each(?1, '$._OptionSet.Options')");
            sqlite3_bind_text(st, 1, extras, -1, SQLITE_TRANSIENT);
            int dup = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
            sqlite3_reset(st);
            if (dup) {
                free(extras);
                return emu_error(r, 400, BAD_ARG, "Two options of '%s' have the same Value.",
                                 out->logical);
            }
        }
    }
    if (global) {
        sqlite3_stmt *st = store_stmt(r->emu, "SELECT json_set(json_remove(?1, '$._OptionSet'), "
                                              "'$._GlobalOptionSet', ?2)");
        sqlite3_bind_text(st, 1, extras, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, global, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            free(extras);
            extras = strdup((const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_reset(st);
        free(global);
    }
    out->extras = extras;
    return 0;
}

/* Dataverse adds components to unmanaged solutions only; the emulator also lets a test
 * extend an installed managed solution, so that uninstalling it removes what was added
 * (documented in docs/EMULATOR.md). */
static int custom_solution_ok(emu_req *r, const char *sol)
{
    (void)r, (void)sol;
    return 0;
}

int mw_create_attr(emu_req *r, emu_entity *t)
{
    char sol[37];
    if (body_object(r) || solution_header(r, sol) || custom_solution_ok(r, sol)) return -1;
    new_attr n;
    if (parse_attr(r, r->body, &n, 0)) {
        new_attr_free(&n);
        return -1;
    }
    if (jbool(r, r->body, "$.IsPrimaryName", 0)) {
        new_attr_free(&n);
        return emu_error(r, 400, BAD_ARG,
                         "A table's primary name column is created with the table.");
    }
    if (store_attr(t, n.logical)) {
        emu_error(r, 400, DUP_ATTR,
                  "An attribute with the specified name already exists: '%s' on entity '%s'.",
                  n.logical, t->def.logical_name);
        new_attr_free(&n);
        return -1;
    }
    if (begin(r)) {
        new_attr_free(&n);
        return -1;
    }
    char ent[128];
    snprintf(ent, sizeof ent, "%s", t->def.logical_name);
    int rc = mdx_add_column(r->emu, ent, &n.a) ||
             mdx_put(r->emu, MDX_ATTR, ent, n.logical, sol, n.extras);
    char logical[64];
    snprintf(logical, sizeof logical, "%s", n.logical);
    new_attr_free(&n);
    if (rc) {
        emu_error(r, 500, BUSY, "The column could not be recorded.");
        return fail(r);
    }
    store_reload(r->emu);
    emu_entity *nt = store_by_logical(r->emu, ent, strlen(ent));
    mitem it = {MI_ATTR, nt, nt ? nt->def.n_attributes - 1 : 0, 0, NULL};
    for (int i = 0; nt && i < nt->def.n_attributes; i++)
        if (!strcmp(nt->def.attributes[i].logical_name, logical)) it.i = i;
    char id[37], loc[200];
    mitem_id(&it, id);
    snprintf(loc, sizeof loc, "EntityDefinitions(%s)/Attributes(%s)", nt->metadata_id, id);
    return done(r, loc);
}

/* A column the organization's customizer owns: created over the Web API, or a non-system
 * column of a table from an unmanaged solution. */
static int column_is_custom(emu_req *r, const emu_entity *t, const dv_attribute_def *a)
{
    char *x = mdx_get(r->emu, MDX_ATTR, t->def.logical_name, a->logical_name, NULL);
    int created = x && mdx_int(r->emu, x, "$._created", 0);
    free(x);
    if (created) return 1;
    char *ex = mdx_get(r->emu, MDX_ENTITY, t->def.logical_name, "", NULL);
    int table_created = ex && mdx_int(r->emu, ex, "$._created", 0);
    free(ex);
    return table_created || (t->solution_id[0] && !solution_managed(r, t->solution_id));
}

static int system_column(const emu_entity *t, const dv_attribute_def *a)
{
    static const char *sys[] = {
        "createdon", "modifiedon", "versionnumber", "statecode",          "statuscode", "ownerid",
        "createdby", "modifiedby", "owninguser",    "owningbusinessunit", "owningteam", NULL};
    if (!strcmp(a->logical_name, t->def.primary_id)) return 1;
    for (int i = 0; sys[i]; i++)
        if (!strcmp(sys[i], a->logical_name)) return 1;
    return 0;
}

int mw_delete_attr(emu_req *r, emu_entity *t, int idx)
{
    const dv_attribute_def *a = &t->def.attributes[idx];
    if (system_column(t, a))
        return emu_error(r, 400, BAD_ARG,
                         "The attribute '%s' is a system attribute of entity '%s' and cannot be "
                         "deleted.",
                         a->logical_name, t->def.logical_name);
    if (t->def.primary_name && !strcmp(a->logical_name, t->def.primary_name))
        return emu_error(r, 400, BAD_ARG,
                         "The attribute '%s' is the primary name attribute of entity '%s' and "
                         "cannot be deleted.",
                         a->logical_name, t->def.logical_name);
    if (!column_is_custom(r, t, a))
        return emu_error(r, 400, BAD_ARG,
                         "The attribute '%s' of entity '%s' is not a custom attribute and cannot "
                         "be deleted.",
                         a->logical_name, t->def.logical_name);
    const char *key = key_using(t, a->logical_name);
    if (key)
        return emu_error(r, 400, BAD_ARG,
                         "The attribute '%s' is used by key '%s': delete the key first.",
                         a->logical_name, key);
    if (a->type == DV_ATTR_LOOKUP) {
        char *x = mdx_get(r->emu, MDX_REL, t->def.logical_name, a->logical_name, NULL);
        char *schema = x ? mdx_str(r->emu, x, "$.SchemaName") : NULL;
        free(x);
        if (schema) {
            emu_error(r, 400, BAD_ARG,
                      "The lookup attribute '%s' belongs to relationship '%s': delete the "
                      "relationship (RelationshipDefinitions) instead.",
                      a->logical_name, schema);
            free(schema);
            return -1;
        }
    }
    if (begin(r)) return -1;
    return finish(r, mdx_drop_column(r->emu, t->def.logical_name, a->logical_name),
                  "The column could not be deleted.");
}

int mw_update_attr(emu_req *r, emu_entity *t, int idx)
{
    const dv_attribute_def *a = &t->def.attributes[idx];
    if (body_object(r)) return -1;
    char type[80];
    odata_type(r, r->body, type, sizeof type);
    char *ln = jstr(r, r->body, "$.LogicalName");
    char *sn = jstr(r, r->body, "$.SchemaName");
    int renamed = (ln && strcmp(ln, a->logical_name)) || (sn && strcasecmp(sn, a->logical_name));
    free(ln), free(sn);
    if (renamed)
        return emu_error(r, 400, BAD_ARG,
                         "The LogicalName and SchemaName of a column cannot be "
                         "changed.");
    const mtype *cast = *type ? mtype_attr_cast(type, strlen(type)) : NULL;
    if (*type && (!cast || !mtype_attr_is(cast, t, a)))
        return emu_error(r, 400, BAD_ARG, "The type of column '%s' cannot be changed to %s.",
                         a->logical_name, type);
    char *display = jlabel(r, r->body, "DisplayName");
    char *req = jstr(r, r->body, "$.RequiredLevel.Value");
    int required = a->required;
    if (req && a->required != 2) {
        if (!strcmp(req, "SystemRequired")) {
            free(display), free(req);
            return emu_error(r, 400, BAD_ARG, "RequiredLevel SystemRequired cannot be set.");
        }
        required = !strcmp(req, "ApplicationRequired");
    }
    free(req);
    int maxlen = a->max_length;
    if ((a->type == DV_ATTR_STRING || a->type == DV_ATTR_MEMO) && jhas(r, r->body, "$.MaxLength")) {
        long long len = mdx_int(r->emu, r->body, "$.MaxLength", maxlen);
        long long max = a->type == DV_ATTR_STRING ? 4000 : 1048576;
        if (len < 1 || len > max) {
            free(display);
            return emu_error(r, 400, BAD_ARG, "MaxLength %lld is out of range (1 to %lld).", len,
                             max);
        }
        maxlen = (int)len;
    }
    if (begin(r)) {
        free(display);
        return -1;
    }
    sqlite3_stmt *st =
        store_stmt(r->emu, "UPDATE attr SET display = coalesce(?3, display), "
                           "required = ?4, maxlen = ?5 WHERE entity=?1 AND logical=?2");
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, a->logical_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, display, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, required);
    sqlite3_bind_int(st, 5, maxlen);
    int rc = sqlite3_step(st) != SQLITE_DONE;
    free(display);
    if (!rc) rc = merge_definition(r, MDX_ATTR, t->def.logical_name, a->logical_name, attr_keys);
    return finish(r, rc, "The column could not be updated.");
}

/* ---- tables ---- */

static const char *entity_keys =
    "[\"SchemaName\",\"DisplayCollectionName\",\"Description\",\"OwnershipType\",\"HasNotes\","
    "\"HasActivities\",\"IsAuditEnabled\",\"IsValidForQueue\",\"IsConnectionsEnabled\","
    "\"EntityColor\",\"IconVectorName\",\"IsAvailableOffline\",\"ExternalName\","
    "\"ExternalCollectionName\",\"IsMappable\",\"IsRenameable\",\"IsCustomizable\","
    "\"CanCreateAttributes\",\"AutoCreateAccessTeams\",\"HasEmailAddresses\"]";

static void plural(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == 'y' && n > 1 && !strchr("aeiou", s[n - 2]))
        snprintf(out, cap, "%.*sies", (int)(n - 1), s);
    else if (n && (s[n - 1] == 's' || s[n - 1] == 'x' || s[n - 1] == 'z' ||
                   (n > 1 && s[n - 1] == 'h' && (s[n - 2] == 'c' || s[n - 2] == 's'))))
        snprintf(out, cap, "%ses", s);
    else
        snprintf(out, cap, "%ss", s);
}

int mw_create_entity(emu_req *r)
{
    dv_emulator *e = r->emu;
    char sol[37];
    if (body_object(r) || solution_header(r, sol) || custom_solution_ok(r, sol)) return -1;
    char type[80];
    odata_type(r, r->body, type, sizeof type);
    if (*type && strcmp(type, "EntityMetadata"))
        return emu_error(r, 400, BAD_ARG, "'%s' is not a table definition type.", type);
    char logical[64];
    char *schema = jstr(r, r->body, "$.SchemaName");
    if (!schema_ok(schema, logical, sizeof logical)) {
        emu_error(r, 400, BAD_ARG,
                  "SchemaName '%s' is not valid: it needs a customization prefix (new_Name) and "
                  "only letters, digits and underscores, at most 50 characters.",
                  schema ? schema : "");
        free(schema);
        return -1;
    }
    free(schema);
    if (store_by_logical(e, logical, strlen(logical)))
        return emu_error(r, 400, BAD_ARG, "An entity with the specified name already exists: '%s'.",
                         logical);
    char *own = jstr(r, r->body, "$.OwnershipType");
    int own_ok = !own || !strcmp(own, "UserOwned") || !strcmp(own, "OrganizationOwned");
    if (!own_ok) {
        int known = !strcmp(own, "None") || !strcmp(own, "BusinessOwned") ||
                    !strcmp(own, "TeamOwned") || !strcmp(own, "BusinessParented");
        emu_error(r, known ? 400 : 400, BAD_ARG,
                  "OwnershipType '%s' cannot be used for a new table: use UserOwned or "
                  "OrganizationOwned.",
                  own);
        free(own);
        return -1;
    }
    free(own);
    if (jbool(r, r->body, "$.IsActivity", 0))
        return emu_error(r, 501, BAD_ARG, "not served: creating an activity table (IsActivity).");
    char *tt = jstr(r, r->body, "$.TableType");
    if (tt && strcmp(tt, "Standard")) {
        emu_error(r, 501, BAD_ARG, "not served: tables of TableType '%s'.", tt);
        free(tt);
        return -1;
    }
    free(tt);
    char *ds = jstr(r, r->body, "$.DataSourceId");
    if (ds) {
        free(ds);
        return emu_error(r, 501, BAD_ARG, "not served: virtual tables (DataSourceId).");
    }
    /* Columns: exactly one primary name column, a string. */
    sqlite3_stmt *st = store_stmt(e, "SELECT json_array_length(?1, '$.Attributes') "
                                     "WHERE json_type(?1, '$.Attributes') = 'array'");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    int n_attrs = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    if (n_attrs > 200) return emu_error(r, 400, BAD_ARG, "Too many columns in one request.");
    new_attr *attrs = calloc((size_t)n_attrs + 1, sizeof *attrs);
    int primary = -1, rc = -1, n_parsed = 0;
    for (int i = 0; i < n_attrs; i++) {
        char path[40];
        snprintf(path, sizeof path, "$.Attributes[%d]", i);
        char *aj = jobj(r, r->body, path);
        if (!aj) {
            emu_error(r, 400, BAD_ARG, "Attributes[%d] is not an object.", i);
            goto out;
        }
        int prc = parse_attr(r, aj, &attrs[i], 0);
        n_parsed = i + 1;
        if (prc == 0 && jbool(r, aj, "$.IsPrimaryName", 0)) {
            if (primary >= 0 || attrs[i].a.type != DV_ATTR_STRING) {
                emu_error(r, 400, BAD_ARG,
                          "A table needs exactly one primary name column, a "
                          "StringAttributeMetadata with IsPrimaryName true.");
                prc = -1;
            }
            primary = i;
        }
        free(aj);
        if (prc) goto out;
        for (int j = 0; j < i; j++)
            if (!strcmp(attrs[j].logical, attrs[i].logical)) {
                emu_error(r, 400, DUP_ATTR,
                          "An attribute with the specified name already exists: "
                          "'%s'.",
                          attrs[i].logical);
                goto out;
            }
    }
    if (primary < 0) {
        emu_error(r, 400, BAD_ARG,
                  "The table definition must include its primary name column: a "
                  "StringAttributeMetadata in Attributes with IsPrimaryName true.");
        goto out;
    }
    char set[80], pid[80];
    char *given_set = jstr(r, r->body, "$.EntitySetName");
    if (given_set)
        snprintf(set, sizeof set, "%s", given_set);
    else
        plural(logical, set, sizeof set);
    free(given_set);
    snprintf(pid, sizeof pid, "%sid", logical);
    if (store_by_set(e, set, strlen(set))) {
        emu_error(r, 400, BAD_ARG, "The entity set name '%s' is already used.", set);
        goto out;
    }
    dv_entity_def def;
    memset(&def, 0, sizeof def);
    def.logical_name = logical;
    def.entity_set_name = set;
    def.display_name = jlabel(r, r->body, "DisplayName");
    def.primary_id = pid;
    def.primary_name = attrs[primary].logical;
    def.change_tracking = jbool(r, r->body, "$.ChangeTrackingEnabled", 0);
    def.n_attributes = n_attrs;
    def.attributes = calloc((size_t)n_attrs + 1, sizeof *def.attributes);
    for (int i = 0; i < n_attrs; i++)
        def.attributes[i] = attrs[i].a;
    char err[400] = "";
    if (begin(r)) {
        free(def.attributes), free(def.display_name);
        goto out;
    }
    int bad = store_add_entity(e, &def, sol, emu_now(e), err, sizeof err);
    char *picked = jpick(r, r->body, entity_keys);
    /* A created table keeps the type code it was given, whatever is deleted later. */
    sqlite3_stmt *otc =
        store_stmt(e, "SELECT max(10000, coalesce(max(json->>'$.ObjectTypeCode'), 0) + 1, "
                      "(SELECT count(*) FROM ent) + 10000) FROM mdx WHERE kind = 'entity'");
    char code[64];
    snprintf(code, sizeof code, "{\"_created\":true,\"ObjectTypeCode\":%d}",
             otc && sqlite3_step(otc) == SQLITE_ROW ? sqlite3_column_int(otc, 0) : 10000);
    if (otc) sqlite3_reset(otc);
    char *extras = jmerge(r, picked, code);
    free(picked);
    if (!bad) bad = mdx_put(e, MDX_ENTITY, logical, "", sol, extras);
    for (int i = 0; i < n_attrs && !bad; i++)
        bad = mdx_put(e, MDX_ATTR, logical, attrs[i].logical, sol, attrs[i].extras);
    free(extras);
    free(def.attributes), free(def.display_name);
    if (bad) {
        emu_error(r, 400, BAD_ARG, "The table could not be created: %s",
                  *err ? err : "store error");
        fail(r);
        goto out;
    }
    char id[37], loc[120];
    guid_from_name(logical, id);
    snprintf(loc, sizeof loc, "EntityDefinitions(%s)", id);
    rc = done(r, loc);
out:
    for (int i = 0; i < n_parsed; i++)
        new_attr_free(&attrs[i]);
    free(attrs);
    return rc;
}

int mw_update_entity(emu_req *r, emu_entity *t)
{
    if (body_object(r)) return -1;
    char *ln = jstr(r, r->body, "$.LogicalName");
    char *sn = jstr(r, r->body, "$.SchemaName");
    int renamed =
        (ln && strcmp(ln, t->def.logical_name)) || (sn && strcasecmp(sn, t->def.logical_name));
    free(ln), free(sn);
    if (renamed)
        return emu_error(r, 400, BAD_ARG,
                         "The LogicalName and SchemaName of a table cannot be changed.");
    char *set = jstr(r, r->body, "$.EntitySetName");
    int reset = set && strcmp(set, t->def.entity_set_name);
    free(set);
    if (reset) return emu_error(r, 501, BAD_ARG, "not served: changing a table's EntitySetName.");
    char *own = jstr(r, r->body, "$.OwnershipType");
    sbuf cur = {0};
    mitem it = {MI_ENTITY, t, 0, 0, NULL};
    mitem_doc(r->emu, &it, &cur);
    char *cur_own = mdx_str(r->emu, sb_str(&cur), "$.OwnershipType");
    int own_changed = own && cur_own && strcmp(own, cur_own);
    int ct_was = t->def.change_tracking;
    int ct_now = jbool(r, r->body, "$.ChangeTrackingEnabled", ct_was);
    sb_free(&cur);
    free(own), free(cur_own);
    if (own_changed)
        return emu_error(r, 400, BAD_ARG, "The OwnershipType of a table cannot be changed.");
    if (ct_was && !ct_now && t->solution_id[0] && solution_managed(r, t->solution_id))
        return emu_error(r, 400, BAD_ARG,
                         "Change tracking of a table from a managed solution cannot be turned "
                         "off.");
    char *display = jlabel(r, r->body, "DisplayName");
    if (begin(r)) {
        free(display);
        return -1;
    }
    sqlite3_stmt *st = store_stmt(r->emu, "UPDATE ent SET display = coalesce(?2, display), "
                                          "ct = ?3 WHERE logical = ?1");
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, display, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, ct_now);
    int rc = sqlite3_step(st) != SQLITE_DONE;
    free(display);
    if (!rc) rc = merge_definition(r, MDX_ENTITY, t->def.logical_name, "", entity_keys);
    return finish(r, rc, "The table could not be updated.");
}

int mw_delete_entity(emu_req *r, emu_entity *t)
{
    dv_emulator *e = r->emu;
    char *x = mdx_get(e, MDX_ENTITY, t->def.logical_name, "", NULL);
    int created = x && mdx_int(e, x, "$._created", 0);
    free(x);
    int custom = created || (t->solution_id[0] && !solution_managed(r, t->solution_id));
    if (!custom)
        return emu_error(r, 400, BAD_ARG,
                         "The entity '%s' is not a custom entity of an unmanaged solution and "
                         "cannot be deleted.",
                         t->def.logical_name);
    for (int k = 0; k < e->n_ents; k++) {
        const emu_entity *o = &e->ents[k];
        if (o == t) continue;
        for (int i = 0; i < o->def.n_attributes; i++) {
            const dv_attribute_def *a = &o->def.attributes[i];
            if (a->type == DV_ATTR_LOOKUP && a->target && !strcmp(a->target, t->def.logical_name))
                return emu_error(r, 400, BAD_ARG,
                                 "The entity '%s' cannot be deleted: the lookup '%s.%s' refers "
                                 "to it; delete that relationship first.",
                                 t->def.logical_name, o->def.logical_name, a->logical_name);
        }
    }
    char ent[128];
    snprintf(ent, sizeof ent, "%s", t->def.logical_name);
    if (begin(r)) return -1;
    return finish(r, store_drop_entity(e, ent), "The table could not be deleted.");
}

/* ---- keys ---- */

int mw_create_key(emu_req *r, emu_entity *t)
{
    dv_emulator *e = r->emu;
    char sol[37];
    if (body_object(r) || solution_header(r, sol) || custom_solution_ok(r, sol)) return -1;
    char logical[64];
    char *schema = jstr(r, r->body, "$.SchemaName");
    if (!schema_ok(schema, logical, sizeof logical)) {
        emu_error(r, 400, BAD_ARG,
                  "SchemaName '%s' is not valid for a key: it needs a customization prefix "
                  "(new_Name) and only letters, digits and underscores.",
                  schema ? schema : "");
        free(schema);
        return -1;
    }
    free(schema);
    for (int i = 0; i < t->def.n_keys; i++)
        if (!strcmp(t->def.keys[i].logical_name, logical))
            return emu_error(r, 400, DUP_ATTR, "A key named '%s' already exists on entity '%s'.",
                             logical, t->def.logical_name);
    if (t->def.n_keys >= 10)
        return emu_error(r, 400, BAD_ARG, "Entity '%s' already has 10 keys, the most allowed.",
                         t->def.logical_name);
    sqlite3_stmt *st = store_stmt(e, "SELECT value FROM json_each(?1, '$.KeyAttributes') "
                                     "WHERE json_type(?1, '$.KeyAttributes') = 'array'");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    char *cols[17];
    int n = 0, bad = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        if (n == 16 || !v) {
            bad = 1;
            break;
        }
        cols[n++] = strdup((const char *)v);
    }
    sqlite3_reset(st);
    int rc = -1;
    if (bad || n == 0) {
        emu_error(r, 400, BAD_ARG, "KeyAttributes must list 1 to 16 column logical names.");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const dv_attribute_def *a = store_attr(t, cols[i]);
        if (!a) {
            emu_error(r, 400, BAD_ARG, "The key column '%s' does not exist on entity '%s'.",
                      cols[i], t->def.logical_name);
            goto out;
        }
        if (!(a->type == DV_ATTR_STRING || a->type == DV_ATTR_INTEGER ||
              a->type == DV_ATTR_DECIMAL || a->type == DV_ATTR_DATETIME ||
              a->type == DV_ATTR_LOOKUP || a->type == DV_ATTR_PICKLIST)) {
            emu_error(r, 400, BAD_ARG,
                      "The column '%s' cannot be part of a key: key columns are single line of "
                      "text, whole number, decimal number, date and time, lookup or choice.",
                      cols[i]);
            goto out;
        }
    }
    dv_key_def k;
    memset(&k, 0, sizeof k);
    k.logical_name = logical;
    k.display_name = jlabel(r, r->body, "DisplayName");
    k.attributes = cols;
    k.n_attributes = n;
    if (begin(r)) {
        free(k.display_name);
        goto out;
    }
    char *picked = jpick(r, r->body, "[\"SchemaName\",\"DisplayName\"]");
    char *extras = jmerge(r, picked, "{\"_created\":true}");
    free(picked);
    /* The extras first: a failed index adds its job to them. */
    int added = mdx_put(e, MDX_KEY, t->def.logical_name, logical, sol, extras) ? -1 : 0;
    if (added == 0) added = mdx_add_key(e, t, &k, emu_now(e));
    free(extras);
    free(k.display_name);
    if (added < 0) {
        emu_error(r, 500, BUSY, "The key could not be recorded.");
        fail(r);
        goto out;
    }
    char ent[128];
    snprintf(ent, sizeof ent, "%s", t->def.logical_name);
    if (store_commit(e)) {
        store_reload(e);
        emu_error(r, 500, BUSY, "The change could not be committed.");
        goto out;
    }
    store_reload(e);
    emu_entity *nt = store_by_logical(e, ent, strlen(ent));
    mitem it = {MI_KEY, nt, 0, 0, NULL};
    for (int i = 0; nt && i < nt->def.n_keys; i++)
        if (!strcmp(nt->def.keys[i].logical_name, logical)) it.i = i;
    char id[37], loc[600];
    mitem_id(&it, id);
    snprintf(loc, sizeof loc, "%sEntityDefinitions(%s)/Keys(%s)", r->base, nt->metadata_id, id);
    emu_add_header(r, "OData-EntityId", loc);
    r->status = 204;
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        free(cols[i]);
    return rc;
}

int mw_delete_key(emu_req *r, emu_entity *t, int idx)
{
    const dv_key_def *k = &t->def.keys[idx];
    char *x = mdx_get(r->emu, MDX_KEY, t->def.logical_name, k->logical_name, NULL);
    int created = x && mdx_int(r->emu, x, "$._created", 0);
    free(x);
    if (!created && t->solution_id[0] && solution_managed(r, t->solution_id))
        return emu_error(r, 400, BAD_ARG,
                         "The key '%s' belongs to a managed solution and cannot be deleted.",
                         k->logical_name);
    if (begin(r)) return -1;
    return finish(r, mdx_drop_key(r->emu, t->def.logical_name, k->logical_name),
                  "The key could not be deleted.");
}

/* ---- relationships ---- */

int mw_create_rel(emu_req *r)
{
    dv_emulator *e = r->emu;
    char sol[37];
    if (body_object(r) || solution_header(r, sol) || custom_solution_ok(r, sol)) return -1;
    char type[80];
    odata_type(r, r->body, type, sizeof type);
    if (!strcmp(type, "ManyToManyRelationshipMetadata"))
        return emu_error(r, 501, BAD_ARG, "not served: many-to-many relationships.");
    if (strcmp(type, "OneToManyRelationshipMetadata"))
        return emu_error(r, 400, BAD_ARG,
                         "The relationship needs @odata.type "
                         "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata.");
    char *schema = jstr(r, r->body, "$.SchemaName");
    char logical[64];
    if (!schema_ok(schema, logical, sizeof logical)) {
        emu_error(r, 400, BAD_ARG, "SchemaName '%s' is not valid for a relationship.",
                  schema ? schema : "");
        free(schema);
        return -1;
    }
    char *refd = jstr(r, r->body, "$.ReferencedEntity");
    char *refg = jstr(r, r->body, "$.ReferencingEntity");
    char *refattr = jstr(r, r->body, "$.ReferencedAttribute");
    char *lookup = jobj(r, r->body, "$.Lookup");
    emu_entity *td = refd ? store_by_logical(e, refd, strlen(refd)) : NULL;
    emu_entity *tg = refg ? store_by_logical(e, refg, strlen(refg)) : NULL;
    int rc = -1;
    new_attr n;
    memset(&n, 0, sizeof n);
    mitems all = {0};
    if (!td || !tg) {
        emu_error(r, 400, BAD_ARG, "The %s table '%s' does not exist.",
                  !td ? "referenced" : "referencing",
                  !td ? (refd ? refd : "") : (refg ? refg : ""));
        goto out;
    }
    if (refattr && strcmp(refattr, td->def.primary_id)) {
        emu_error(r, 400, BAD_ARG, "ReferencedAttribute must be the primary id of '%s' ('%s').",
                  td->def.logical_name, td->def.primary_id);
        goto out;
    }
    if (!lookup) {
        emu_error(r, 400, BAD_ARG,
                  "A one-to-many relationship needs its Lookup column "
                  "definition (a LookupAttributeMetadata).");
        goto out;
    }
    char lt[80];
    odata_type(r, lookup, lt, sizeof lt);
    if (*lt && strcmp(lt, "LookupAttributeMetadata")) {
        emu_error(r, 400, BAD_ARG, "Lookup must be a LookupAttributeMetadata, not %s.", lt);
        goto out;
    }
    if (!*lt) {
        /* the type is implied by the Lookup property */
        char *fixed = jmerge(r, lookup,
                             "{\"@odata.type\":\"Microsoft.Dynamics.CRM."
                             "LookupAttributeMetadata\"}");
        free(lookup);
        lookup = fixed;
    }
    if (parse_attr(r, lookup, &n, 1)) goto out;
    if (store_attr(tg, n.logical)) {
        emu_error(r, 400, DUP_ATTR,
                  "An attribute with the specified name already exists: '%s' on entity '%s'.",
                  n.logical, tg->def.logical_name);
        goto out;
    }
    mitems_relationships(e, NULL, 0, &all);
    for (int i = 0; i < all.n; i++) {
        char s[300];
        mrel_schema(e, &all.v[i], s, sizeof s);
        if (!strcasecmp(s, schema)) {
            emu_error(r, 400, BAD_ARG, "A relationship named '%s' already exists.", schema);
            goto out;
        }
    }
    n.a.target = strdup(td->def.logical_name);
    if (begin(r)) goto out;
    sqlite3_stmt *st = store_stmt(e, "SELECT json_set(?2, '$.SchemaName', ?3)");
    char *relx = jpick(r, r->body,
                       "[\"CascadeConfiguration\",\"AssociatedMenuConfiguration\","
                       "\"IsHierarchical\",\"IsValidForAdvancedFind\","
                       "\"ReferencedEntityNavigationPropertyName\","
                       "\"ReferencingEntityNavigationPropertyName\",\"SecurityTypes\"]");
    sqlite3_bind_text(st, 2, relx, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, schema, -1, SQLITE_TRANSIENT);
    char *rel = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) rel = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    free(relx);
    char ent[128];
    snprintf(ent, sizeof ent, "%s", tg->def.logical_name);
    int bad = !rel || mdx_add_column(e, ent, &n.a) ||
              mdx_put(e, MDX_ATTR, ent, n.logical, sol, n.extras) ||
              mdx_put(e, MDX_REL, ent, n.logical, sol, rel);
    free(rel);
    if (bad) {
        emu_error(r, 500, BUSY, "The relationship could not be recorded.");
        fail(r);
        goto out;
    }
    store_reload(e);
    emu_entity *nt = store_by_logical(e, ent, strlen(ent));
    mitem it = {MI_REL, nt, 0, 0, NULL};
    for (int i = 0; nt && i < nt->def.n_attributes; i++)
        if (!strcmp(nt->def.attributes[i].logical_name, n.logical)) it.i = i;
    char id[37], loc[120];
    mitem_id(&it, id);
    snprintf(loc, sizeof loc, "RelationshipDefinitions(%s)", id);
    rc = done(r, loc);
out:
    mitems_free(&all);
    new_attr_free(&n);
    free(schema), free(refd), free(refg), free(refattr), free(lookup);
    return rc;
}

int mw_delete_rel(emu_req *r, emu_entity *t, int idx)
{
    const dv_attribute_def *a = &t->def.attributes[idx];
    char *x = mdx_get(r->emu, MDX_REL, t->def.logical_name, a->logical_name, NULL);
    free(x);
    if (!x)
        return emu_error(r, 400, BAD_ARG,
                         "The relationship of '%s.%s' is not a custom relationship and cannot be "
                         "deleted.",
                         t->def.logical_name, a->logical_name);
    const char *key = key_using(t, a->logical_name);
    if (key)
        return emu_error(r, 400, BAD_ARG,
                         "The lookup '%s' is used by key '%s': delete the key first.",
                         a->logical_name, key);
    if (begin(r)) return -1;
    return finish(r, mdx_drop_column(r->emu, t->def.logical_name, a->logical_name),
                  "The relationship could not be deleted.");
}

/* ---- global choices ---- */

int mw_create_optionset(emu_req *r)
{
    dv_emulator *e = r->emu;
    char sol[37];
    if (body_object(r) || solution_header(r, sol)) return -1;
    char type[80];
    odata_type(r, r->body, type, sizeof type);
    if (!strcmp(type, "BooleanOptionSetMetadata"))
        return emu_error(r, 501, BAD_ARG, "not served: global yes/no choices.");
    if (*type && strcmp(type, "OptionSetMetadata"))
        return emu_error(r, 400, BAD_ARG, "'%s' is not a global choice type.", type);
    char *name = jstr(r, r->body, "$.Name");
    char logical[64];
    if (!schema_ok(name, logical, sizeof logical)) {
        emu_error(r, 400, BAD_ARG,
                  "Name '%s' is not valid for a global choice: it needs a "
                  "customization prefix (new_name).",
                  name ? name : "");
        free(name);
        return -1;
    }
    free(name);
    char *have = mdx_get(e, MDX_OPTIONSET, "", logical, NULL);
    free(have);
    if (have)
        return emu_error(r, 400, BAD_ARG, "A global choice named '%s' already exists.", logical);
    char ot[16];
    mdx_type(e, r->body, "$.Options", ot);
    if (strcmp(ot, "array"))
        return emu_error(r, 400, BAD_ARG, "A global choice needs Options (an array).");
    sqlite3_stmt *st = store_stmt(
        e, "SELECT json_object('Name', ?2, 'DisplayName', json_extract(?1, '$.DisplayName'), "
           "'OptionSetType', 'Picklist', '_created', json('true'), 'Options', "
           "(SELECT json_group_array(CASE WHEN json_type(value,'$.Value') = 'integer' THEN "
           "json(value) ELSE json_set(value, '$.Value', 100000000 + key) END) "
           "FROM json_each(?1, '$.Options'))), "
           "(SELECT count(*) - count(DISTINCT coalesce(value->>'$.Value', 100000000 + key)) "
           "FROM json_each(?1, '$.Options'))");
    sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, logical, -1, SQLITE_TRANSIENT);
    char *doc = NULL;
    int dup = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        doc = strdup((const char *)sqlite3_column_text(st, 0));
        dup = sqlite3_column_int(st, 1) > 0;
    }
    sqlite3_reset(st);
    if (!doc || dup) {
        free(doc);
        return emu_error(r, 400, BAD_ARG, "Two options of '%s' have the same Value.", logical);
    }
    if (begin(r)) {
        free(doc);
        return -1;
    }
    int bad = mdx_put(e, MDX_OPTIONSET, "", logical, sol, doc);
    free(doc);
    if (bad) {
        emu_error(r, 500, BUSY, "The global choice could not be recorded.");
        return fail(r);
    }
    mitem it = {MI_OPTIONSET, NULL, 0, 0, logical};
    char id[37], loc[120];
    mitem_id(&it, id);
    snprintf(loc, sizeof loc, "GlobalOptionSetDefinitions(%s)", id);
    return done(r, loc);
}

int mw_delete_optionset(emu_req *r, const char *name)
{
    dv_emulator *e = r->emu;
    sqlite3_stmt *st = store_stmt(e, "SELECT entity || '.' || name FROM mdx WHERE kind = 'attr' "
                                     "AND json->>'$._GlobalOptionSet' = ?1 LIMIT 1");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    char used[300] = "";
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(used, sizeof used, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (*used)
        return emu_error(r, 400, BAD_ARG,
                         "The global choice '%s' is used by column '%s': delete the column "
                         "first.",
                         name, used);
    if (begin(r)) return -1;
    return finish(r, mdx_delete(e, MDX_OPTIONSET, "", name),
                  "The global choice could not be deleted.");
}
