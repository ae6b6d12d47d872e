/* What the table definitions carry beyond what rows need (metadata_store.c): labels,
 * descriptions, ownership, option sets, precision, relationship names, and the solution a
 * column, key or relationship was created in. Kept as one JSON object per component in the
 * store's `mdx` table, so it survives restarts and goes with its table. Callers hold emu->mu
 * and, for writes, an open transaction. */
#ifndef DV_EMU_METADATA_STORE_H
#define DV_EMU_METADATA_STORE_H
#include "emu_internal.h"
#include "solution_def.h"

/* Component kinds. */
#define MDX_ENTITY "entity"       /* name "" */
#define MDX_ATTR "attr"           /* name: the column's logical name */
#define MDX_KEY "key"             /* name: the key's logical name */
#define MDX_REL "rel"             /* entity: the referencing table; name: its lookup column */
#define MDX_OPTIONSET "optionset" /* a global choice; entity "", name: its Name */

/* The stored JSON object (malloc'd) of a component, or NULL; its solution id goes to sol
 * (may be NULL; "" when none). */
char *mdx_get(dv_emulator *e, const char *kind, const char *entity, const char *name, char sol[37]);
/* Records (or replaces) a component's JSON object; solution may be NULL. */
int mdx_put(dv_emulator *e, const char *kind, const char *entity, const char *name,
            const char *solution, const char *json);
int mdx_delete(dv_emulator *e, const char *kind, const char *entity, const char *name);

/* The names of every component of a kind with entity "", in creation order (malloc'd
 * array of malloc'd strings; *n set). */
char **mdx_names(dv_emulator *e, const char *kind, int *n);

/* A string property of a JSON text ("$.A.B" path), malloc'd, or NULL. */
char *mdx_str(dv_emulator *e, const char *json, const char *path);
/* An integer/boolean property (def when absent). */
long long mdx_int(dv_emulator *e, const char *json, const char *path, long long def);
/* The JSON type of a property ("object", "array", "text", "integer", "real", "true",
 * "false", "null"), or "" when absent / json invalid. Static storage per call. */
const char *mdx_type(dv_emulator *e, const char *json, const char *path, char out[16]);

/* Removes a column from a table: its attr row, its extras, and its value in every row. */
int mdx_drop_column(dv_emulator *e, const char *entity, const char *column);
/* Removes a key and its index entries. */
int mdx_drop_key(dv_emulator *e, const char *entity, const char *key);

/* Adds a column to an existing table (ord after the last). */
int mdx_add_column(dv_emulator *e, const char *entity, const dv_attribute_def *a);
/* Adds an alternate key created at time now and indexes the rows already there; when two
 * rows share a value the key is recorded Failed and 1 is returned (0 when indexed). */
int mdx_add_key(dv_emulator *e, const emu_entity *t, const dv_key_def *k, double now);
/* Marks a key Failed and records the failed index job (an asyncoperation row) whose id the
 * key's AsyncJob then names. */
int mdx_fail_key(dv_emulator *e, const char *entity, const char *key, const char *message,
                 double now);

/* Drops the columns, keys and relationships created in a solution on tables that are not
 * the solution's own (its own tables go with store_drop_entity). */
int mdx_drop_solution(dv_emulator *e, const char *solution_id);

#endif
