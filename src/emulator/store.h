/* The emulator's SQLite store: schema, the table/column/key metadata and its in-memory
 * cache, the organization-wide version counter, rows as JSON text with alternate-key
 * uniqueness, and tombstones for change tracking. Callers hold the schema lock (server.c). */
#ifndef DV_EMU_STORE_H
#define DV_EMU_STORE_H
#include <stddef.h>
#include <stdint.h>

#include "emu_internal.h"
#include "wqueue.h"

int store_open(dv_emulator *e, char *err, size_t errlen);
void store_close(dv_emulator *e);

/* The connection the calling thread reaches the main file (metadata) through now. */
sqlite3 *store_db(dv_emulator *e);
/* A prepared statement for sql on the main file, reset and with bindings cleared; cached
 * per connection. */
sqlite3_stmt *store_stmt(dv_emulator *e, const char *sql);
/* ... on the file of t's rows, or of the table named entity (the main file when there is no
 * such table, whose row tables are empty). */
sqlite3_stmt *store_row_stmt(dv_emulator *e, const emu_entity *t, const char *sql);
sqlite3_stmt *store_rows_stmt(dv_emulator *e, const char *entity, const char *sql);
int store_exec(dv_emulator *e, const char *sql);
/* A write transaction over every file: what may touch more than one table or the metadata. */
int store_begin(dv_emulator *e);
/* A write transaction on t's rows alone, beside writers of other tables; a statement that
 * would write anything else fails. */
int store_begin_rows(dv_emulator *e, const emu_entity *t);
int store_commit(dv_emulator *e);
void store_rollback(dv_emulator *e);
/* After each request: rolls back what is left open and resets every statement, so the next
 * request on this connection starts from the latest committed state. */
void store_end_request(dv_emulator *e);
/* The reads of the calling thread's request see one state of the store. */
void store_snapshot(dv_emulator *e);
/* The writers' queue's counters (wqueue.h). */
void store_write_stats(dv_emulator *e, emu_wq_stats *s, int reset);
/* Opens a transaction that handlers' begin/commit/rollback join instead of ending, and ends
 * it (commit or roll back): one change set of a $batch. */
int store_hold(dv_emulator *e);
int store_release(dv_emulator *e, int commit);

/* Reloads the entity cache from the metadata tables. */
int store_reload(dv_emulator *e);
emu_entity *store_by_set(dv_emulator *e, const char *set, size_t n);
emu_entity *store_by_logical(dv_emulator *e, const char *logical, size_t n);
emu_entity *store_by_metadata_id(dv_emulator *e, const char *id);
const dv_attribute_def *store_attr(const emu_entity *t, const char *logical);
/* Finds a column by the property name it is served under (`_x_value` for lookups). */
const dv_attribute_def *store_prop(const emu_entity *t, const char *prop, size_t n);
/* The property name of key k's column j in prop (the column's served name; its logical name
 * when t has no such column, which is then NULL as returned). */
const dv_attribute_def *store_key_prop(const emu_entity *t, const dv_key_def *k, int j, char *prop,
                                       size_t n);

/* Records a table (adding the system columns it lacks); inside the caller's transaction.
 * The cache is stale until store_reload. */
int store_add_entity(dv_emulator *e, const dv_entity_def *def, const char *solution_id, double now,
                     char *err, size_t errlen);
/* Binds a column's row of the attr table, ?1 entity to ?7 target, to st (an INSERT into
 * attr); the caller binds the position and steps. */
void store_bind_attr(sqlite3_stmt *st, const char *entity, const dv_attribute_def *a);
/* Binds the JSON path of each column of key k (as its row property, `$._x_value` for a
 * lookup) to st, from parameter first on. */
void store_bind_key_paths(sqlite3_stmt *st, const emu_entity *t, const dv_key_def *k, int first);
/* Forgets a table with its rows, tombstones and keys; inside the caller's transaction. */
int store_drop_entity(dv_emulator *e, const char *logical);

/* The next value of the organization-wide version counter, for a write of t's rows (t NULL:
 * the metadata); inside a transaction, which then writes t's file. */
int64_t store_next_version(dv_emulator *e, const emu_entity *t);
/* Takes n versions from the counter in one step, inside a transaction: the next n calls of
 * store_next_version for t in it hand them out in order. Returns 0 or -1. */
int store_reserve_versions(dv_emulator *e, const emu_entity *t, int n);
/* The highest version written to t's rows, as the caller's snapshot sees them. */
int64_t store_current_version(dv_emulator *e, const emu_entity *t);
/* The highest version handed out anywhere: no valid delta token is above it. */
int64_t store_version_ceiling(dv_emulator *e);

/* The file of a table's rows (a handle for store_hold_writers), -1 when there is no such
 * table. */
int store_table_file(dv_emulator *e, const char *logical);
/* Holds that file's writers off (no transaction open) until store_release_writers. */
void store_hold_writers(dv_emulator *e, int file);
void store_release_writers(dv_emulator *e, int file);

/* "Pending", "InProgress", "Active" or "Failed" for a key, from its job's timestamps. */
const char *store_key_status(dv_emulator *e, const char *entity, const char *key);

/* Row data (malloc'd JSON text) and version for id; 1 found, 0 missing. */
int store_row_get(dv_emulator *e, const emu_entity *t, const char *id, char **data, int64_t *ver);
/* Writes a row's data at version ver and refreshes its alternate-key entries. Returns 0;
 * 1 when an alternate key value is taken (the key's index in *dup_key); -1 on error. */
int store_row_put(dv_emulator *e, const emu_entity *t, const char *id, const char *data,
                  int64_t ver, int *dup_key);
/* store_row_put for a caller that knows more: fresh is 1 when no row has the id (it may have
 * a tombstone), 0 when the row exists, -1 when unknown; member, when not NULL, gives a
 * column's JSON value by property name (NULL when absent), so the key entries come from it
 * rather than from parsing data. */
typedef const char *(*store_member_fn)(void *ud, const char *prop);
int store_row_write(dv_emulator *e, const emu_entity *t, const char *id, const char *data,
                    int64_t ver, int fresh, store_member_fn member, void *ud, int *dup_key);
/* Deletes a row and leaves a tombstone at a new version. */
int store_row_delete(dv_emulator *e, const emu_entity *t, const char *id, double now);
/* Finds a row id by alternate key; vals are SQL values bound in key column order. The stmt
 * binder is called for each value: returns 1 found (id in out[37]), 0 missing. */
typedef void (*store_binder)(sqlite3_stmt *st, int idx, void *ud, int which);
int store_row_by_key(dv_emulator *e, const emu_entity *t, int key, store_binder bind, void *ud,
                     char out[37]);

#endif
