#include "sbuf.h"
#include "request.h"
#include "metadata_json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "components.h"
#include "metadata_store.h"
#include "query.h"
#include "store.h"

#define MAX_EXPAND 8

/* Property kinds: s string, b boolean, n number, g guid, l label, m managed boolean
 * ({Value,…}), v enum in a complex ({Value}), a array, o other object. */
typedef struct {
    const char *name;
    char kind;
} mprop;

struct mtype {
    const char *name;
    const mprop *props;
    const mprop *typed;
    const char *const *navs;
    int attr_type; /* derived attribute types: the dv_attr_type, or -1; -2 lookups */
};

static const mprop entity_props[] = {
    {"MetadataId", 'g'},
    {"LogicalName", 's'},
    {"SchemaName", 's'},
    {"EntitySetName", 's'},
    {"LogicalCollectionName", 's'},
    {"CollectionSchemaName", 's'},
    {"PrimaryIdAttribute", 's'},
    {"PrimaryNameAttribute", 's'},
    {"PrimaryImageAttribute", 's'},
    {"ObjectTypeCode", 'n'},
    {"OwnershipType", 's'},
    {"TableType", 's'},
    {"DisplayName", 'l'},
    {"DisplayCollectionName", 'l'},
    {"Description", 'l'},
    {"ChangeTrackingEnabled", 'b'},
    {"IsCustomEntity", 'b'},
    {"IsManaged", 'b'},
    {"IsActivity", 'b'},
    {"IsActivityParty", 'b'},
    {"IsIntersect", 'b'},
    {"IsPrivate", 'b'},
    {"IsLogicalEntity", 'b'},
    {"IsValidForAdvancedFind", 'b'},
    {"IsAvailableOffline", 'b'},
    {"IsBusinessProcessEnabled", 'b'},
    {"IsStateModelAware", 'b'},
    {"IsSolutionAware", 'b'},
    {"IsReadOnlyInMobileClient", 'b'},
    {"HasNotes", 'b'},
    {"HasActivities", 'b'},
    {"HasEmailAddresses", 'b'},
    {"AutoCreateAccessTeams", 'b'},
    {"IsAuditEnabled", 'm'},
    {"IsCustomizable", 'm'},
    {"IsRenameable", 'm'},
    {"IsValidForQueue", 'm'},
    {"IsConnectionsEnabled", 'm'},
    {"IsMappable", 'm'},
    {"CanCreateAttributes", 'm'},
    {"CanModifyAdditionalSettings", 'm'},
    {"IntroducedVersion", 's'},
    {"ExternalName", 's'},
    {"ExternalCollectionName", 's'},
    {"EntityColor", 's'},
    {"IconVectorName", 's'},
    {"HasChanged", 'b'},
    {NULL, 0},
};
static const char *const entity_navs[] = {"Attributes",
                                          "Keys",
                                          "ManyToOneRelationships",
                                          "OneToManyRelationships",
                                          "ManyToManyRelationships",
                                          NULL};

static const mprop attr_props[] = {
    {"MetadataId", 'g'},        {"LogicalName", 's'},
    {"SchemaName", 's'},        {"EntityLogicalName", 's'},
    {"AttributeType", 's'},     {"AttributeTypeName", 'v'},
    {"AttributeOf", 's'},       {"ColumnNumber", 'n'},
    {"DisplayName", 'l'},       {"Description", 'l'},
    {"RequiredLevel", 'v'},     {"IsPrimaryId", 'b'},
    {"IsPrimaryName", 'b'},     {"IsCustomAttribute", 'b'},
    {"IsManaged", 'b'},         {"IsLogical", 'b'},
    {"IsSecured", 'b'},         {"IsFilterable", 'b'},
    {"IsSearchable", 'b'},      {"IsRetrievable", 'b'},
    {"IsValidForCreate", 'b'},  {"IsValidForRead", 'b'},
    {"IsValidForUpdate", 'b'},  {"IsValidODataAttribute", 'b'},
    {"IsRequiredForForm", 'b'}, {"IsValidForAdvancedFind", 'm'},
    {"IsAuditEnabled", 'm'},    {"IsCustomizable", 'm'},
    {"IsRenameable", 'm'},      {"SourceType", 'n'},
    {"IntroducedVersion", 's'}, {"ExternalName", 's'},
    {"HasChanged", 'b'},        {NULL, 0},
};
static const char *const no_navs[] = {NULL};
static const char *const optionset_navs[] = {"OptionSet", "GlobalOptionSet", NULL};
static const char *const bool_navs[] = {"OptionSet", "GlobalOptionSet", NULL};

static const mprop string_props[] = {
    {"MaxLength", 'n'},     {"DatabaseLength", 'n'}, {"Format", 's'},  {"FormatName", 'v'},
    {"IsLocalizable", 'b'}, {"YomiOf", 's'},         {"ImeMode", 's'}, {NULL, 0}};
static const mprop memo_props[] = {
    {"MaxLength", 'n'}, {"Format", 's'}, {"FormatName", 'v'}, {"ImeMode", 's'}, {NULL, 0}};
static const mprop int_props[] = {{"MinValue", 'n'}, {"MaxValue", 'n'}, {"Format", 's'}, {NULL, 0}};
static const mprop bigint_props[] = {{"MinValue", 'n'}, {"MaxValue", 'n'}, {NULL, 0}};
static const mprop decimal_props[] = {
    {"MinValue", 'n'}, {"MaxValue", 'n'}, {"Precision", 'n'}, {"ImeMode", 's'}, {NULL, 0}};
static const mprop money_props[] = {
    {"MinValue", 'n'},       {"MaxValue", 'n'},      {"Precision", 'n'}, {"PrecisionSource", 'n'},
    {"IsBaseCurrency", 'b'}, {"CalculationOf", 's'}, {"ImeMode", 's'},   {NULL, 0}};
static const mprop bool_props[] = {{"DefaultValue", 'b'}, {NULL, 0}};
static const mprop datetime_props[] = {{"Format", 's'},
                                       {"DateTimeBehavior", 'v'},
                                       {"CanChangeDateTimeBehavior", 'm'},
                                       {"MinSupportedValue", 's'},
                                       {"MaxSupportedValue", 's'},
                                       {"ImeMode", 's'},
                                       {NULL, 0}};
static const mprop lookup_props[] = {{"Targets", 'a'}, {"Format", 's'}, {NULL, 0}};
static const mprop picklist_props[] = {{"DefaultFormValue", 'n'}, {NULL, 0}};
static const mprop state_props[] = {{"DefaultFormValue", 'n'}, {NULL, 0}};

const mtype MT_ENTITY = {"EntityMetadata", entity_props, NULL, entity_navs, -1};
const mtype MT_ATTR = {"AttributeMetadata", attr_props, NULL, no_navs, -1};

static const mtype attr_casts[] = {
    {"StringAttributeMetadata", attr_props, string_props, no_navs, DV_ATTR_STRING},
    {"MemoAttributeMetadata", attr_props, memo_props, no_navs, DV_ATTR_MEMO},
    {"IntegerAttributeMetadata", attr_props, int_props, no_navs, DV_ATTR_INTEGER},
    {"BigIntAttributeMetadata", attr_props, bigint_props, no_navs, DV_ATTR_BIGINT},
    {"DecimalAttributeMetadata", attr_props, decimal_props, no_navs, DV_ATTR_DECIMAL},
    {"DoubleAttributeMetadata", attr_props, decimal_props, no_navs, DV_ATTR_DOUBLE},
    {"MoneyAttributeMetadata", attr_props, money_props, no_navs, DV_ATTR_MONEY},
    {"BooleanAttributeMetadata", attr_props, bool_props, bool_navs, DV_ATTR_BOOLEAN},
    {"DateTimeAttributeMetadata", attr_props, datetime_props, no_navs, DV_ATTR_DATETIME},
    {"LookupAttributeMetadata", attr_props, lookup_props, no_navs, -2},
    {"UniqueIdentifierAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_UNIQUEIDENTIFIER},
    {"PicklistAttributeMetadata", attr_props, picklist_props, optionset_navs, DV_ATTR_PICKLIST},
    {"StateAttributeMetadata", attr_props, state_props, optionset_navs, DV_ATTR_STATE},
    {"StatusAttributeMetadata", attr_props, state_props, optionset_navs, DV_ATTR_STATUS},
    /* The base's other derived types: documented, never holding a column here. */
    {"EnumAttributeMetadata", attr_props, picklist_props, optionset_navs, -3},
    {"MultiSelectPicklistAttributeMetadata", attr_props, picklist_props, optionset_navs,
     DV_ATTR_MULTISELECT},
    {"ImageAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_IMAGE},
    {"FileAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_FILE},
    {"EntityNameAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_ENTITYNAME},
    {"ManagedPropertyAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_MANAGEDPROPERTY},
};

static const mprop key_props[] = {
    {"MetadataId", 'g'},        {"LogicalName", 's'},   {"SchemaName", 's'},
    {"EntityLogicalName", 's'}, {"KeyAttributes", 'a'}, {"EntityKeyIndexStatus", 's'},
    {"DisplayName", 'l'},       {"IsManaged", 'b'},     {"IsCustomizable", 'm'},
    {"IsSecondaryKey", 'b'},    {"IsExportKey", 'b'},   {"IsSynchronized", 'b'},
    {"IntroducedVersion", 's'}, {"HasChanged", 'b'},    {NULL, 0}};
static const char *const key_navs[] = {"AsyncJob", NULL};
const mtype MT_KEY = {"EntityKeyMetadata", key_props, NULL, key_navs, -1};

static const mprop rel_props[] = {{"MetadataId", 'g'},
                                  {"SchemaName", 's'},
                                  {"RelationshipType", 's'},
                                  {"IsCustomRelationship", 'b'},
                                  {"IsManaged", 'b'},
                                  {"IsValidForAdvancedFind", 'b'},
                                  {"IsHierarchical", 'b'},
                                  {"SecurityTypes", 's'},
                                  {"IsCustomizable", 'm'},
                                  {"IntroducedVersion", 's'},
                                  {"ReferencedAttribute", 's'},
                                  {"ReferencedEntity", 's'},
                                  {"ReferencingAttribute", 's'},
                                  {"ReferencingEntity", 's'},
                                  {"ReferencedEntityNavigationPropertyName", 's'},
                                  {"ReferencingEntityNavigationPropertyName", 's'},
                                  {"RelationshipBehavior", 'n'},
                                  {"CascadeConfiguration", 'o'},
                                  {"AssociatedMenuConfiguration", 'o'},
                                  {"HasChanged", 'b'},
                                  {NULL, 0}};
const mtype MT_REL = {"OneToManyRelationshipMetadata", rel_props, NULL, no_navs, -1};
static const mprop rel_many_props[] = {{"MetadataId", 'g'},
                                       {"SchemaName", 's'},
                                       {"RelationshipType", 's'},
                                       {"IsCustomRelationship", 'b'},
                                       {"IsManaged", 'b'},
                                       {"IntersectEntityName", 's'},
                                       {"Entity1LogicalName", 's'},
                                       {"Entity2LogicalName", 's'},
                                       {"Entity1IntersectAttribute", 's'},
                                       {"Entity2IntersectAttribute", 's'},
                                       {"Entity1NavigationPropertyName", 's'},
                                       {"Entity2NavigationPropertyName", 's'},
                                       {NULL, 0}};
const mtype MT_REL_MANY = {"ManyToManyRelationshipMetadata", rel_many_props, NULL, no_navs, -1};
static const mprop optionset_props[] = {{"MetadataId", 'g'},        {"Name", 's'},
                                        {"IsGlobal", 'b'},          {"IsManaged", 'b'},
                                        {"IsCustomOptionSet", 'b'}, {"OptionSetType", 's'},
                                        {"ExternalTypeName", 's'},  {"IntroducedVersion", 's'},
                                        {"HasChanged", 'b'},        {"Description", 'l'},
                                        {"DisplayName", 'l'},       {"Options", 'a'},
                                        {"TrueOption", 'o'},        {"FalseOption", 'o'},
                                        {"IsCustomizable", 'm'},    {NULL, 0}};
const mtype MT_OPTIONSET = {"OptionSetMetadataBase", optionset_props, NULL, no_navs, -1};

const mtype *mtype_attr_cast(const char *name, size_t n)
{
    if (n == 17 && strncmp(name, "AttributeMetadata", 17) == 0) return &MT_ATTR;
    for (size_t i = 0; i < sizeof attr_casts / sizeof attr_casts[0]; i++)
        if (strlen(attr_casts[i].name) == n && strncmp(attr_casts[i].name, name, n) == 0)
            return &attr_casts[i];
    return NULL;
}

const char *mtype_name(const mtype *t)
{
    return t->name;
}

int mtype_attr_is(const mtype *t, const emu_entity *e, const dv_attribute_def *a)
{
    (void)e;
    if (t == &MT_ATTR) return 1;
    if (t->attr_type == -2) return a->type == DV_ATTR_LOOKUP || a->type == DV_ATTR_OWNER;
    return t->attr_type >= 0 && (int)a->type == t->attr_type;
}

static const mprop *find_prop(const mtype *t, const char *s, size_t n)
{
    for (int i = 0; t->props[i].name; i++)
        if (strlen(t->props[i].name) == n && strncmp(t->props[i].name, s, n) == 0)
            return &t->props[i];
    if (t->typed)
        for (int i = 0; t->typed[i].name; i++)
            if (strlen(t->typed[i].name) == n && strncmp(t->typed[i].name, s, n) == 0)
                return &t->typed[i];
    return NULL;
}

static int find_nav(const mtype *t, const char *s, size_t n)
{
    for (int i = 0; t->navs[i]; i++)
        if (strlen(t->navs[i]) == n && strncmp(t->navs[i], s, n) == 0) return i;
    return -1;
}

int mtype_has_nav(const mtype *t, const char *nav)
{
    return find_nav(t, nav, strlen(nav)) >= 0;
}

/* ---- items ---- */

void mitems_add(mitems *l, int kind, emu_entity *t, int i, int j)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = realloc(l->v, sizeof *l->v * (size_t)l->cap);
    }
    l->v[l->n++] = (mitem){kind, t, i, j, NULL};
}

void mitems_all(mitems *l, int kind, emu_entity *t)
{
    int n = kind == MI_ATTR ? t->def.n_attributes : t->def.n_keys;
    for (int i = 0; i < n; i++)
        mitems_add(l, kind, t, i, 0);
}

void mitems_free(mitems *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* A customer lookup (account or contact): stored without a target under a customer name. */
static int is_customer(const dv_attribute_def *a)
{
    return a->type == DV_ATTR_LOOKUP && !a->target &&
           (!strcmp(a->logical_name, "parentcustomerid") ||
            !strcmp(a->logical_name, "customerid") || strstr(a->logical_name, "customer") != NULL);
}

/* The tables a lookup column points to: its target; for a lookup stored without one (a
 * customer lookup, or a system lookup of an imported table), the tables Dataverse gives
 * those columns; none when unknown. */
static int lookup_targets(const dv_attribute_def *a, const char *out[2])
{
    if (a->type == DV_ATTR_OWNER) {
        out[0] = a->target ? a->target : "systemuser";
        return 1;
    }
    if (a->type != DV_ATTR_LOOKUP) return 0;
    if (a->target) {
        out[0] = a->target;
        return 1;
    }
    static const struct {
        const char *column, *target;
    } known[] = {
        {"createdby", "systemuser"},
        {"modifiedby", "systemuser"},
        {"createdonbehalfby", "systemuser"},
        {"modifiedonbehalfby", "systemuser"},
        {"owninguser", "systemuser"},
        {"owningteam", "team"},
        {"owningbusinessunit", "businessunit"},
        {"transactioncurrencyid", "transactioncurrency"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(a->logical_name, known[i].column)) {
            out[0] = known[i].target;
            return 1;
        }
    if (is_customer(a)) {
        out[0] = "account", out[1] = "contact";
        return 2;
    }
    return 0;
}

void mitems_relationships(dv_emulator *e, const emu_entity *entity, char side, mitems *out)
{
    for (int k = 0; k < e->n_ents; k++) {
        emu_entity *t = &e->ents[k];
        if (side == 'm' && t != entity) continue;
        for (int i = 0; i < t->def.n_attributes; i++) {
            const char *tg[2];
            int n = lookup_targets(&t->def.attributes[i], tg);
            for (int j = 0; j < n; j++) {
                if (side == '1' && strcmp(tg[j], entity->def.logical_name) != 0) continue;
                if (!store_by_logical(e, tg[j], strlen(tg[j]))) continue;
                mitems_add(out, MI_REL, t, i, j);
            }
        }
    }
}

typedef struct {
    const char *referencing, *attribute, *referenced;
    char *out;
    size_t cap;
    int found;
} rel_find;

static void rel_found(void *ud, const char *name, const char *referencing, const char *attribute,
                      const char *referenced)
{
    rel_find *f = ud;
    if (f->found || !name || !referencing || !attribute || strcmp(referencing, f->referencing) ||
        strcmp(attribute, f->attribute) || (referenced && strcmp(referenced, f->referenced)))
        return;
    snprintf(f->out, f->cap, "%s", name);
    f->found = 1;
}

void mrel_schema(dv_emulator *e, const mitem *it, char *out, size_t cap)
{
    const dv_attribute_def *a = &it->t->def.attributes[it->i];
    const char *tg[2];
    lookup_targets(a, tg);
    char *json = mdx_get(e, MDX_REL, it->t->def.logical_name, a->logical_name, NULL);
    char *name = json ? mdx_str(e, json, "$.SchemaName") : NULL;
    free(json);
    if (name) {
        snprintf(out, cap, "%s", name);
        free(name);
        return;
    }
    /* The name an imported solution gave the relationship. */
    rel_find f = {it->t->def.logical_name, a->logical_name, tg[it->j], out, cap, 0};
    comp_relationships(e, rel_found, &f);
    if (f.found) return;
    static const struct {
        const char *entity, *attr, *target, *name;
    } known[] = {
        {"account", "primarycontactid", "contact", "account_primary_contact"},
        {"account", "parentaccountid", "account", "account_parent_account"},
        {"contact", "parentcustomerid", "account", "contact_customer_accounts"},
        {"contact", "parentcustomerid", "contact", "contact_customer_contacts"},
        {"systemuser", "businessunitid", "businessunit", "business_unit_system_users"},
    };
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (!strcmp(known[k].entity, it->t->def.logical_name) &&
            !strcmp(known[k].attr, a->logical_name) && !strcmp(known[k].target, tg[it->j])) {
            snprintf(out, cap, "%s", known[k].name);
            return;
        }
    const char *ln = a->logical_name, *set = it->t->def.entity_set_name;
    if (a->type == DV_ATTR_OWNER)
        snprintf(out, cap, "owner_%s", set);
    else if (!strcmp(ln, "createdby") || !strcmp(ln, "modifiedby"))
        snprintf(out, cap, "lk_%s_%s", it->t->def.logical_name, ln);
    else if (!strcmp(ln, "owningbusinessunit"))
        snprintf(out, cap, "business_unit_%s", set);
    else if (!strcmp(ln, "owninguser"))
        snprintf(out, cap, "user_%s", set);
    else
        snprintf(out, cap, "%s_%s_%s", tg[it->j], it->t->def.logical_name, a->logical_name);
}

void mitem_id(const mitem *it, char out[37])
{
    char name[400];
    switch (it->kind) {
    case MI_ENTITY:
        snprintf(out, 37, "%s", it->t->metadata_id);
        return;
    case MI_ATTR:
        snprintf(name, sizeof name, "%s.attr.%s", it->t->def.logical_name,
                 it->t->def.attributes[it->i].logical_name);
        break;
    case MI_KEY:
        snprintf(name, sizeof name, "%s.key.%s", it->t->def.logical_name,
                 it->t->def.keys[it->i].logical_name);
        break;
    case MI_OPTIONSET:
        snprintf(name, sizeof name, "globaloptionset.%s", it->name);
        break;
    default:
        snprintf(name, sizeof name, "%s.rel.%s.%d", it->t->def.logical_name,
                 it->t->def.attributes[it->i].logical_name, it->j);
        break;
    }
    guid_from_name(name, out);
}

/* ---- documents ---- */

static void label(sbuf *b, const char *text)
{
    if (!text) {
        sb_puts(b, "{\"LocalizedLabels\":[],\"UserLocalizedLabel\":null}");
        return;
    }
    sb_puts(b, "{\"LocalizedLabels\":[{\"Label\":");
    sb_json_str(b, text);
    sb_puts(b, ",\"LanguageCode\":1033,\"IsManaged\":false,\"HasChanged\":null}],"
               "\"UserLocalizedLabel\":{\"Label\":");
    sb_json_str(b, text);
    sb_puts(b, ",\"LanguageCode\":1033,\"IsManaged\":false,\"HasChanged\":null}}");
}

static void managed(sbuf *b, const char *name, int value, const char *logical)
{
    sb_printf(b,
              ",\"%s\":{\"Value\":%s,\"CanBeChanged\":true,\"ManagedPropertyLogicalName\":\"%s\"}",
              name, value ? "true" : "false", logical);
}

static void str_prop(sbuf *b, const char *name, const char *v)
{
    sb_printf(b, ",\"%s\":", name);
    if (v)
        sb_json_str(b, v);
    else
        sb_puts(b, "null");
}

/* Replaces doc with doc merged with the stored extras (JSON merge patch); keys starting
 * with '_' are the store's own and stay out. */
static void overlay(dv_emulator *e, sbuf *doc, const char *kind, const char *entity,
                    const char *name)
{
    char *x = mdx_get(e, kind, entity, name, NULL);
    if (!x) return;
    sqlite3_stmt *st = store_stmt(e, "SELECT json_patch(?1, json_remove(?2, '$._OptionSet', "
                                     "'$.AsyncJobId', '$._created', '$._GlobalOptionSet'))");
    sqlite3_bind_text(st, 1, sb_str(doc), (int)doc->n, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, x, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        doc->n = 0;
        sb_puts(doc, m);
    }
    sqlite3_reset(st);
    free(x);
    /* A label the client gave is also the user's label. */
    static const char *labels[] = {"DisplayName", "DisplayCollectionName", "Description"};
    for (size_t i = 0; i < 3; i++) {
        char path[80], ul[80];
        snprintf(path, sizeof path, "$.%s.LocalizedLabels[0]", labels[i]);
        snprintf(ul, sizeof ul, "$.%s.UserLocalizedLabel", labels[i]);
        st = store_stmt(e, "SELECT json_set(?1, ?3, json_extract(?1, ?2)) "
                           "WHERE json_type(?1, ?2) = 'object'");
        sqlite3_bind_text(st, 1, sb_str(doc), (int)doc->n, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, ul, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
            char *m = strdup((const char *)sqlite3_column_text(st, 0));
            doc->n = 0;
            sb_puts(doc, m);
            free(m);
        }
        sqlite3_reset(st);
    }
}

static int object_type_code(const emu_entity *t, int ord)
{
    static const struct {
        const char *n;
        int c;
    } codes[] = {
        {"account", 1},         {"contact", 2},     {"systemuser", 8},        {"businessunit", 10},
        {"organization", 1019}, {"solution", 7100}, {"asyncoperation", 4700}, {"team", 9}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!strcmp(codes[i].n, t->def.logical_name)) return codes[i].c;
    return 10000 + ord;
}

static const char *ownership(const emu_entity *t)
{
    const char *n = t->def.logical_name;
    if (!strcmp(n, "organization") || !strcmp(n, "solution")) return "OrganizationOwned";
    if (!strcmp(n, "systemuser") || !strcmp(n, "businessunit")) return "BusinessOwned";
    return "UserOwned";
}

static void entity_doc(dv_emulator *e, const emu_entity *t, sbuf *b)
{
    const dv_entity_def *d = &t->def;
    int custom = t->solution_id[0] != 0;
    int ord = (int)(t - e->ents);
    char *x = mdx_get(e, MDX_ENTITY, d->logical_name, "", NULL);
    /* A table created over the Web API is custom and unmanaged, in or out of a solution. */
    if (x && mdx_int(e, x, "$._created", 0)) custom = 1;
    int managed_sol = 0;
    if (t->solution_id[0]) {
        sqlite3_stmt *st = store_stmt(e, "SELECT data->>'$.ismanaged' FROM row WHERE "
                                         "entity='solution' AND id=?1");
        sqlite3_bind_text(st, 1, t->solution_id, -1, SQLITE_STATIC);
        managed_sol = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
        sqlite3_reset(st);
    }
    free(x);
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.EntityMetadata\",\"MetadataId\":\"%s\"",
              t->metadata_id);
    str_prop(b, "LogicalName", d->logical_name);
    str_prop(b, "SchemaName", d->logical_name);
    str_prop(b, "EntitySetName", d->entity_set_name);
    str_prop(b, "LogicalCollectionName", d->entity_set_name);
    str_prop(b, "CollectionSchemaName", d->entity_set_name);
    str_prop(b, "PrimaryIdAttribute", d->primary_id);
    str_prop(b, "PrimaryNameAttribute", d->primary_name);
    str_prop(b, "PrimaryImageAttribute", NULL);
    sb_printf(b, ",\"ObjectTypeCode\":%d", object_type_code(t, ord));
    str_prop(b, "OwnershipType", ownership(t));
    str_prop(b, "TableType", "Standard");
    sb_puts(b, ",\"DisplayName\":");
    label(b, d->display_name);
    sb_puts(b, ",\"DisplayCollectionName\":");
    label(b, d->display_name ? d->entity_set_name : NULL);
    sb_puts(b, ",\"Description\":");
    label(b, NULL);
    int sys = !strcmp(d->logical_name, "solution") || !strcmp(d->logical_name, "organization") ||
              !strcmp(d->logical_name, "asyncoperation");
    sb_printf(b,
              ",\"ChangeTrackingEnabled\":%s,\"IsCustomEntity\":%s,\"IsManaged\":%s,"
              "\"IsActivity\":false,\"IsActivityParty\":false,\"IsIntersect\":false,"
              "\"IsPrivate\":false,\"IsLogicalEntity\":false,\"IsValidForAdvancedFind\":%s,"
              "\"IsAvailableOffline\":%s,\"IsBusinessProcessEnabled\":false,"
              "\"IsStateModelAware\":true,\"IsSolutionAware\":false,"
              "\"IsReadOnlyInMobileClient\":false,\"HasNotes\":%s,\"HasActivities\":%s,"
              "\"HasEmailAddresses\":false,\"AutoCreateAccessTeams\":false",
              d->change_tracking ? "true" : "false", custom ? "true" : "false",
              managed_sol ? "true" : "false", sys ? "false" : "true", sys ? "false" : "true",
              custom || sys ? "false" : "true", custom || sys ? "false" : "true");
    managed(b, "IsAuditEnabled", !sys, "canmodifyauditsettings");
    managed(b, "IsCustomizable", !managed_sol, "iscustomizable");
    managed(b, "IsRenameable", !managed_sol, "isrenameable");
    managed(b, "IsValidForQueue", 0, "canmodifyqueuesettings");
    managed(b, "IsConnectionsEnabled", 0, "canmodifyconnectionsettings");
    managed(b, "IsMappable", 1, "ismappable");
    managed(b, "CanCreateAttributes", !managed_sol, "cancreateattributes");
    managed(b, "CanModifyAdditionalSettings", 1, "canmodifyadditionalsettings");
    str_prop(b, "IntroducedVersion", custom ? "1.0.0.0" : "5.0.0.0");
    str_prop(b, "ExternalName", NULL);
    str_prop(b, "ExternalCollectionName", NULL);
    str_prop(b, "EntityColor", NULL);
    str_prop(b, "IconVectorName", NULL);
    sb_puts(b, ",\"HasChanged\":null}");
    overlay(e, b, MDX_ENTITY, d->logical_name, "");
}

static const char *attr_type_name(const dv_attribute_def *a)
{
    if (is_customer(a)) return "Customer";
    return dv_attr_type_code(a->type);
}

static const char *attr_odata_type(const dv_attribute_def *a)
{
    switch (a->type) {
    case DV_ATTR_STRING:
        return "String";
    case DV_ATTR_MEMO:
        return "Memo";
    case DV_ATTR_INTEGER:
        return "Integer";
    case DV_ATTR_BIGINT:
        return "BigInt";
    case DV_ATTR_DECIMAL:
        return "Decimal";
    case DV_ATTR_DOUBLE:
        return "Double";
    case DV_ATTR_MONEY:
        return "Money";
    case DV_ATTR_BOOLEAN:
        return "Boolean";
    case DV_ATTR_DATETIME:
        return "DateTime";
    case DV_ATTR_LOOKUP:
    case DV_ATTR_OWNER:
        return "Lookup";
    case DV_ATTR_UNIQUEIDENTIFIER:
        return "UniqueIdentifier";
    case DV_ATTR_PICKLIST:
        return "Picklist";
    case DV_ATTR_STATE:
        return "State";
    case DV_ATTR_STATUS:
        return "Status";
    case DV_ATTR_FILE:
        return "File";
    case DV_ATTR_IMAGE:
        return "Image";
    case DV_ATTR_MULTISELECT:
        return "MultiSelectPicklist";
    case DV_ATTR_ENTITYNAME:
        return "EntityName";
    case DV_ATTR_MANAGEDPROPERTY:
        return "ManagedProperty";
    default: /* virtual, party list, calendar rules: the base type */
        return "";
    }
}

static int is_system_column(const emu_entity *t, const dv_attribute_def *a)
{
    static const char *sys[] = {"createdon",          "modifiedon", "versionnumber", "statecode",
                                "statuscode",         "ownerid",    "createdby",     "modifiedby",
                                "owningbusinessunit", "owninguser", "owningteam",    NULL};
    if (!strcmp(a->logical_name, t->def.primary_id)) return 1;
    for (int i = 0; sys[i]; i++)
        if (!strcmp(sys[i], a->logical_name)) return 1;
    return 0;
}

static void attr_doc(dv_emulator *e, const emu_entity *t, int idx, sbuf *b)
{
    const dv_attribute_def *a = &t->def.attributes[idx];
    mitem it = {MI_ATTR, (emu_entity *)t, idx, 0, NULL};
    char id[37];
    mitem_id(&it, id);
    const char *tn = attr_type_name(a);
    char *x = mdx_get(e, MDX_ATTR, t->def.logical_name, a->logical_name, NULL);
    int custom =
        (x && mdx_int(e, x, "$._created", 0)) || (t->solution_id[0] && !is_system_column(t, a));
    free(x);
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.%sAttributeMetadata\","
              "\"MetadataId\":\"%s\"",
              attr_odata_type(a), id);
    str_prop(b, "LogicalName", a->logical_name);
    str_prop(b, "SchemaName", a->logical_name);
    str_prop(b, "EntityLogicalName", t->def.logical_name);
    str_prop(b, "AttributeType", tn);
    const char *tname = dv_attr_type_name(a->type);
    sb_printf(b, ",\"AttributeTypeName\":{\"Value\":\"%s%s\"}", tname ? tname : tn,
              tname ? "" : "Type");
    str_prop(b, "AttributeOf", NULL);
    sb_printf(b, ",\"ColumnNumber\":%d", idx + 1);
    sb_puts(b, ",\"DisplayName\":");
    label(b, a->display_name);
    sb_puts(b, ",\"Description\":");
    label(b, NULL);
    /* A primary key is SystemRequired whatever its definition says. */
    int level = !strcmp(a->logical_name, t->def.primary_id) ? 2 : a->required;
    const char *req = level == 2 ? "SystemRequired" : level ? "ApplicationRequired" : "None";
    sb_printf(b,
              ",\"RequiredLevel\":{\"Value\":\"%s\",\"CanBeChanged\":%s,"
              "\"ManagedPropertyLogicalName\":\"canmodifyrequirementlevelsettings\"}",
              req, level == 2 ? "false" : "true");
    int pid = !strcmp(a->logical_name, t->def.primary_id);
    int pname = t->def.primary_name && !strcmp(a->logical_name, t->def.primary_name);
    int sysread = !strcmp(a->logical_name, "createdon") || !strcmp(a->logical_name, "modifiedon") ||
                  !strcmp(a->logical_name, "versionnumber");
    sb_printf(b,
              ",\"IsPrimaryId\":%s,\"IsPrimaryName\":%s,\"IsCustomAttribute\":%s,"
              "\"IsManaged\":false,\"IsLogical\":false,\"IsSecured\":false,\"IsFilterable\":true,"
              "\"IsSearchable\":true,\"IsRetrievable\":true,\"IsValidForCreate\":%s,"
              "\"IsValidForRead\":true,\"IsValidForUpdate\":%s,\"IsValidODataAttribute\":true,"
              "\"IsRequiredForForm\":%s",
              pid ? "true" : "false", pname ? "true" : "false", custom ? "true" : "false",
              sysread ? "false" : "true", sysread || pid ? "false" : "true",
              pname ? "true" : "false");
    managed(b, "IsValidForAdvancedFind", 1, "canmodifysearchsettings");
    managed(b, "IsAuditEnabled", 1, "canmodifyauditsettings");
    managed(b, "IsCustomizable", 1, "iscustomizable");
    managed(b, "IsRenameable", 1, "isrenameable");
    sb_printf(b, ",\"SourceType\":0");
    str_prop(b, "IntroducedVersion", custom ? "1.0.0.0" : "5.0.0.0");
    str_prop(b, "ExternalName", NULL);
    sb_puts(b, ",\"HasChanged\":null");
    switch (a->type) {
    case DV_ATTR_STRING:
    case DV_ATTR_MEMO: {
        int len = a->max_length ? a->max_length : a->type == DV_ATTR_MEMO ? 2000 : 100;
        sb_printf(b, ",\"MaxLength\":%d", len);
        if (a->type == DV_ATTR_STRING) sb_printf(b, ",\"DatabaseLength\":%d", len * 2);
        const char *fmt = a->type == DV_ATTR_MEMO                   ? "TextArea"
                          : strstr(a->logical_name, "emailaddress") ? "Email"
                          : strstr(a->logical_name, "telephone") || strstr(a->logical_name, "phone")
                              ? "Phone"
                          : strstr(a->logical_name, "websiteurl") ? "Url"
                                                                  : "Text";
        sb_printf(b, ",\"Format\":\"%s\",\"FormatName\":{\"Value\":\"%s\"}", fmt, fmt);
        if (a->type == DV_ATTR_STRING) sb_puts(b, ",\"IsLocalizable\":false,\"YomiOf\":null");
        sb_puts(b, ",\"ImeMode\":\"Auto\"");
        break;
    }
    case DV_ATTR_INTEGER:
        sb_puts(b, ",\"MinValue\":-2147483648,\"MaxValue\":2147483647,\"Format\":\"None\"");
        break;
    case DV_ATTR_BIGINT:
        sb_puts(b, ",\"MinValue\":-9223372036854775808,\"MaxValue\":9223372036854775807");
        break;
    case DV_ATTR_DECIMAL:
        sb_puts(b, ",\"MinValue\":-100000000000,\"MaxValue\":100000000000,\"Precision\":2,"
                   "\"ImeMode\":\"Auto\"");
        break;
    case DV_ATTR_DOUBLE:
        sb_puts(b, ",\"MinValue\":-100000000000,\"MaxValue\":100000000000,\"Precision\":5,"
                   "\"ImeMode\":\"Auto\"");
        break;
    case DV_ATTR_MONEY:
        sb_puts(b, ",\"MinValue\":-922337203685477,\"MaxValue\":922337203685477,\"Precision\":2,"
                   "\"PrecisionSource\":2,\"IsBaseCurrency\":false,\"CalculationOf\":null,"
                   "\"ImeMode\":\"Auto\"");
        break;
    case DV_ATTR_BOOLEAN:
        sb_puts(b, ",\"DefaultValue\":false");
        break;
    case DV_ATTR_DATETIME: {
        int date_only = strstr(a->logical_name, "birth") != NULL;
        sb_printf(b, ",\"Format\":\"%s\",\"DateTimeBehavior\":{\"Value\":\"%s\"}",
                  date_only ? "DateOnly" : "DateAndTime", date_only ? "DateOnly" : "UserLocal");
        managed(b, "CanChangeDateTimeBehavior", !sysread, "canchangedatetimebehavior");
        sb_puts(b, ",\"MinSupportedValue\":\"1753-01-01T00:00:00Z\","
                   "\"MaxSupportedValue\":\"9999-12-30T23:59:59Z\",\"ImeMode\":\"Inactive\"");
        break;
    }
    case DV_ATTR_LOOKUP:
    case DV_ATTR_OWNER: {
        const char *tg[2];
        int n = lookup_targets(a, tg);
        sb_puts(b, ",\"Targets\":[");
        for (int j = 0; j < n; j++) {
            if (j) sb_putc(b, ',');
            sb_json_str(b, tg[j]);
        }
        sb_puts(b, "],\"Format\":\"None\"");
        break;
    }
    case DV_ATTR_PICKLIST:
    case DV_ATTR_STATE:
    case DV_ATTR_STATUS:
        sb_printf(b, ",\"DefaultFormValue\":%s", a->type == DV_ATTR_PICKLIST ? "-1" : "0");
        break;
    default:
        break;
    }
    sb_putc(b, '}');
    overlay(e, b, MDX_ATTR, t->def.logical_name, a->logical_name);
}

static void key_doc(dv_emulator *e, const emu_entity *t, int idx, sbuf *b)
{
    const dv_key_def *k = &t->def.keys[idx];
    mitem it = {MI_KEY, (emu_entity *)t, idx, 0, NULL};
    char id[37];
    mitem_id(&it, id);
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.EntityKeyMetadata\","
              "\"MetadataId\":\"%s\"",
              id);
    str_prop(b, "LogicalName", k->logical_name);
    str_prop(b, "SchemaName", k->logical_name);
    str_prop(b, "EntityLogicalName", t->def.logical_name);
    sb_puts(b, ",\"KeyAttributes\":[");
    for (int j = 0; j < k->n_attributes; j++) {
        if (j) sb_putc(b, ',');
        sb_json_str(b, k->attributes[j]);
    }
    sb_printf(b, "],\"EntityKeyIndexStatus\":\"%s\",\"DisplayName\":",
              store_key_status(e, t->def.logical_name, k->logical_name));
    label(b, k->display_name ? k->display_name : k->logical_name);
    sb_puts(b, ",\"IsManaged\":false");
    managed(b, "IsCustomizable", 1, "iscustomizable");
    sb_puts(b, ",\"IsSecondaryKey\":false,\"IsExportKey\":false,\"IsSynchronized\":true");
    str_prop(b, "IntroducedVersion", "1.0.0.0");
    sb_puts(b, ",\"HasChanged\":null}");
    overlay(e, b, MDX_KEY, t->def.logical_name, k->logical_name);
}

static void cascade(sbuf *b, int parental)
{
    const char *c = parental ? "Cascade" : "NoCascade";
    sb_printf(b,
              ",\"CascadeConfiguration\":{\"Assign\":\"%s\",\"Delete\":\"%s\",\"Merge\":\"%s\","
              "\"Reparent\":\"%s\",\"Share\":\"%s\",\"Unshare\":\"%s\",\"RollupView\":"
              "\"NoCascade\",\"Archive\":\"NoCascade\"}",
              c, parental ? "Cascade" : "RemoveLink", c, c, c, c);
}

static void rel_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    const dv_attribute_def *a = &it->t->def.attributes[it->i];
    const char *tg[2];
    lookup_targets(a, tg);
    const emu_entity *ref = store_by_logical(e, tg[it->j], strlen(tg[it->j]));
    char id[37], schema[300], nav[300];
    mitem_id(it, id);
    mrel_schema(e, it, schema, sizeof schema);
    char *x = mdx_get(e, MDX_REL, it->t->def.logical_name, a->logical_name, NULL);
    int custom = x != NULL || it->t->solution_id[0];
    free(x);
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata\","
              "\"MetadataId\":\"%s\"",
              id);
    str_prop(b, "SchemaName", schema);
    sb_printf(b,
              ",\"RelationshipType\":\"OneToManyRelationship\",\"IsCustomRelationship\":%s,"
              "\"IsManaged\":false,\"IsValidForAdvancedFind\":true,\"IsHierarchical\":false,"
              "\"SecurityTypes\":\"%s\"",
              custom ? "true" : "false", a->type == DV_ATTR_OWNER ? "Pointer" : "Append");
    managed(b, "IsCustomizable", 1, "iscustomizable");
    str_prop(b, "IntroducedVersion", custom ? "1.0.0.0" : "5.0.0.0");
    str_prop(b, "ReferencedAttribute", ref ? ref->def.primary_id : NULL);
    str_prop(b, "ReferencedEntity", tg[it->j]);
    str_prop(b, "ReferencingAttribute", a->logical_name);
    str_prop(b, "ReferencingEntity", it->t->def.logical_name);
    str_prop(b, "ReferencedEntityNavigationPropertyName", schema);
    if (is_customer(a))
        snprintf(nav, sizeof nav, "%s_%s", a->logical_name, tg[it->j]);
    else
        snprintf(nav, sizeof nav, "%s", a->logical_name);
    str_prop(b, "ReferencingEntityNavigationPropertyName", nav);
    sb_printf(b, ",\"RelationshipBehavior\":%d", a->type == DV_ATTR_OWNER ? 0 : 1);
    cascade(b, a->type == DV_ATTR_OWNER);
    sb_puts(b, ",\"AssociatedMenuConfiguration\":{\"Behavior\":\"UseCollectionName\","
               "\"Group\":\"Details\",\"Label\":{\"LocalizedLabels\":[],\"UserLocalizedLabel\":"
               "null},\"Order\":10000,\"IsCustomizable\":true,\"Icon\":null,\"ViewId\":"
               "\"00000000-0000-0000-0000-000000000000\",\"AvailableOffline\":true,"
               "\"MenuId\":null,\"QueryApi\":null}");
    sb_puts(b, ",\"HasChanged\":null}");
    overlay(e, b, MDX_REL, it->t->def.logical_name, a->logical_name);
}

static void global_optionset_doc(dv_emulator *e, const char *name, sbuf *b);

void mitem_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    switch (it->kind) {
    case MI_OPTIONSET:
        global_optionset_doc(e, it->name, b);
        break;
    case MI_ENTITY:
        entity_doc(e, it->t, b);
        break;
    case MI_ATTR:
        attr_doc(e, it->t, it->i, b);
        break;
    case MI_KEY:
        key_doc(e, it->t, it->i, b);
        break;
    default:
        rel_doc(e, it, b);
        break;
    }
}

/* ---- option sets ---- */

typedef struct {
    int value;
    const char *label;
    int state; /* status options: their state */
} opt;

static const opt industry[] = {{1, "Accounting", 0},
                               {2, "Agriculture and Non-petrol Natural Resource Extraction", 0},
                               {3, "Broadcasting Printing and Publishing", 0},
                               {4, "Brokers", 0},
                               {5, "Building Supply Retail", 0},
                               {6, "Business Services", 0},
                               {7, "Consulting", 0},
                               {8, "Consumer Services", 0},
                               {9, "Design, Direction and Creative Management", 0},
                               {10, "Distributors, Dispatchers and Processors", 0},
                               {11, "Doctor's Offices and Clinics", 0},
                               {12, "Durable Manufacturing", 0},
                               {13, "Eating and Drinking Places", 0},
                               {14, "Entertainment Retail", 0},
                               {15, "Equipment Rental and Leasing", 0},
                               {16, "Financial", 0},
                               {17, "Food and Tobacco Processing", 0},
                               {18, "Inbound Capital Intensive Processing", 0},
                               {19, "Inbound Repair and Services", 0},
                               {20, "Insurance", 0},
                               {21, "Legal Services", 0},
                               {22, "Non-Durable Merchandise Retail", 0},
                               {23, "Outbound Consumer Service", 0},
                               {24, "Petrochemical Extraction and Distribution", 0},
                               {25, "Service Retail", 0},
                               {26, "SIG Affiliations", 0},
                               {27, "Social Services", 0},
                               {28, "Special Outbound Trade Contractors", 0},
                               {29, "Specialty Realty", 0},
                               {30, "Transportation", 0},
                               {31, "Utility Creation and Distribution", 0},
                               {32, "Vehicle Retail", 0},
                               {33, "Wholesale", 0},
                               {0, NULL, 0}};
static const opt category[] = {{1, "Preferred Customer", 0}, {2, "Standard", 0}, {0, NULL, 0}};
static const opt states[] = {{0, "Active", 0}, {1, "Inactive", 0}, {0, NULL, 0}};
static const opt statuses[] = {{1, "Active", 0}, {2, "Inactive", 1}, {0, NULL, 0}};

static void option_json(sbuf *b, const char *type, int value, const char *text, int state,
                        int is_status)
{
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.%s\",\"Value\":%d,\"Color\":null,"
              "\"IsManaged\":false,\"ExternalValue\":null,\"ParentValues\":[],"
              "\"MetadataId\":null,\"HasChanged\":null",
              type, value);
    if (is_status == 1) sb_printf(b, ",\"State\":%d,\"TransitionData\":null", state);
    if (is_status == 2)
        sb_printf(b, ",\"DefaultStatus\":%d,\"InvariantName\":\"%s\"", value + 1, text);
    sb_puts(b, ",\"Label\":");
    label(b, text);
    sb_puts(b, ",\"Description\":");
    label(b, NULL);
    sb_putc(b, '}');
}

/* A global choice from its stored definition; "null" when there is none of that name. */
static void global_optionset_doc(dv_emulator *e, const char *name, sbuf *b)
{
    char *x = name ? mdx_get(e, MDX_OPTIONSET, "", name, NULL) : NULL;
    if (!x) {
        sb_puts(b, "null");
        return;
    }
    mitem it = {MI_OPTIONSET, NULL, 0, 0, name};
    char id[37];
    mitem_id(&it, id);
    char *type = mdx_str(e, x, "$.OptionSetType");
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.OptionSetMetadata\",\"MetadataId\":"
              "\"%s\",\"Name\":",
              id);
    sb_json_str(b, name);
    sb_printf(
        b,
        ",\"IsGlobal\":true,\"IsManaged\":false,\"IsCustomOptionSet\":true,"
        "\"OptionSetType\":\"%s\",\"ExternalTypeName\":null,\"IntroducedVersion\":\"1.0.0.0\","
        "\"HasChanged\":null,\"Description\":",
        type ? type : "Picklist");
    free(type);
    label(b, NULL);
    char *dn = mdx_str(e, x, "$.DisplayName.LocalizedLabels[0].Label");
    sb_puts(b, ",\"DisplayName\":");
    label(b, dn);
    free(dn);
    sb_puts(b, ",\"Options\":[");
    sqlite3_stmt *st =
        store_stmt(e, "SELECT value->>'$.Value', value->>'$.Label.LocalizedLabels[0].Label' "
                      "FROM json_each(?1, '$.Options')");
    sqlite3_bind_text(st, 1, x, -1, SQLITE_TRANSIENT);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n++) sb_putc(b, ',');
        option_json(b, "OptionMetadata", sqlite3_column_int(st, 0),
                    (const char *)sqlite3_column_text(st, 1), 0, 0);
    }
    sqlite3_reset(st);
    sb_puts(b, "]}");
    free(x);
}

/* The OptionSet of a choice, state, status or yes/no column; "null" for other columns. */
static void optionset_doc(dv_emulator *e, const emu_entity *t, const dv_attribute_def *a, sbuf *b)
{
    if (a->type != DV_ATTR_PICKLIST && a->type != DV_ATTR_STATE && a->type != DV_ATTR_STATUS &&
        a->type != DV_ATTR_BOOLEAN) {
        sb_puts(b, "null");
        return;
    }
    char name[300], id[37];
    snprintf(name, sizeof name, "%s_%s", t->def.logical_name, a->logical_name);
    char idn[320];
    snprintf(idn, sizeof idn, "optionset.%s", name);
    guid_from_name(idn, id);
    char *x = mdx_get(e, MDX_ATTR, t->def.logical_name, a->logical_name, NULL);
    char tb[16];
    int stored = x && !strcmp(mdx_type(e, x, "$._OptionSet", tb), "object");
    if (a->type == DV_ATTR_BOOLEAN) {
        sb_printf(
            b,
            "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.BooleanOptionSetMetadata\","
            "\"MetadataId\":\"%s\",\"Name\":\"%s\",\"IsGlobal\":false,\"IsManaged\":false,"
            "\"IsCustomOptionSet\":%s,\"OptionSetType\":\"Boolean\",\"ExternalTypeName\":null,"
            "\"IntroducedVersion\":\"5.0.0.0\",\"HasChanged\":null,\"Description\":",
            id, name, x ? "true" : "false");
        label(b, NULL);
        sb_puts(b, ",\"DisplayName\":");
        label(b, a->display_name);
        sb_puts(b, ",\"TrueOption\":");
        char *tl =
            stored ? mdx_str(e, x, "$._OptionSet.TrueOption.Label.LocalizedLabels[0].Label") : NULL;
        char *fl = stored ? mdx_str(e, x, "$._OptionSet.FalseOption.Label.LocalizedLabels[0].Label")
                          : NULL;
        option_json(b, "OptionMetadata", 1, tl ? tl : "Yes", 0, 0);
        sb_puts(b, ",\"FalseOption\":");
        option_json(b, "OptionMetadata", 0, fl ? fl : "No", 0, 0);
        sb_putc(b, '}');
        free(tl), free(fl), free(x);
        return;
    }
    const char *set_type = a->type == DV_ATTR_STATE    ? "State"
                           : a->type == DV_ATTR_STATUS ? "Status"
                                                       : "Picklist";
    sb_printf(b,
              "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.OptionSetMetadata\",\"MetadataId\":"
              "\"%s\",\"Name\":\"%s\",\"IsGlobal\":false,\"IsManaged\":false,"
              "\"IsCustomOptionSet\":%s,\"OptionSetType\":\"%s\",\"ExternalTypeName\":null,"
              "\"IntroducedVersion\":\"5.0.0.0\",\"HasChanged\":null,\"Description\":",
              id, name, x ? "true" : "false", set_type);
    label(b, NULL);
    sb_puts(b, ",\"DisplayName\":");
    label(b, a->display_name);
    sb_puts(b, ",\"Options\":[");
    if (stored) {
        /* Options given when the column was created: Value and first label of each. */
        sqlite3_stmt *st =
            store_stmt(e, "SELECT value->>'$.Value', value->>'$.Label.LocalizedLabels[0].Label' "
                          "FROM json_each(?1, '$._OptionSet.Options')");
        sqlite3_bind_text(st, 1, x, -1, SQLITE_TRANSIENT);
        int n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (n++) sb_putc(b, ',');
            option_json(b, "OptionMetadata", sqlite3_column_int(st, 0),
                        (const char *)sqlite3_column_text(st, 1), 0, 0);
        }
        sqlite3_reset(st);
    } else {
        const opt *o = a->type == DV_ATTR_STATE                          ? states
                       : a->type == DV_ATTR_STATUS                       ? statuses
                       : !strcmp(a->logical_name, "industrycode")        ? industry
                       : !strcmp(a->logical_name, "accountcategorycode") ? category
                                                                         : NULL;
        const char *ot = a->type == DV_ATTR_STATE    ? "StateOptionMetadata"
                         : a->type == DV_ATTR_STATUS ? "StatusOptionMetadata"
                                                     : "OptionMetadata";
        for (int i = 0; o && o[i].label; i++) {
            if (i) sb_putc(b, ',');
            option_json(b, ot, o[i].value, o[i].label, o[i].state,
                        a->type == DV_ATTR_STATUS  ? 1
                        : a->type == DV_ATTR_STATE ? 2
                                                   : 0);
        }
    }
    sb_puts(b, "]}");
    free(x);
}

/* ---- query options ---- */

typedef struct {
    char **names;
    int n; /* -1: everything */
} propsel;

struct mquery {
    const mtype *type;
    propsel sel;
    char *filter; /* rewritten: enum literals plain strings */
    int n_ex;
    struct {
        char *name;
        const mtype *type;
        struct mquery *q;
    } ex[MAX_EXPAND];
};

static void propsel_free(propsel *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
}

void mquery_free(mquery *q)
{
    if (!q) return;
    propsel_free(&q->sel);
    free(q->filter);
    for (int i = 0; i < q->n_ex; i++) {
        free(q->ex[i].name);
        mquery_free(q->ex[i].q);
    }
    free(q);
}

/* Splits s at top-level separators sep (outside parentheses and quotes) into pieces. */
static int split_top(const char *s, char sep, char ***out)
{
    int n = 0, depth = 0, q = 0;
    *out = calloc(strlen(s) + 2, sizeof(char *));
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == '\'' && depth >= 0) q = !q;
        if (!q && *p == '(') depth++;
        if (!q && *p == ')') depth--;
        if (*p == 0 || (!q && depth == 0 && *p == sep)) {
            const char *b = start, *e = p;
            while (b < e && *b == ' ')
                b++;
            while (e > b && e[-1] == ' ')
                e--;
            (*out)[n++] = strndup(b, (size_t)(e - b));
            if (!*p) break;
            start = p + 1;
        }
    }
    return n;
}

static void free_pieces(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Enum literals (Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned') compare as their name. */
static char *strip_enum_casts(const char *s)
{
    sbuf b = {0};
    int q = 0;
    for (const char *p = s; *p;) {
        if (*p == '\'') q = !q;
        if (!q && strncmp(p, "Microsoft.Dynamics.CRM.", 23) == 0) {
            const char *e = p + 23;
            while (isalnum((unsigned char)*e) || *e == '_')
                e++;
            if (*e == '\'') {
                p = e;
                continue;
            }
        }
        sb_putc(&b, *p++);
    }
    char *out = strdup(sb_str(&b));
    sb_free(&b);
    return out;
}

static int parse_select(emu_req *r, const mtype *t, const char *arg, propsel *s)
{
    s->names = NULL;
    s->n = -1;
    if (!arg) return 0;
    char **v;
    int n = split_top(arg, ',', &v);
    s->n = 0;
    s->names = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        if (!find_prop(t, v[i], strlen(v[i]))) {
            int nav = find_nav(t, v[i], strlen(v[i])) >= 0;
            emu_error(r, 400, BAD_QUERY,
                      nav ? "The property '%s' is a navigation property of type "
                            "'Microsoft.Dynamics.CRM.%s': use $expand."
                          : "Could not find a property named '%s' on type "
                            "'Microsoft.Dynamics.CRM.%s'.",
                      v[i], t->name);
            free_pieces(v, n);
            return -1;
        }
        s->names[s->n++] = strdup(v[i]);
    }
    free_pieces(v, n);
    return 0;
}

static const mtype *nav_type(const mtype *t, const char *nav)
{
    if (t == &MT_ENTITY) {
        if (!strcmp(nav, "Attributes")) return &MT_ATTR;
        if (!strcmp(nav, "Keys")) return &MT_KEY;
        if (!strcmp(nav, "ManyToManyRelationships")) return &MT_REL_MANY;
        return &MT_REL;
    }
    if (!strcmp(nav, "OptionSet") || !strcmp(nav, "GlobalOptionSet")) return &MT_OPTIONSET;
    return NULL; /* AsyncJob: no nested options served */
}

static int filter_resolve(void *ud, const char *name, size_t n, char *expr, size_t cap);

mquery *mquery_parse(emu_req *r, const mtype *t, const char *select, const char *filter,
                     const char *expand)
{
    mquery *q = calloc(1, sizeof *q);
    q->type = t;
    q->sel.n = -1;
    if (parse_select(r, t, select, &q->sel)) goto fail;
    if (filter) {
        q->filter = strip_enum_casts(filter);
        query_filter f;
        if (query_filter_compile(&f, q->filter, t->name, filter_resolve, (void *)t, 2)) {
            emu_error(r, f.unserved ? 501 : 400, BAD_QUERY, "%s", f.err);
            query_filter_free(&f);
            goto fail;
        }
        query_filter_free(&f);
    }
    if (expand) {
        char **v;
        int n = split_top(expand, ',', &v);
        for (int i = 0; i < n; i++) {
            char *item = v[i];
            char *paren = strchr(item, '(');
            size_t nl = paren ? (size_t)(paren - item) : strlen(item);
            int again = 0;
            for (int k = 0; k < q->n_ex; k++)
                if (strlen(q->ex[k].name) == nl && !strncmp(q->ex[k].name, item, nl)) again = 1;
            if (again || q->n_ex == MAX_EXPAND) {
                emu_error(r, 400, BAD_QUERY, "The navigation property '%.*s' is expanded twice.",
                          (int)nl, item);
                free_pieces(v, n);
                goto fail;
            }
            if (find_nav(t, item, nl) < 0) {
                emu_error(r, 400, BAD_QUERY,
                          "Could not find a navigation property named '%.*s' on type "
                          "'Microsoft.Dynamics.CRM.%s'.",
                          (int)nl, item, t->name);
                free_pieces(v, n);
                goto fail;
            }
            char *name = strndup(item, nl);
            const mtype *nt = nav_type(t, name);
            char *sel = NULL, *flt = NULL, *exp = NULL;
            if (paren) {
                size_t len = strlen(paren);
                if (len < 2 || paren[len - 1] != ')') {
                    emu_error(r, 400, BAD_QUERY, "Bad Request - Error in query syntax: '%s'.",
                              item);
                    free(name);
                    free_pieces(v, n);
                    goto fail;
                }
                char *inner = strndup(paren + 1, len - 2);
                char **o;
                int no = split_top(inner, ';', &o);
                free(inner);
                int bad = 0;
                for (int k = 0; k < no && !bad; k++) {
                    if (!*o[k]) continue;
                    if (!strncmp(o[k], "$select=", 8))
                        sel = strdup(o[k] + 8);
                    else if (!strncmp(o[k], "$filter=", 8))
                        flt = strdup(o[k] + 8);
                    else if (!strncmp(o[k], "$expand=", 8))
                        exp = strdup(o[k] + 8);
                    else {
                        char *eq = strchr(o[k], '=');
                        emu_error(r, 501, BAD_QUERY,
                                  "not served: the '%.*s' option inside $expand on definitions.",
                                  eq ? (int)(eq - o[k]) : (int)strlen(o[k]), o[k]);
                        bad = 1;
                    }
                }
                free_pieces(o, no);
                if (!bad && !nt && (sel || flt || exp)) {
                    emu_error(r, 501, BAD_QUERY,
                              "not served: query options inside $expand=%s on definitions.", name);
                    bad = 1;
                }
                if (bad) {
                    free(sel), free(flt), free(exp), free(name);
                    free_pieces(v, n);
                    goto fail;
                }
            }
            mquery *sub = NULL;
            if (nt) {
                sub = mquery_parse(r, nt, sel, flt, exp);
                if (!sub) {
                    free(sel), free(flt), free(exp), free(name);
                    free_pieces(v, n);
                    goto fail;
                }
            }
            free(sel), free(flt), free(exp);
            q->ex[q->n_ex].name = name;
            q->ex[q->n_ex].type = nt;
            q->ex[q->n_ex++].q = sub;
        }
        free_pieces(v, n);
    }
    return q;
fail:
    mquery_free(q);
    return NULL;
}

void mquery_context(const mquery *q, sbuf *b)
{
    if (q->sel.n < 0 && q->n_ex == 0) return;
    sb_putc(b, '(');
    int n = 0;
    for (int i = 0; i < q->sel.n; i++)
        sb_printf(b, "%s%s", n++ ? "," : "", q->sel.names[i]);
    for (int i = 0; i < q->n_ex; i++) {
        sb_printf(b, "%s%s", n++ ? "," : "", q->ex[i].name);
        if (q->ex[i].q && (q->ex[i].q->sel.n >= 0 || q->ex[i].q->n_ex))
            mquery_context(q->ex[i].q, b);
        else
            sb_puts(b, "()");
    }
    sb_putc(b, ')');
}

static int filter_resolve(void *ud, const char *name, size_t n, char *expr, size_t cap)
{
    const mtype *t = ud;
    const char *slash = memchr(name, '/', n);
    size_t head = slash ? (size_t)(slash - name) : n;
    const mprop *p = find_prop(t, name, head);
    if (!p) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)name[i]) || name[i] == '/' || name[i] == '_')) return 0;
    char path[300];
    snprintf(path, sizeof path, "%.*s", (int)n, name);
    for (char *c = path; *c; c++)
        if (*c == '/') *c = '.';
    int kind = 0;
    if (!slash) {
        switch (p->kind) {
        case 's':
            kind = QK_STRING;
            break;
        case 'b':
            kind = QK_BOOL;
            break;
        case 'n':
            kind = QK_NUMBER;
            break;
        case 'g':
            kind = QK_GUID;
            break;
        default:
            return 0;
        }
    } else if (p->kind == 'm' && !strcmp(path + head, ".Value")) {
        kind = QK_BOOL;
    } else if (p->kind == 'v' && !strcmp(path + head, ".Value")) {
        kind = QK_STRING;
    } else if (p->kind == 'l' && !strcmp(path + head, ".UserLocalizedLabel.Label")) {
        kind = QK_STRING;
    } else {
        return 0;
    }
    snprintf(expr, cap, "(?1->>'$.%s')", path);
    return kind;
}

/* 1 when doc passes the filter (always when there is none). */
static int passes(dv_emulator *e, const mquery *q, const char *doc)
{
    if (!q || !q->filter) return 1;
    query_filter f;
    if (query_filter_compile(&f, q->filter, q->type->name, filter_resolve, (void *)q->type, 2)) {
        query_filter_free(&f);
        return 0;
    }
    sbuf sql = {0};
    sb_printf(&sql, "SELECT 1 WHERE %s", sb_str(&f.sql));
    sqlite3_stmt *st = store_stmt(e, sb_str(&sql));
    sb_free(&sql);
    int hit = 0;
    if (st) {
        sqlite3_bind_text(st, 1, doc, -1, SQLITE_TRANSIENT);
        query_filter_bind(&f, st);
        hit = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
    }
    query_filter_free(&f);
    return hit;
}

/* doc reduced to the selected properties (plus @odata.type and MetadataId, which the
 * service always sends), without its closing brace. */
static void project(dv_emulator *e, const propsel *sel, const char *doc, sbuf *out)
{
    if (sel->n < 0) {
        size_t n = strlen(doc);
        sb_put(out, doc, n - 1);
        return;
    }
    sbuf names = {0};
    sb_puts(&names, "[\"@odata.type\",\"MetadataId\"");
    for (int i = 0; i < sel->n; i++) {
        sb_putc(&names, ',');
        sb_json_str(&names, sel->names[i]);
    }
    sb_putc(&names, ']');
    sqlite3_stmt *st =
        store_stmt(e, "SELECT json_group_object(n.value, CASE j.type WHEN 'true' THEN json('true') "
                      "WHEN 'false' THEN json('false') WHEN 'object' THEN json(j.value) "
                      "WHEN 'array' THEN json(j.value) ELSE j.value END) "
                      "FROM json_each(?2) n LEFT JOIN json_each(?1) j ON j.key = n.value "
                      "WHERE j.key IS NOT NULL OR n.key > 1");
    sqlite3_bind_text(st, 1, doc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, sb_str(&names), -1, SQLITE_TRANSIENT);
    const char *res = "{}";
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        res = (const char *)sqlite3_column_text(st, 0);
    sb_put(out, res, strlen(res) - 1);
    if (st) sqlite3_reset(st);
    sb_free(&names);
}

static int write_nav(emu_req *r, const mitem *it, const char *nav, const mquery *sub, sbuf *out)
{
    dv_emulator *e = r->emu;
    mitems l = {0};
    int rc = 0;
    if (it->kind == MI_ENTITY) {
        if (!strcmp(nav, "Attributes"))
            mitems_all(&l, MI_ATTR, it->t);
        else if (!strcmp(nav, "Keys"))
            mitems_all(&l, MI_KEY, it->t);
        else if (!strcmp(nav, "ManyToOneRelationships"))
            mitems_relationships(e, it->t, 'm', &l);
        else if (!strcmp(nav, "OneToManyRelationships"))
            mitems_relationships(e, it->t, '1', &l);
        rc = mquery_write_list(r, sub, &l, out);
        mitems_free(&l);
        return rc;
    }
    if (it->kind == MI_ATTR) {
        const dv_attribute_def *a = &it->t->def.attributes[it->i];
        char *x = mdx_get(e, MDX_ATTR, it->t->def.logical_name, a->logical_name, NULL);
        char *global = x ? mdx_str(e, x, "$._GlobalOptionSet") : NULL;
        free(x);
        sbuf doc = {0};
        if (global)
            global_optionset_doc(e, global, &doc); /* both navigation properties name it */
        else if (!strcmp(nav, "OptionSet"))
            optionset_doc(e, it->t, a, &doc);
        else
            sb_puts(&doc, "null");
        free(global);
        if (!sub || sub->sel.n < 0 || strcmp(sb_str(&doc), "null") == 0) {
            sb_put(out, doc.p, doc.n);
        } else {
            project(e, &sub->sel, sb_str(&doc), out);
            sb_putc(out, '}');
        }
        sb_free(&doc);
        return 0;
    }
    if (it->kind == MI_KEY) {
        char *x =
            mdx_get(e, MDX_KEY, it->t->def.logical_name, it->t->def.keys[it->i].logical_name, NULL);
        char *job = x ? mdx_str(e, x, "$.AsyncJobId") : NULL;
        free(x);
        emu_entity *jobs = store_by_logical(e, "asyncoperation", 14);
        char *data = NULL;
        if (job && jobs && store_row_get(e, jobs, job, &data, NULL)) {
            sb_puts(out, data);
            free(data);
        } else {
            sb_puts(out, "null");
        }
        free(job);
        return 0;
    }
    sb_puts(out, "null");
    return 0;
}

static int write_item(emu_req *r, const mquery *q, const mitem *it, const char *doc,
                      const char *first, sbuf *out)
{
    static const propsel all = {NULL, -1};
    const propsel *sel = q ? &q->sel : &all;
    sbuf body = {0};
    project(r->emu, sel, doc, &body);
    sb_putc(out, '{');
    if (first) sb_puts(out, first);
    if (body.n > 1) {
        if (first) sb_putc(out, ',');
        sb_put(out, body.p + 1, body.n - 1);
    }
    sb_free(&body);
    for (int i = 0; q && i < q->n_ex; i++) {
        sb_printf(out, ",\"%s\":", q->ex[i].name);
        if (write_nav(r, it, q->ex[i].name, q->ex[i].q, out)) return -1;
    }
    sb_putc(out, '}');
    return 0;
}

int mquery_write_list(emu_req *r, const mquery *q, const mitems *items, sbuf *out)
{
    sb_putc(out, '[');
    int n = 0;
    for (int i = 0; i < items->n; i++) {
        sbuf doc = {0};
        mitem_doc(r->emu, &items->v[i], &doc);
        if (passes(r->emu, q, sb_str(&doc))) {
            if (n++) sb_putc(out, ',');
            if (write_item(r, q, &items->v[i], sb_str(&doc), NULL, out)) {
                sb_free(&doc);
                return -1;
            }
        }
        sb_free(&doc);
    }
    sb_putc(out, ']');
    return 0;
}

int mquery_write_one(emu_req *r, const mquery *q, const mitem *it, const char *first, sbuf *out)
{
    sbuf doc = {0};
    mitem_doc(r->emu, it, &doc);
    int rc = write_item(r, q, it, sb_str(&doc), first, out);
    sb_free(&doc);
    return rc;
}

int mitem_write_nav(emu_req *r, const mitem *it, const char *nav, const mquery *sub, sbuf *out)
{
    return write_nav(r, it, nav, sub, out);
}
