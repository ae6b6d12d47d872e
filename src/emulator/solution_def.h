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
} dv_attr_type;

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
} dv_entity_def;

typedef struct {
    char *unique_name;      /* "ChangeTrackingSample" */
    char *friendly_name;    /* may be NULL */
    char *version;          /* "1.0.0.0" */
    int managed;            /* Managed 1 */
    char *publisher_prefix; /* may be NULL */
    dv_entity_def *entities;
    int n_entities;
} dv_solution_def;

/* Parses a solution zip held in memory. On failure returns -1, leaves *out empty and writes a
 * message naming the file and what was wrong (for the ImportSolution error answer). */
int dv_solution_parse_zip(const void *zip, size_t len, dv_solution_def *out, char *err,
                          size_t errlen);

/* Frees everything dv_solution_parse_zip allocated; safe on a zeroed struct. */
void dv_solution_def_free(dv_solution_def *def);

#endif
