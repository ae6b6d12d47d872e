/* A solution as the emulator understands it: parsed from a solution zip (solution.xml +
 * customizations.xml) by solution_parse.c, and used by the store to create tables and keys.
 * The built-in organization tables (account, contact, ...) are described with the same types. */
#ifndef DV_SOLUTION_DEF_H
#define DV_SOLUTION_DEF_H
#include <stddef.h>

/* Column types, named after Dataverse AttributeType values. */
typedef enum {
    DV_ATTR_STRING,           /* nvarchar */
    DV_ATTR_MEMO,             /* ntext */
    DV_ATTR_INTEGER,          /* int */
    DV_ATTR_BIGINT,           /* bigint */
    DV_ATTR_DECIMAL,          /* decimal */
    DV_ATTR_DOUBLE,           /* float */
    DV_ATTR_MONEY,            /* money */
    DV_ATTR_BOOLEAN,          /* bit */
    DV_ATTR_DATETIME,         /* datetime */
    DV_ATTR_LOOKUP,           /* lookup (target in dv_attribute_def.target) */
    DV_ATTR_UNIQUEIDENTIFIER, /* primarykey / uniqueidentifier */
    DV_ATTR_PICKLIST,         /* picklist (option set value) */
    DV_ATTR_STATE,            /* state */
    DV_ATTR_STATUS,           /* status */
    DV_ATTR_OWNER,            /* owner */
    /* Types the emulator lists in the metadata but whose content it does not store. */
    DV_ATTR_VIRTUAL,         /* virtual, binary, sql_variant, ...: derived, no Web API property */
    DV_ATTR_FILE,            /* file: content through the file messages, never in a row body */
    DV_ATTR_IMAGE,           /* image */
    DV_ATTR_MULTISELECT,     /* multiselectpicklist */
    DV_ATTR_PARTYLIST,       /* partylist (activity parties) */
    DV_ATTR_ENTITYNAME,      /* entityname (the table of a polymorphic lookup) */
    DV_ATTR_MANAGEDPROPERTY, /* managedproperty */
    DV_ATTR_CALENDARRULES,   /* calendarrules */
    DV_ATTR_N_TYPES
} dv_attr_type;

/* Dataverse's AttributeType (AttributeTypeCode) and AttributeTypeName of a column type. */
static inline const char *dv_attr_type_code(dv_attr_type t)
{
    static const char *const n[DV_ATTR_N_TYPES] = {
        "String",  "Memo",      "Integer",    "BigInt",          "Decimal",          "Double",
        "Money",   "Boolean",   "DateTime",   "Lookup",          "Uniqueidentifier", "Picklist",
        "State",   "Status",    "Owner",      "Virtual",         "Virtual",          "Virtual",
        "Virtual", "PartyList", "EntityName", "ManagedProperty", "CalendarRules"};
    return (unsigned)t < DV_ATTR_N_TYPES ? n[t] : "Virtual";
}

static inline const char *dv_attr_type_name(dv_attr_type t)
{
    switch (t) {
    case DV_ATTR_FILE:
        return "FileType";
    case DV_ATTR_IMAGE:
        return "ImageType";
    case DV_ATTR_MULTISELECT:
        return "MultiSelectPicklistType";
    default:
        return NULL; /* <AttributeType>Type */
    }
}

/* The EDM type of a column's property; NULL when the Web API exposes none. */
static inline const char *dv_attr_edm_type(dv_attr_type t)
{
    switch (t) {
    case DV_ATTR_STRING:
    case DV_ATTR_MEMO:
    case DV_ATTR_MULTISELECT:
        return "Edm.String";
    case DV_ATTR_INTEGER:
    case DV_ATTR_PICKLIST:
    case DV_ATTR_STATE:
    case DV_ATTR_STATUS:
        return "Edm.Int32";
    case DV_ATTR_BIGINT:
        return "Edm.Int64";
    case DV_ATTR_DECIMAL:
    case DV_ATTR_MONEY:
        return "Edm.Decimal";
    case DV_ATTR_DOUBLE:
        return "Edm.Double";
    case DV_ATTR_BOOLEAN:
        return "Edm.Boolean";
    case DV_ATTR_DATETIME:
        return "Edm.DateTimeOffset";
    case DV_ATTR_LOOKUP:
    case DV_ATTR_OWNER:
    case DV_ATTR_UNIQUEIDENTIFIER:
    case DV_ATTR_FILE: /* the file's id; the content goes through the file messages */
        return "Edm.Guid";
    case DV_ATTR_IMAGE:
        return "Edm.Binary";
    default:
        return NULL;
    }
}

/* Whether rows hold the column's value (the emulator stores only these). */
static inline int dv_attr_stored(dv_attr_type t)
{
    return t < DV_ATTR_VIRTUAL;
}

/* Whether the Web API exposes the column as a structural property of the row. Virtual name
 * columns (owneridname, ...), entity names and the like are metadata only. */
static inline int dv_attr_is_property(dv_attr_type t)
{
    return t < DV_ATTR_VIRTUAL || t == DV_ATTR_FILE || t == DV_ATTR_IMAGE ||
           t == DV_ATTR_MULTISELECT;
}

typedef struct {
    char *logical_name;
    char *display_name; /* may be NULL */
    dv_attr_type type;
    int max_length; /* strings and memos; 0 when not given */
    int required;   /* RequiredLevel ApplicationRequired/SystemRequired */
    char *target;   /* lookups: the target table's logical name; else NULL */
} dv_attribute_def;

typedef struct {
    char *logical_name;
    char *display_name; /* may be NULL */
    char **attributes;  /* logical names of the key's columns */
    int n_attributes;
} dv_key_def;

typedef struct {
    char *logical_name;    /* "sample_book" */
    char *entity_set_name; /* "sample_books" */
    char *display_name;    /* "Book" */
    char *primary_id;      /* "sample_bookid" */
    char *primary_name;    /* "sample_name" */
    int change_tracking;   /* ChangeTrackingEnabled */
    dv_attribute_def *attributes;
    int n_attributes;
    dv_key_def *keys;
    int n_keys;
    /* Set when customizations.xml carries the table's EntityInfo; an export that only
     * customizes an existing table (forms, views, web resources) leaves it 0. */
    int has_info;
} dv_entity_def;

/* A one-to-many relationship from EntityRelationships: referencing_entity.referencing_attribute
 * looks up referenced_entity. */
typedef struct {
    char *name; /* SchemaName, "sample_account_sample_example" */
    char *referencing_entity;
    char *referencing_attribute;
    char *referenced_entity;
} dv_relationship_def;

typedef struct {
    char *unique_name;      /* "ChangeTrackingSample" */
    char *friendly_name;    /* may be NULL */
    char *version;          /* "1.0.0.0" */
    int managed;            /* Managed 1 */
    char *publisher_prefix; /* may be NULL */
    dv_entity_def *entities;
    int n_entities;
    dv_relationship_def *relationships; /* OneToMany ones, in document order */
    int n_relationships;
} dv_solution_def;

/* What was wrong with a solution file, as Dataverse tells these apart on import. */
#define DV_SOLUTION_ERR_ARCHIVE -1 /* not a zip, or solution.xml / customizations.xml missing */
#define DV_SOLUTION_ERR_XML -2     /* an XML file is not well formed */
#define DV_SOLUTION_ERR_CONTENT -3 /* well formed, but not a valid solution (schema level) */

/* Parses a solution zip held in memory. On failure returns one of the DV_SOLUTION_ERR_ values
 * (all negative), leaves *out empty and writes a message naming the file and what was wrong
 * (for the ImportSolution error answer). */
int dv_solution_parse_zip(const void *zip, size_t len, dv_solution_def *out, char *err,
                          size_t errlen);

/* Frees everything dv_solution_parse_zip allocated; safe on a zeroed struct. */
void dv_solution_def_free(dv_solution_def *def);

#endif
