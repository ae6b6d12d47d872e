/* Table definitions over the Web API: EntityDefinitions (all, by LogicalName, by MetadataId)
 * with $select, $filter and $expand=Keys,Attributes; the Keys and Attributes paths with each
 * key's index status; ReactivateEntityKey; and WhoAmI. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "emu_internal.h"
#include "metadata.h"
#include "query.h"
#include "store.h"

static const char *entity_props[] = {"MetadataId",
                                     "LogicalName",
                                     "SchemaName",
                                     "EntitySetName",
                                     "LogicalCollectionName",
                                     "PrimaryIdAttribute",
                                     "PrimaryNameAttribute",
                                     "ChangeTrackingEnabled",
                                     "IsCustomEntity",
                                     "IsManaged",
                                     "DisplayName",
                                     "Keys",
                                     "Attributes",
                                     NULL};

typedef struct {
    char **names;
    int n; /* -1: everything */
} propsel;

static int in_list(const char **list, const char *s, size_t n)
{
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == n && strncmp(list[i], s, n) == 0) return 1;
    return 0;
}

static void propsel_free(propsel *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
}

static int parse_list(emu_req *r, const char *arg, const char **known, const char *type, propsel *s)
{
    s->names = NULL;
    s->n = -1;
    if (!arg) return 0;
    s->n = 0;
    s->names = calloc(strlen(arg) + 1, sizeof(char *));
    const char *p = arg;
    while (*p) {
        const char *q = p;
        while (*q && *q != ',')
            q++;
        const char *b = p, *e = q;
        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (!in_list(known, b, (size_t)(e - b)))
            return emu_error(r, 400, BAD_QUERY,
                             "Could not find a property named '%.*s' on type "
                             "'Microsoft.Dynamics.CRM.%s'.",
                             (int)(e - b), b, type);
        s->names[s->n++] = strndup(b, (size_t)(e - b));
        p = *q ? q + 1 : q;
    }
    return 0;
}

static int wants(const propsel *s, const char *name)
{
    if (s->n < 0) return 1;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) return 1;
    return 0;
}

static void label(sbuf *b, const char *text)
{
    if (!text) {
        sb_puts(b, "{\"LocalizedLabels\":[],\"UserLocalizedLabel\":null}");
        return;
    }
    sb_puts(b, "{\"LocalizedLabels\":[{\"Label\":");
    sb_json_str(b, text);
    sb_puts(b, ",\"LanguageCode\":1033}],\"UserLocalizedLabel\":{\"Label\":");
    sb_json_str(b, text);
    sb_puts(b, ",\"LanguageCode\":1033}}");
}

static void key_json(dv_emulator *e, const emu_entity *t, const dv_key_def *k, sbuf *b)
{
    char name[300], id[37];
    snprintf(name, sizeof name, "%s.key.%s", t->def.logical_name, k->logical_name);
    guid_from_name(name, id);
    sb_printf(b, "{\"MetadataId\":\"%s\",\"LogicalName\":", id);
    sb_json_str(b, k->logical_name);
    sb_puts(b, ",\"SchemaName\":");
    sb_json_str(b, k->logical_name);
    sb_puts(b, ",\"EntityLogicalName\":");
    sb_json_str(b, t->def.logical_name);
    sb_puts(b, ",\"KeyAttributes\":[");
    for (int j = 0; j < k->n_attributes; j++) {
        if (j) sb_putc(b, ',');
        sb_json_str(b, k->attributes[j]);
    }
    sb_printf(b, "],\"EntityKeyIndexStatus\":\"%s\",\"DisplayName\":",
              store_key_status(e, t->def.logical_name, k->logical_name));
    label(b, k->display_name ? k->display_name : k->logical_name);
    sb_puts(b, "}");
}

static const char *attr_type_name(dv_attr_type t)
{
    return dv_attr_type_code(t);
}

/* The metadata class of a column: <X>AttributeMetadata. */
static const char *attr_class(dv_attr_type t)
{
    switch (t) {
    case DV_ATTR_UNIQUEIDENTIFIER:
    case DV_ATTR_VIRTUAL:
    case DV_ATTR_PARTYLIST:
    case DV_ATTR_CALENDARRULES:
        return "";
    case DV_ATTR_OWNER:
        return "Lookup";
    case DV_ATTR_FILE:
        return "File";
    case DV_ATTR_IMAGE:
        return "Image";
    case DV_ATTR_MULTISELECT:
        return "MultiSelectPicklist";
    default:
        return dv_attr_type_code(t);
    }
}

static void attr_json(const emu_entity *t, const dv_attribute_def *a, sbuf *b)
{
    char name[300], id[37];
    snprintf(name, sizeof name, "%s.attr.%s", t->def.logical_name, a->logical_name);
    guid_from_name(name, id);
    const char *tn = attr_type_name(a->type);
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.%sAttributeMetadata\","
              "\"MetadataId\":\"%s\",\"LogicalName\":",
              attr_class(a->type), id);
    sb_json_str(b, a->logical_name);
    sb_puts(b, ",\"SchemaName\":");
    sb_json_str(b, a->logical_name);
    sb_puts(b, ",\"EntityLogicalName\":");
    sb_json_str(b, t->def.logical_name);
    const char *tname = dv_attr_type_name(a->type);
    sb_printf(b, ",\"AttributeType\":\"%s\",\"AttributeTypeName\":{\"Value\":\"%s%s\"}", tn,
              tname ? tname : tn, tname ? "" : "Type");
    sb_printf(b, ",\"IsPrimaryId\":%s,\"IsPrimaryName\":%s",
              strcmp(a->logical_name, t->def.primary_id) ? "false" : "true",
              t->def.primary_name && !strcmp(a->logical_name, t->def.primary_name) ? "true"
                                                                                   : "false");
    sb_printf(b, ",\"RequiredLevel\":{\"Value\":\"%s\"}",
              a->required == 2 ? "SystemRequired"
              : a->required    ? "ApplicationRequired"
                               : "None");
    if (a->max_length) sb_printf(b, ",\"MaxLength\":%d", a->max_length);
    if (a->target) {
        sb_puts(b, ",\"Targets\":[");
        sb_json_str(b, a->target);
        sb_putc(b, ']');
    }
    sb_puts(b, ",\"DisplayName\":");
    label(b, a->display_name);
    sb_putc(b, '}');
}

static void entity_json(dv_emulator *e, const emu_entity *t, const propsel *sel, int keys,
                        int attrs, sbuf *b)
{
    const dv_entity_def *d = &t->def;
    int first = 1;
#define PROP(name)                                                                                 \
    if (wants(sel, name) && (sb_printf(b, "%s\"%s\":", first ? "" : ",", name), first = 0, 1))
    sb_putc(b, '{');
    PROP("MetadataId") sb_printf(b, "\"%s\"", t->metadata_id);
    PROP("LogicalName") sb_json_str(b, d->logical_name);
    PROP("SchemaName") sb_json_str(b, d->logical_name);
    PROP("EntitySetName") sb_json_str(b, d->entity_set_name);
    PROP("LogicalCollectionName") sb_json_str(b, d->entity_set_name);
    PROP("PrimaryIdAttribute") sb_json_str(b, d->primary_id);
    PROP("PrimaryNameAttribute") sb_json_str(b, d->primary_name);
    PROP("ChangeTrackingEnabled") sb_puts(b, d->change_tracking ? "true" : "false");
    PROP("IsCustomEntity") sb_puts(b, t->solution_id[0] ? "true" : "false");
    PROP("IsManaged") sb_puts(b, t->solution_id[0] ? "true" : "false");
    PROP("DisplayName") label(b, d->display_name);
#undef PROP
    if (keys) {
        sb_printf(b, "%s\"Keys\":[", first ? "" : ",");
        first = 0;
        for (int i = 0; i < d->n_keys; i++) {
            if (i) sb_putc(b, ',');
            key_json(e, t, &d->keys[i], b);
        }
        sb_putc(b, ']');
    }
    if (attrs) {
        sb_printf(b, "%s\"Attributes\":[", first ? "" : ",");
        for (int i = 0; i < d->n_attributes; i++) {
            if (i) sb_putc(b, ',');
            attr_json(t, &d->attributes[i], b);
        }
        sb_putc(b, ']');
    }
    sb_putc(b, '}');
}

/* The small document a metadata $filter is evaluated against. */
static void filter_doc(const emu_entity *t, sbuf *b)
{
    const dv_entity_def *d = &t->def;
    sb_printf(b, "{\"MetadataId\":\"%s\",\"LogicalName\":", t->metadata_id);
    sb_json_str(b, d->logical_name);
    sb_puts(b, ",\"SchemaName\":");
    sb_json_str(b, d->logical_name);
    sb_puts(b, ",\"EntitySetName\":");
    sb_json_str(b, d->entity_set_name);
    sb_puts(b, ",\"LogicalCollectionName\":");
    sb_json_str(b, d->entity_set_name);
    sb_puts(b, ",\"PrimaryIdAttribute\":");
    sb_json_str(b, d->primary_id);
    sb_puts(b, ",\"PrimaryNameAttribute\":");
    sb_json_str(b, d->primary_name);
    sb_printf(b, ",\"ChangeTrackingEnabled\":%s,\"IsCustomEntity\":%s,\"IsManaged\":%s}",
              d->change_tracking ? "true" : "false", t->solution_id[0] ? "true" : "false",
              t->solution_id[0] ? "true" : "false");
}

static int resolve_meta(void *ud, const char *name, size_t n, char *expr, size_t cap)
{
    (void)ud;
    static const char *strs[] = {"LogicalName",
                                 "SchemaName",
                                 "EntitySetName",
                                 "LogicalCollectionName",
                                 "PrimaryIdAttribute",
                                 "PrimaryNameAttribute",
                                 NULL};
    static const char *bools[] = {"ChangeTrackingEnabled", "IsCustomEntity", "IsManaged", NULL};
    int kind = 0;
    if (in_list(strs, name, n))
        kind = QK_STRING;
    else if (in_list(bools, name, n))
        kind = QK_BOOL;
    else if (n == 10 && strncmp(name, "MetadataId", 10) == 0)
        kind = QK_GUID;
    if (kind) snprintf(expr, cap, "(?1->>'$.%.*s')", (int)n, name);
    return kind;
}

static int expand_flags(emu_req *r, int *keys, int *attrs)
{
    static const char *known[] = {"Keys", "Attributes", NULL};
    propsel ex;
    int rc = parse_list(r, emu_arg(r, "$expand"), known, "EntityMetadata", &ex);
    *keys = ex.n > 0 && wants(&ex, "Keys");
    *attrs = ex.n > 0 && wants(&ex, "Attributes");
    propsel_free(&ex);
    return rc;
}

static void sel_context(const propsel *sel, sbuf *b)
{
    if (sel->n < 0) return;
    sb_putc(b, '(');
    for (int i = 0; i < sel->n; i++)
        sb_printf(b, "%s%s", i ? "," : "", sel->names[i]);
    sb_putc(b, ')');
}

static int list_entities(emu_req *r)
{
    dv_emulator *e = r->emu;
    propsel sel;
    int keys, attrs;
    if (parse_list(r, emu_arg(r, "$select"), entity_props, "EntityMetadata", &sel) ||
        expand_flags(r, &keys, &attrs)) {
        propsel_free(&sel);
        return -1;
    }
    query_filter f;
    const char *filter = emu_arg(r, "$filter");
    if (filter && query_filter_compile(&f, filter, "EntityMetadata", resolve_meta, NULL, 2)) {
        emu_error(r, 400, BAD_QUERY, "%s", f.err);
        query_filter_free(&f);
        propsel_free(&sel);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    if (filter) {
        sbuf sql = {0};
        sb_printf(&sql, "SELECT 1 WHERE %s", sb_str(&f.sql));
        st = store_stmt(e, sb_str(&sql));
        sb_free(&sql);
    }
    emu_json(r, 200);
    sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#EntityDefinitions", r->base);
    sel_context(&sel, &r->out);
    sb_puts(&r->out, "\",\"value\":[");
    int n = 0;
    for (int i = 0; i < e->n_ents; i++) {
        const emu_entity *t = &e->ents[i];
        if (st) {
            sbuf doc = {0};
            filter_doc(t, &doc);
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, sb_str(&doc), -1, SQLITE_TRANSIENT);
            query_filter_bind(&f, st);
            int hit = sqlite3_step(st) == SQLITE_ROW;
            sb_free(&doc);
            if (!hit) continue;
        }
        if (n++) sb_putc(&r->out, ',');
        entity_json(e, t, &sel, keys, attrs, &r->out);
    }
    sb_puts(&r->out, "]}");
    if (filter) query_filter_free(&f);
    propsel_free(&sel);
    return 0;
}

/* Reads "(LogicalName='x')" or "(<guid>)" at p; returns the entity name or id in out. */
static const char *parse_meta_key(const char *p, char *out, size_t cap, int *by_id)
{
    if (*p != '(') return NULL;
    p++;
    *by_id = 0;
    if (guid_valid(p, strnlen(p, 36)) && p[36] == ')') {
        snprintf(out, cap, "%.36s", p);
        *by_id = 1;
        return p + 37;
    }
    if (strncmp(p, "LogicalName=", 12) != 0 || p[12] != '\'') return NULL;
    p += 13;
    const char *q = strchr(p, '\'');
    if (!q || q[1] != ')' || (size_t)(q - p) >= cap) return NULL;
    snprintf(out, cap, "%.*s", (int)(q - p), p);
    return q + 2;
}

int h_metadata(emu_req *r, const char *path)
{
    dv_emulator *e = r->emu;
    const char *p = path + 17;
    if (!*p) {
        if (strcmp(r->method, "GET") != 0)
            return emu_error(r, 405, BAD_QUERY, "Only GET is served on EntityDefinitions.");
        return list_entities(r);
    }
    char name[200];
    int by_id;
    p = parse_meta_key(p, name, sizeof name, &by_id);
    if (!p) return emu_error(r, 400, BAD_QUERY, "Bad Request - Error in query syntax.");
    emu_entity *t = by_id ? store_by_metadata_id(e, name) : store_by_logical(e, name, strlen(name));
    if (!t)
        return emu_error(r, 404, "0x80040217", "Could not find an entity with %s = '%s'.",
                         by_id ? "MetadataId" : "LogicalName", name);
    if (!*p) {
        if (strcmp(r->method, "GET") != 0)
            return emu_error(r, 405, BAD_QUERY, "Only GET is served on a table definition.");
        propsel sel;
        int keys, attrs;
        if (parse_list(r, emu_arg(r, "$select"), entity_props, "EntityMetadata", &sel) ||
            expand_flags(r, &keys, &attrs)) {
            propsel_free(&sel);
            return -1;
        }
        emu_json(r, 200);
        sbuf body = {0};
        entity_json(e, t, &sel, keys, attrs, &body);
        sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#EntityDefinitions", r->base);
        sel_context(&sel, &r->out);
        sb_puts(&r->out, "/$entity\",");
        sb_put(&r->out, body.p + 1, body.n - 1);
        sb_free(&body);
        propsel_free(&sel);
        return 0;
    }
    int keys = strncmp(p, "/Keys", 5) == 0;
    int attrs = strncmp(p, "/Attributes", 11) == 0;
    if (!keys && !attrs)
        return emu_error(r, 501, BAD_QUERY, "The path '%s' is not served by the dvlua emulator.",
                         path);
    p += keys ? 5 : 11;
    if (!*p) {
        emu_json(r, 200);
        sb_printf(&r->out,
                  "{\"@odata.context\":\"%s$metadata#EntityDefinitions(%s)/%s\",\"value\":[",
                  r->base, t->metadata_id, keys ? "Keys" : "Attributes");
        int n = keys ? t->def.n_keys : t->def.n_attributes;
        for (int i = 0; i < n; i++) {
            if (i) sb_putc(&r->out, ',');
            if (keys)
                key_json(e, t, &t->def.keys[i], &r->out);
            else
                attr_json(t, &t->def.attributes[i], &r->out);
        }
        sb_puts(&r->out, "]}");
        return 0;
    }
    char item[200];
    const char *rest = parse_meta_key(p, item, sizeof item, &by_id);
    if (!rest) return emu_error(r, 400, BAD_QUERY, "Bad Request - Error in query syntax.");
    int n = keys ? t->def.n_keys : t->def.n_attributes;
    for (int i = 0; i < n; i++) {
        const char *ln = keys ? t->def.keys[i].logical_name : t->def.attributes[i].logical_name;
        char full[300], id[37];
        snprintf(full, sizeof full, "%s.%s.%s", t->def.logical_name, keys ? "key" : "attr", ln);
        guid_from_name(full, id);
        if (by_id ? strcasecmp(id, item) != 0 : strcmp(ln, item) != 0) continue;
        if (keys && strcmp(rest, "/Microsoft.Dynamics.CRM.ReactivateEntityKey") == 0)
            return h_reactivate_key(r, t->def.logical_name, ln);
        if (*rest)
            return emu_error(r, 501, BAD_QUERY,
                             "The path '%s' is not served by the dvlua "
                             "emulator.",
                             path);
        emu_json(r, 200);
        sb_printf(&r->out, "{\"@odata.context\":\"%s$metadata#EntityDefinitions(%s)/%s/$entity\",",
                  r->base, t->metadata_id, keys ? "Keys" : "Attributes");
        sbuf one = {0};
        if (keys)
            key_json(e, t, &t->def.keys[i], &one);
        else
            attr_json(t, &t->def.attributes[i], &one);
        sb_put(&r->out, one.p + 1, one.n - 1);
        sb_free(&one);
        return 0;
    }
    return emu_error(r, 404, "0x80040217", "Could not find %s '%s' on entity '%s'.",
                     keys ? "key" : "attribute", item, t->def.logical_name);
}

int h_reactivate_key(emu_req *r, const char *entity, const char *key)
{
    dv_emulator *e = r->emu;
    char ent[200] = "", k[200] = "";
    if (strcmp(r->method, "POST") != 0)
        return emu_error(r, 405, BAD_QUERY, "ReactivateEntityKey is an action: use POST.");
    if (entity) {
        snprintf(ent, sizeof ent, "%s", entity);
        snprintf(k, sizeof k, "%s", key);
    } else {
        sqlite3_stmt *st = store_stmt(e, "SELECT json_extract(?1,'$.EntityLogicalName'), "
                                         "json_extract(?1,'$.EntityKeyLogicalName') "
                                         "WHERE json_valid(?1)");
        sqlite3_bind_text(st, 1, r->body, (int)r->body_len, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
            sqlite3_column_text(st, 1)) {
            snprintf(ent, sizeof ent, "%s", sqlite3_column_text(st, 0));
            snprintf(k, sizeof k, "%s", sqlite3_column_text(st, 1));
        } else {
            return emu_error(r, 400, "0x80040203",
                             "ReactivateEntityKey needs EntityLogicalName and "
                             "EntityKeyLogicalName in a JSON body.");
        }
    }
    sqlite3_stmt *st =
        store_stmt(e, "UPDATE ekey SET failed = 0, created = ?3 WHERE entity=?1 AND logical=?2");
    sqlite3_bind_text(st, 1, ent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, emu_now(e));
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(e->db) == 0)
        return emu_error(r, 404, "0x80040217", "Could not find key '%s' on entity '%s'.", k, ent);
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM."
              "ReactivateEntityKeyResponse\",\"EntityKeyIndexStatus\":\"%s\"}",
              r->base, store_key_status(e, ent, k));
    return 0;
}

int h_whoami(emu_req *r)
{
    emu_json(r, 200);
    sb_printf(&r->out,
              "{\"@odata.context\":\"%s$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse\","
              "\"BusinessUnitId\":\"%s\",\"UserId\":\"%s\",\"OrganizationId\":\"%s\"}",
              r->base, EMU_BU_ID, EMU_USER_ID, EMU_ORG_ID);
    return 0;
}
