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

/* What the property values of one document are read from: the item, and the facts about
 * it that several properties share, worked out once before any is written. */
typedef struct {
    dv_emulator *e;
    const mitem *it;
    const emu_entity *t;
    const dv_attribute_def *a; /* a column, or the lookup behind a relationship */
    const dv_key_def *k;
    char id[37];
    int custom;        /* made by a customizer (over the Web API or in a solution) */
    int managed_sol;   /* a table: part of a managed solution */
    int sys;           /* a table the system owns; a column only the system sets */
    int pid, pname;    /* a column: the primary id, the primary name */
    const char *tg[2]; /* a lookup's target tables */
    int n_tg;
    const emu_entity *ref; /* a relationship's referenced table, when here */
    char type_name[64];    /* a column's AttributeTypeName */
    const char *name;      /* an option set's Name, a relationship's SchemaName */
    char buf[300];         /* the name when it is made up here */
    char nav[300];         /* a relationship's referencing navigation property */
    const char *set_type;  /* an option set's OptionSetType */
    const char *display;   /* an option set's display name */
    char *x;               /* an option set's stored definition, or NULL */
    const char *options;   /* where in x its options are; NULL: the built-in ones */
} mdoc;

/* A property value: text (NULL for null), or a number or truth value. */
typedef struct {
    const char *s;
    long long n;
} mval;

/* Property kinds: s string, b boolean, n number, g guid, l label, m managed boolean
 * ({Value,…}), v enum in a complex ({Value}), a array, o other object. A value is fixed
 * JSON text (lit; for kind m its Value), worked out and written as its kind says (get),
 * or written whole (put). A property with none of the three is one $select takes but the
 * emulator has no value for: it is left out of the document. */
typedef struct {
    const char *name;
    char kind;
    const char *lit;
    mval (*get)(const mdoc *d);
    void (*put)(const mdoc *d, sbuf *b);
    const char *managed; /* kind m: its ManagedPropertyLogicalName */
} mprop;
#define NO_VALUE .lit = NULL

struct mtype {
    const char *name;
    const mprop *props;
    const mprop *typed;
    const char *const *navs;
    int attr_type; /* derived attribute types: the dv_attr_type, or -1; -2 lookups */
};

/* ---- what documents are made of ---- */

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

static const char *attr_type_name(const dv_attribute_def *a)
{
    if (is_customer(a)) return "Customer";
    return dv_attr_type_code(a->type);
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

static const char *text_format(const dv_attribute_def *a)
{
    if (a->type == DV_ATTR_MEMO) return "TextArea";
    if (strstr(a->logical_name, "emailaddress")) return "Email";
    if (strstr(a->logical_name, "telephone") || strstr(a->logical_name, "phone")) return "Phone";
    if (strstr(a->logical_name, "websiteurl")) return "Url";
    return "Text";
}

/* ---- property values ---- */

static mval text(const char *s)
{
    return (mval){s, 0};
}

static mval num(long long n)
{
    return (mval){NULL, n};
}

static mval none(const mdoc *d)
{
    (void)d;
    return text(NULL);
}

static mval id(const mdoc *d)
{
    return text(d->id);
}

static mval custom(const mdoc *d)
{
    return num(d->custom);
}

static mval version(const mdoc *d)
{
    return text(d->custom ? "1.0.0.0" : "5.0.0.0");
}

static mval not_sys(const mdoc *d)
{
    return num(!d->sys);
}

static mval ent_name(const mdoc *d)
{
    return text(d->t->def.logical_name);
}

static mval ent_set(const mdoc *d)
{
    return text(d->t->def.entity_set_name);
}

static mval ent_primary_id(const mdoc *d)
{
    return text(d->t->def.primary_id);
}

static mval ent_primary_name(const mdoc *d)
{
    return text(d->t->def.primary_name);
}

static mval ent_type_code(const mdoc *d)
{
    return num(object_type_code(d->t, (int)(d->t - d->e->ents)));
}

static mval ent_ownership(const mdoc *d)
{
    return text(ownership(d->t));
}

static mval ent_display(const mdoc *d)
{
    return text(d->t->def.display_name);
}

static mval ent_display_collection(const mdoc *d)
{
    return text(d->t->def.display_name ? d->t->def.entity_set_name : NULL);
}

static mval ent_change_tracking(const mdoc *d)
{
    return num(d->t->def.change_tracking);
}

static mval ent_managed(const mdoc *d)
{
    return num(d->managed_sol);
}

static mval ent_unmanaged(const mdoc *d)
{
    return num(!d->managed_sol);
}

/* Notes and activities: on the system's business tables only. */
static mval ent_has_notes(const mdoc *d)
{
    return num(!d->custom && !d->sys);
}

static mval col_name(const mdoc *d)
{
    return text(d->a->logical_name);
}

static mval col_type(const mdoc *d)
{
    return text(attr_type_name(d->a));
}

static mval col_type_name(const mdoc *d)
{
    return text(d->type_name);
}

static mval col_number(const mdoc *d)
{
    return num(d->it->i + 1);
}

static mval col_display(const mdoc *d)
{
    return text(d->a->display_name);
}

static mval col_primary_id(const mdoc *d)
{
    return num(d->pid);
}

static mval col_primary_name(const mdoc *d)
{
    return num(d->pname);
}

static mval col_updatable(const mdoc *d)
{
    return num(!d->sys && !d->pid);
}

static void col_required(const mdoc *d, sbuf *b)
{
    /* A primary key is SystemRequired whatever its definition says. */
    int level = d->pid ? 2 : d->a->required;
    sb_printf(b,
              "{\"Value\":\"%s\",\"CanBeChanged\":%s,"
              "\"ManagedPropertyLogicalName\":\"canmodifyrequirementlevelsettings\"}",
              level == 2 ? "SystemRequired"
              : level    ? "ApplicationRequired"
                         : "None",
              level == 2 ? "false" : "true");
}

static mval text_max_length(const mdoc *d)
{
    return num(d->a->max_length ? d->a->max_length : d->a->type == DV_ATTR_MEMO ? 2000 : 100);
}

static mval text_database_length(const mdoc *d)
{
    return num(2 * text_max_length(d).n);
}

static mval text_format_name(const mdoc *d)
{
    return text(text_format(d->a));
}

static mval date_format(const mdoc *d)
{
    return text(strstr(d->a->logical_name, "birth") ? "DateOnly" : "DateAndTime");
}

static mval date_behavior(const mdoc *d)
{
    return text(strstr(d->a->logical_name, "birth") ? "DateOnly" : "UserLocal");
}

static void strings(sbuf *b, const char *const *v, int n)
{
    sb_putc(b, '[');
    for (int j = 0; j < n; j++) {
        if (j) sb_putc(b, ',');
        sb_json_str(b, v[j]);
    }
    sb_putc(b, ']');
}

static void lookup_targets_list(const mdoc *d, sbuf *b)
{
    strings(b, d->tg, d->n_tg);
}

static mval key_name(const mdoc *d)
{
    return text(d->k->logical_name);
}

static void key_columns(const mdoc *d, sbuf *b)
{
    strings(b, (const char *const *)d->k->attributes, d->k->n_attributes);
}

static mval key_status(const mdoc *d)
{
    return text(store_key_status(d->e, d->t->def.logical_name, d->k->logical_name));
}

static mval key_display(const mdoc *d)
{
    return text(d->k->display_name ? d->k->display_name : d->k->logical_name);
}

static mval doc_name(const mdoc *d)
{
    return text(d->name);
}

static mval rel_security(const mdoc *d)
{
    return text(d->a->type == DV_ATTR_OWNER ? "Pointer" : "Append");
}

static mval rel_referenced_column(const mdoc *d)
{
    return text(d->ref ? d->ref->def.primary_id : NULL);
}

static mval rel_referenced(const mdoc *d)
{
    return text(d->tg[d->it->j]);
}

static mval rel_referencing_nav(const mdoc *d)
{
    return text(d->nav);
}

static mval rel_behavior(const mdoc *d)
{
    return num(d->a->type == DV_ATTR_OWNER ? 0 : 1);
}

static void rel_cascade(const mdoc *d, sbuf *b)
{
    int parental = d->a->type == DV_ATTR_OWNER;
    const char *c = parental ? "Cascade" : "NoCascade";
    sb_printf(b,
              "{\"Assign\":\"%s\",\"Delete\":\"%s\",\"Merge\":\"%s\",\"Reparent\":\"%s\","
              "\"Share\":\"%s\",\"Unshare\":\"%s\",\"RollupView\":\"NoCascade\","
              "\"Archive\":\"NoCascade\"}",
              c, parental ? "Cascade" : "RemoveLink", c, c, c, c);
}

static mval os_global(const mdoc *d)
{
    return num(d->it->kind == MI_OPTIONSET);
}

static mval os_type(const mdoc *d)
{
    return text(d->set_type);
}

static mval os_version(const mdoc *d)
{
    return text(d->it->kind == MI_OPTIONSET ? "1.0.0.0" : "5.0.0.0");
}

static mval os_display(const mdoc *d)
{
    return text(d->display);
}

/* Stored options: the Value and first label of each; else the built-in ones of the column. */
static void os_options(const mdoc *d, sbuf *b)
{
    sb_putc(b, '[');
    if (d->options) {
        sqlite3_stmt *st = store_stmt(d->e, "SELECT value->>'$.Value', "
                                            "value->>'$.Label.LocalizedLabels[0].Label' "
                                            "FROM json_each(?1, ?2)");
        sqlite3_bind_text(st, 1, d->x, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, d->options, -1, SQLITE_STATIC);
        int n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (n++) sb_putc(b, ',');
            option_json(b, "OptionMetadata", sqlite3_column_int(st, 0),
                        (const char *)sqlite3_column_text(st, 1), 0, 0);
        }
        sqlite3_reset(st);
    } else {
        const dv_attribute_def *a = d->a;
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
    sb_putc(b, ']');
}

/* A yes/no column's option: the label given when it was created, else Yes or No. */
static void os_bool_option(const mdoc *d, sbuf *b, int value)
{
    char *l = d->options
                  ? mdx_str(d->e, d->x,
                            value ? "$._OptionSet.TrueOption.Label.LocalizedLabels[0].Label"
                                  : "$._OptionSet.FalseOption.Label.LocalizedLabels[0].Label")
                  : NULL;
    option_json(b, "OptionMetadata", value, l ? l : value ? "Yes" : "No", 0, 0);
    free(l);
}

static void os_true(const mdoc *d, sbuf *b)
{
    os_bool_option(d, b, 1);
}

static void os_false(const mdoc *d, sbuf *b)
{
    os_bool_option(d, b, 0);
}

/* ---- types: their properties in document order ---- */

static const mprop entity_props[] = {
    {"MetadataId", 'g', .get = id},
    {"LogicalName", 's', .get = ent_name},
    {"SchemaName", 's', .get = ent_name},
    {"EntitySetName", 's', .get = ent_set},
    {"LogicalCollectionName", 's', .get = ent_set},
    {"CollectionSchemaName", 's', .get = ent_set},
    {"PrimaryIdAttribute", 's', .get = ent_primary_id},
    {"PrimaryNameAttribute", 's', .get = ent_primary_name},
    {"PrimaryImageAttribute", 's', .lit = "null"},
    {"ObjectTypeCode", 'n', .get = ent_type_code},
    {"OwnershipType", 's', .get = ent_ownership},
    {"TableType", 's', .lit = "\"Standard\""},
    {"DisplayName", 'l', .get = ent_display},
    {"DisplayCollectionName", 'l', .get = ent_display_collection},
    {"Description", 'l', .get = none},
    {"ChangeTrackingEnabled", 'b', .get = ent_change_tracking},
    {"IsCustomEntity", 'b', .get = custom},
    {"IsManaged", 'b', .get = ent_managed},
    {"IsActivity", 'b', .lit = "false"},
    {"IsActivityParty", 'b', .lit = "false"},
    {"IsIntersect", 'b', .lit = "false"},
    {"IsPrivate", 'b', .lit = "false"},
    {"IsLogicalEntity", 'b', .lit = "false"},
    {"IsValidForAdvancedFind", 'b', .get = not_sys},
    {"IsAvailableOffline", 'b', .get = not_sys},
    {"IsBusinessProcessEnabled", 'b', .lit = "false"},
    {"IsStateModelAware", 'b', .lit = "true"},
    {"IsSolutionAware", 'b', .lit = "false"},
    {"IsReadOnlyInMobileClient", 'b', .lit = "false"},
    {"HasNotes", 'b', .get = ent_has_notes},
    {"HasActivities", 'b', .get = ent_has_notes},
    {"HasEmailAddresses", 'b', .lit = "false"},
    {"AutoCreateAccessTeams", 'b', .lit = "false"},
    {"IsAuditEnabled", 'm', .get = not_sys, .managed = "canmodifyauditsettings"},
    {"IsCustomizable", 'm', .get = ent_unmanaged, .managed = "iscustomizable"},
    {"IsRenameable", 'm', .get = ent_unmanaged, .managed = "isrenameable"},
    {"IsValidForQueue", 'm', .lit = "false", .managed = "canmodifyqueuesettings"},
    {"IsConnectionsEnabled", 'm', .lit = "false", .managed = "canmodifyconnectionsettings"},
    {"IsMappable", 'm', .lit = "true", .managed = "ismappable"},
    {"CanCreateAttributes", 'm', .get = ent_unmanaged, .managed = "cancreateattributes"},
    {"CanModifyAdditionalSettings", 'm', .lit = "true", .managed = "canmodifyadditionalsettings"},
    {"IntroducedVersion", 's', .get = version},
    {"ExternalName", 's', .lit = "null"},
    {"ExternalCollectionName", 's', .lit = "null"},
    {"EntityColor", 's', .lit = "null"},
    {"IconVectorName", 's', .lit = "null"},
    {"HasChanged", 'b', .lit = "null"},
    {0},
};
static const char *const entity_navs[] = {"Attributes",
                                          "Keys",
                                          "ManyToOneRelationships",
                                          "OneToManyRelationships",
                                          "ManyToManyRelationships",
                                          NULL};

static const mprop attr_props[] = {
    {"MetadataId", 'g', .get = id},
    {"LogicalName", 's', .get = col_name},
    {"SchemaName", 's', .get = col_name},
    {"EntityLogicalName", 's', .get = ent_name},
    {"AttributeType", 's', .get = col_type},
    {"AttributeTypeName", 'v', .get = col_type_name},
    {"AttributeOf", 's', .lit = "null"},
    {"ColumnNumber", 'n', .get = col_number},
    {"DisplayName", 'l', .get = col_display},
    {"Description", 'l', .get = none},
    {"RequiredLevel", 'v', .put = col_required},
    {"IsPrimaryId", 'b', .get = col_primary_id},
    {"IsPrimaryName", 'b', .get = col_primary_name},
    {"IsCustomAttribute", 'b', .get = custom},
    {"IsManaged", 'b', .lit = "false"},
    {"IsLogical", 'b', .lit = "false"},
    {"IsSecured", 'b', .lit = "false"},
    {"IsFilterable", 'b', .lit = "true"},
    {"IsSearchable", 'b', .lit = "true"},
    {"IsRetrievable", 'b', .lit = "true"},
    {"IsValidForCreate", 'b', .get = not_sys},
    {"IsValidForRead", 'b', .lit = "true"},
    {"IsValidForUpdate", 'b', .get = col_updatable},
    {"IsValidODataAttribute", 'b', .lit = "true"},
    {"IsRequiredForForm", 'b', .get = col_primary_name},
    {"IsValidForAdvancedFind", 'm', .lit = "true", .managed = "canmodifysearchsettings"},
    {"IsAuditEnabled", 'm', .lit = "true", .managed = "canmodifyauditsettings"},
    {"IsCustomizable", 'm', .lit = "true", .managed = "iscustomizable"},
    {"IsRenameable", 'm', .lit = "true", .managed = "isrenameable"},
    {"SourceType", 'n', .lit = "0"},
    {"IntroducedVersion", 's', .get = version},
    {"ExternalName", 's', .lit = "null"},
    {"HasChanged", 'b', .lit = "null"},
    {0},
};
static const char *const no_navs[] = {NULL};
static const char *const optionset_navs[] = {"OptionSet", "GlobalOptionSet", NULL};
static const char *const bool_navs[] = {"OptionSet", "GlobalOptionSet", NULL};

static const mprop string_props[] = {{"MaxLength", 'n', .get = text_max_length},
                                     {"DatabaseLength", 'n', .get = text_database_length},
                                     {"Format", 's', .get = text_format_name},
                                     {"FormatName", 'v', .get = text_format_name},
                                     {"IsLocalizable", 'b', .lit = "false"},
                                     {"YomiOf", 's', .lit = "null"},
                                     {"ImeMode", 's', .lit = "\"Auto\""},
                                     {0}};
static const mprop memo_props[] = {{"MaxLength", 'n', .get = text_max_length},
                                   {"Format", 's', .get = text_format_name},
                                   {"FormatName", 'v', .get = text_format_name},
                                   {"ImeMode", 's', .lit = "\"Auto\""},
                                   {0}};
static const mprop int_props[] = {{"MinValue", 'n', .lit = "-2147483648"},
                                  {"MaxValue", 'n', .lit = "2147483647"},
                                  {"Format", 's', .lit = "\"None\""},
                                  {0}};
static const mprop bigint_props[] = {{"MinValue", 'n', .lit = "-9223372036854775808"},
                                     {"MaxValue", 'n', .lit = "9223372036854775807"},
                                     {0}};
static const mprop decimal_props[] = {{"MinValue", 'n', .lit = "-100000000000"},
                                      {"MaxValue", 'n', .lit = "100000000000"},
                                      {"Precision", 'n', .lit = "2"},
                                      {"ImeMode", 's', .lit = "\"Auto\""},
                                      {0}};
static const mprop double_props[] = {{"MinValue", 'n', .lit = "-100000000000"},
                                     {"MaxValue", 'n', .lit = "100000000000"},
                                     {"Precision", 'n', .lit = "5"},
                                     {"ImeMode", 's', .lit = "\"Auto\""},
                                     {0}};
static const mprop money_props[] = {{"MinValue", 'n', .lit = "-922337203685477"},
                                    {"MaxValue", 'n', .lit = "922337203685477"},
                                    {"Precision", 'n', .lit = "2"},
                                    {"PrecisionSource", 'n', .lit = "2"},
                                    {"IsBaseCurrency", 'b', .lit = "false"},
                                    {"CalculationOf", 's', .lit = "null"},
                                    {"ImeMode", 's', .lit = "\"Auto\""},
                                    {0}};
static const mprop bool_props[] = {{"DefaultValue", 'b', .lit = "false"}, {0}};
static const mprop datetime_props[] = {
    {"Format", 's', .get = date_format},
    {"DateTimeBehavior", 'v', .get = date_behavior},
    {"CanChangeDateTimeBehavior", 'm', .get = not_sys, .managed = "canchangedatetimebehavior"},
    {"MinSupportedValue", 's', .lit = "\"1753-01-01T00:00:00Z\""},
    {"MaxSupportedValue", 's', .lit = "\"9999-12-30T23:59:59Z\""},
    {"ImeMode", 's', .lit = "\"Inactive\""},
    {0}};
static const mprop lookup_props[] = {
    {"Targets", 'a', .put = lookup_targets_list}, {"Format", 's', .lit = "\"None\""}, {0}};
static const mprop picklist_props[] = {{"DefaultFormValue", 'n', .lit = "-1"}, {0}};
static const mprop state_props[] = {{"DefaultFormValue", 'n', .lit = "0"}, {0}};
/* No default is kept for a multi-select column. */
static const mprop multiselect_props[] = {{"DefaultFormValue", 'n', NO_VALUE}, {0}};

const mtype MT_ENTITY = {"EntityMetadata", entity_props, NULL, entity_navs, -1};
const mtype MT_ATTR = {"AttributeMetadata", attr_props, NULL, no_navs, -1};

static const mtype attr_casts[] = {
    {"StringAttributeMetadata", attr_props, string_props, no_navs, DV_ATTR_STRING},
    {"MemoAttributeMetadata", attr_props, memo_props, no_navs, DV_ATTR_MEMO},
    {"IntegerAttributeMetadata", attr_props, int_props, no_navs, DV_ATTR_INTEGER},
    {"BigIntAttributeMetadata", attr_props, bigint_props, no_navs, DV_ATTR_BIGINT},
    {"DecimalAttributeMetadata", attr_props, decimal_props, no_navs, DV_ATTR_DECIMAL},
    {"DoubleAttributeMetadata", attr_props, double_props, no_navs, DV_ATTR_DOUBLE},
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
    {"MultiSelectPicklistAttributeMetadata", attr_props, multiselect_props, optionset_navs,
     DV_ATTR_MULTISELECT},
    {"ImageAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_IMAGE},
    {"FileAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_FILE},
    {"EntityNameAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_ENTITYNAME},
    {"ManagedPropertyAttributeMetadata", attr_props, NULL, no_navs, DV_ATTR_MANAGEDPROPERTY},
};

static const mprop key_props[] = {
    {"MetadataId", 'g', .get = id},
    {"LogicalName", 's', .get = key_name},
    {"SchemaName", 's', .get = key_name},
    {"EntityLogicalName", 's', .get = ent_name},
    {"KeyAttributes", 'a', .put = key_columns},
    {"EntityKeyIndexStatus", 's', .get = key_status},
    {"DisplayName", 'l', .get = key_display},
    {"IsManaged", 'b', .lit = "false"},
    {"IsCustomizable", 'm', .lit = "true", .managed = "iscustomizable"},
    {"IsSecondaryKey", 'b', .lit = "false"},
    {"IsExportKey", 'b', .lit = "false"},
    {"IsSynchronized", 'b', .lit = "true"},
    {"IntroducedVersion", 's', .lit = "\"1.0.0.0\""},
    {"HasChanged", 'b', .lit = "null"},
    {0}};
static const char *const key_navs[] = {"AsyncJob", NULL};
const mtype MT_KEY = {"EntityKeyMetadata", key_props, NULL, key_navs, -1};

static const mprop rel_props[] = {
    {"MetadataId", 'g', .get = id},
    {"SchemaName", 's', .get = doc_name},
    {"RelationshipType", 's', .lit = "\"OneToManyRelationship\""},
    {"IsCustomRelationship", 'b', .get = custom},
    {"IsManaged", 'b', .lit = "false"},
    {"IsValidForAdvancedFind", 'b', .lit = "true"},
    {"IsHierarchical", 'b', .lit = "false"},
    {"SecurityTypes", 's', .get = rel_security},
    {"IsCustomizable", 'm', .lit = "true", .managed = "iscustomizable"},
    {"IntroducedVersion", 's', .get = version},
    {"ReferencedAttribute", 's', .get = rel_referenced_column},
    {"ReferencedEntity", 's', .get = rel_referenced},
    {"ReferencingAttribute", 's', .get = col_name},
    {"ReferencingEntity", 's', .get = ent_name},
    {"ReferencedEntityNavigationPropertyName", 's', .get = doc_name},
    {"ReferencingEntityNavigationPropertyName", 's', .get = rel_referencing_nav},
    {"RelationshipBehavior", 'n', .get = rel_behavior},
    {"CascadeConfiguration", 'o', .put = rel_cascade},
    {"AssociatedMenuConfiguration", 'o',
     .lit =
         "{\"Behavior\":\"UseCollectionName\",\"Group\":\"Details\",\"Label\":{\"LocalizedLabels\":"
         "[],\"UserLocalizedLabel\":null},\"Order\":10000,\"IsCustomizable\":true,\"Icon\":null,"
         "\"ViewId\":\"00000000-0000-0000-0000-000000000000\",\"AvailableOffline\":true,"
         "\"MenuId\":null,\"QueryApi\":null}"},
    {"HasChanged", 'b', .lit = "null"},
    {0}};
const mtype MT_REL = {"OneToManyRelationshipMetadata", rel_props, NULL, no_navs, -1};
/* Selectable only: the emulator keeps no many-to-many relationships. */
static const mprop rel_many_props[] = {{"MetadataId", 'g', NO_VALUE},
                                       {"SchemaName", 's', NO_VALUE},
                                       {"RelationshipType", 's', NO_VALUE},
                                       {"IsCustomRelationship", 'b', NO_VALUE},
                                       {"IsManaged", 'b', NO_VALUE},
                                       {"IntersectEntityName", 's', NO_VALUE},
                                       {"Entity1LogicalName", 's', NO_VALUE},
                                       {"Entity2LogicalName", 's', NO_VALUE},
                                       {"Entity1IntersectAttribute", 's', NO_VALUE},
                                       {"Entity2IntersectAttribute", 's', NO_VALUE},
                                       {"Entity1NavigationPropertyName", 's', NO_VALUE},
                                       {"Entity2NavigationPropertyName", 's', NO_VALUE},
                                       {0}};
const mtype MT_REL_MANY = {"ManyToManyRelationshipMetadata", rel_many_props, NULL, no_navs, -1};

/* What every option set document has, global or a column's own; then its options. */
static const mprop optionset_props[] = {{"MetadataId", 'g', .get = id},
                                        {"Name", 's', .get = doc_name},
                                        {"IsGlobal", 'b', .get = os_global},
                                        {"IsManaged", 'b', .lit = "false"},
                                        {"IsCustomOptionSet", 'b', .get = custom},
                                        {"OptionSetType", 's', .get = os_type},
                                        {"ExternalTypeName", 's', .lit = "null"},
                                        {"IntroducedVersion", 's', .get = os_version},
                                        {"HasChanged", 'b', .lit = "null"},
                                        {"Description", 'l', .get = none},
                                        {"DisplayName", 'l', .get = os_display},
                                        {0}};
static const mprop options_props[] = {{"Options", 'a', .put = os_options}, {0}};
static const mprop bool_options_props[] = {
    {"TrueOption", 'o', .put = os_true}, {"FalseOption", 'o', .put = os_false}, {0}};
/* The derived types' own properties, which $select takes on the base type. */
static const mprop optionset_derived_props[] = {{"Options", 'a', NO_VALUE},
                                                {"TrueOption", 'o', NO_VALUE},
                                                {"FalseOption", 'o', NO_VALUE},
                                                {"IsCustomizable", 'm', NO_VALUE},
                                                {0}};
const mtype MT_OPTIONSET = {"OptionSetMetadataBase", optionset_props, optionset_derived_props,
                            no_navs, -1};

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

static void write_props(const mdoc *d, const mprop *p, sbuf *b)
{
    for (; p && p->name; p++) {
        if (!p->lit && !p->get && !p->put) continue;
        sb_printf(b, ",\"%s\":", p->name);
        if (p->put) {
            p->put(d, b);
        } else if (p->kind == 'm') {
            sb_printf(b,
                      "{\"Value\":%s,\"CanBeChanged\":true,\"ManagedPropertyLogicalName\":\"%s\"}",
                      p->lit        ? p->lit
                      : p->get(d).n ? "true"
                                    : "false",
                      p->managed);
        } else if (p->lit) {
            sb_puts(b, p->lit);
        } else {
            mval v = p->get(d);
            if (p->kind == 'b') {
                sb_puts(b, v.n ? "true" : "false");
            } else if (p->kind == 'n') {
                sb_printf(b, "%lld", v.n);
            } else if (p->kind == 'l') {
                label(b, v.s);
            } else if (p->kind == 'v') {
                sb_puts(b, "{\"Value\":");
                sb_json_str(b, v.s ? v.s : "");
                sb_putc(b, '}');
            } else if (v.s) {
                sb_json_str(b, v.s);
            } else {
                sb_puts(b, "null");
            }
        }
    }
}

/* {"@odata.type":"#Microsoft.Dynamics.CRM.<type>", the properties, then those of typed}. */
static void write_doc(const mdoc *d, const char *type, const mprop *props, const mprop *typed,
                      sbuf *b)
{
    sb_printf(b, "{\"@odata.type\":\"#Microsoft.Dynamics.CRM.%s\"", type);
    write_props(d, props, b);
    write_props(d, typed, b);
    sb_putc(b, '}');
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

static void entity_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    const emu_entity *t = it->t;
    mdoc d = {.e = e, .it = it, .t = t};
    snprintf(d.id, sizeof d.id, "%s", t->metadata_id);
    d.custom = t->solution_id[0] != 0;
    char *x = mdx_get(e, MDX_ENTITY, t->def.logical_name, "", NULL);
    /* A table created over the Web API is custom and unmanaged, in or out of a solution. */
    if (x && mdx_int(e, x, "$._created", 0)) d.custom = 1;
    free(x);
    if (t->solution_id[0]) {
        sqlite3_stmt *st = store_rows_stmt(e, "solution",
                                           "SELECT data->>'$.ismanaged' FROM row WHERE "
                                           "entity='solution' AND id=?1");
        sqlite3_bind_text(st, 1, t->solution_id, -1, SQLITE_STATIC);
        d.managed_sol = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
        sqlite3_reset(st);
    }
    const char *n = t->def.logical_name;
    d.sys = !strcmp(n, "solution") || !strcmp(n, "organization") || !strcmp(n, "asyncoperation");
    write_doc(&d, MT_ENTITY.name, entity_props, NULL, b);
    overlay(e, b, MDX_ENTITY, n, "");
}

/* The derived type of a column: its cast, or the base type for columns of no derived type. */
static const mtype *attr_cast_of(const emu_entity *t, const dv_attribute_def *a)
{
    for (size_t i = 0; i < sizeof attr_casts / sizeof attr_casts[0]; i++)
        if (mtype_attr_is(&attr_casts[i], t, a)) return &attr_casts[i];
    return &MT_ATTR;
}

static void attr_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    const emu_entity *t = it->t;
    const dv_attribute_def *a = &t->def.attributes[it->i];
    mdoc d = {.e = e, .it = it, .t = t, .a = a};
    mitem_id(it, d.id);
    char *x = mdx_get(e, MDX_ATTR, t->def.logical_name, a->logical_name, NULL);
    d.custom =
        (x && mdx_int(e, x, "$._created", 0)) || (t->solution_id[0] && !is_system_column(t, a));
    free(x);
    const char *tname = dv_attr_type_name(a->type);
    snprintf(d.type_name, sizeof d.type_name, "%s%s", tname ? tname : attr_type_name(a),
             tname ? "" : "Type");
    d.pid = !strcmp(a->logical_name, t->def.primary_id);
    d.pname = t->def.primary_name && !strcmp(a->logical_name, t->def.primary_name);
    d.sys = !strcmp(a->logical_name, "createdon") || !strcmp(a->logical_name, "modifiedon") ||
            !strcmp(a->logical_name, "versionnumber");
    d.n_tg = lookup_targets(a, d.tg);
    const mtype *cast = attr_cast_of(t, a);
    write_doc(&d, cast->name, attr_props, cast->typed, b);
    overlay(e, b, MDX_ATTR, t->def.logical_name, a->logical_name);
}

static void key_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    mdoc d = {.e = e, .it = it, .t = it->t, .k = &it->t->def.keys[it->i]};
    mitem_id(it, d.id);
    write_doc(&d, MT_KEY.name, key_props, NULL, b);
    overlay(e, b, MDX_KEY, it->t->def.logical_name, d.k->logical_name);
}

static void rel_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    const dv_attribute_def *a = &it->t->def.attributes[it->i];
    mdoc d = {.e = e, .it = it, .t = it->t, .a = a};
    d.n_tg = lookup_targets(a, d.tg);
    d.ref = store_by_logical(e, d.tg[it->j], strlen(d.tg[it->j]));
    mitem_id(it, d.id);
    mrel_schema(e, it, d.buf, sizeof d.buf);
    d.name = d.buf;
    char *x = mdx_get(e, MDX_REL, it->t->def.logical_name, a->logical_name, NULL);
    d.custom = x != NULL || it->t->solution_id[0];
    free(x);
    if (is_customer(a))
        snprintf(d.nav, sizeof d.nav, "%s_%s", a->logical_name, d.tg[it->j]);
    else
        snprintf(d.nav, sizeof d.nav, "%s", a->logical_name);
    write_doc(&d, MT_REL.name, rel_props, NULL, b);
    overlay(e, b, MDX_REL, it->t->def.logical_name, a->logical_name);
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
    mdoc d = {.e = e, .it = &it, .name = name, .x = x, .options = "$.Options", .custom = 1};
    mitem_id(&it, d.id);
    char *type = mdx_str(e, x, "$.OptionSetType");
    char *display = mdx_str(e, x, "$.DisplayName.LocalizedLabels[0].Label");
    d.set_type = type ? type : "Picklist";
    d.display = display;
    write_doc(&d, "OptionSetMetadata", optionset_props, options_props, b);
    free(type);
    free(display);
    free(x);
}

/* The OptionSet of a choice, state, status or yes/no column; "null" for other columns. */
static void optionset_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    const emu_entity *t = it->t;
    const dv_attribute_def *a = &t->def.attributes[it->i];
    if (a->type != DV_ATTR_PICKLIST && a->type != DV_ATTR_STATE && a->type != DV_ATTR_STATUS &&
        a->type != DV_ATTR_BOOLEAN) {
        sb_puts(b, "null");
        return;
    }
    mdoc d = {.e = e, .it = it, .t = t, .a = a, .display = a->display_name};
    snprintf(d.buf, sizeof d.buf, "%s_%s", t->def.logical_name, a->logical_name);
    d.name = d.buf;
    char idn[320];
    snprintf(idn, sizeof idn, "optionset.%s", d.name);
    guid_from_name(idn, d.id);
    d.x = mdx_get(e, MDX_ATTR, t->def.logical_name, a->logical_name, NULL);
    d.custom = d.x != NULL;
    char tb[16];
    if (d.x && !strcmp(mdx_type(e, d.x, "$._OptionSet", tb), "object"))
        d.options = "$._OptionSet.Options";
    d.set_type = a->type == DV_ATTR_BOOLEAN  ? "Boolean"
                 : a->type == DV_ATTR_STATE  ? "State"
                 : a->type == DV_ATTR_STATUS ? "Status"
                                             : "Picklist";
    if (a->type == DV_ATTR_BOOLEAN)
        write_doc(&d, "BooleanOptionSetMetadata", optionset_props, bool_options_props, b);
    else
        write_doc(&d, "OptionSetMetadata", optionset_props, options_props, b);
    free(d.x);
}

void mitem_doc(dv_emulator *e, const mitem *it, sbuf *b)
{
    switch (it->kind) {
    case MI_OPTIONSET:
        global_optionset_doc(e, it->name, b);
        break;
    case MI_ENTITY:
        entity_doc(e, it, b);
        break;
    case MI_ATTR:
        attr_doc(e, it, b);
        break;
    case MI_KEY:
        key_doc(e, it, b);
        break;
    default:
        rel_doc(e, it, b);
        break;
    }
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
            optionset_doc(e, it, &doc);
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
