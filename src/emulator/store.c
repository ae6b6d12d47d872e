#include "store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "builtin.h"
#include "checkpoint.h"
#include "clock.h"
#include "sbuf.h"
#include "dbset.h"
#include "wqueue.h"

/* Rows, tombstones and alternate-key entries: in each table's file, and in the main file of
 * ":memory:" (and of stores of an earlier build, until store_open moves them). */
#define ROW_TABLES                                                                                 \
    "CREATE TABLE IF NOT EXISTS row(entity TEXT, id TEXT, ver INTEGER, data TEXT,"                 \
    " PRIMARY KEY(entity, id));"                                                                   \
    "CREATE INDEX IF NOT EXISTS row_ver ON row(entity, ver);"                                      \
    "CREATE TABLE IF NOT EXISTS tomb(entity TEXT, id TEXT, ver INTEGER, at REAL,"                  \
    " PRIMARY KEY(entity, id));"                                                                   \
    "CREATE INDEX IF NOT EXISTS tomb_ver ON tomb(entity, ver);"                                    \
    "CREATE INDEX IF NOT EXISTS tomb_at ON tomb(at);"                                              \
    "CREATE TABLE IF NOT EXISTS keyval(entity TEXT, key TEXT, val TEXT, id TEXT,"                  \
    " PRIMARY KEY(entity, key, val));"                                                             \
    "CREATE INDEX IF NOT EXISTS keyval_id ON keyval(entity, id);"

static const char *schema =
    "CREATE TABLE IF NOT EXISTS org(k TEXT PRIMARY KEY, v);"
    "INSERT OR IGNORE INTO org VALUES('version', 1000);"
    "CREATE TABLE IF NOT EXISTS ent(logical TEXT PRIMARY KEY, setname TEXT UNIQUE, display TEXT,"
    " pid TEXT, pname TEXT, ct INT, solution TEXT, ord INTEGER);"
    "CREATE TABLE IF NOT EXISTS attr(entity TEXT, logical TEXT, display TEXT, type INT,"
    " maxlen INT, required INT, target TEXT, ord INT, PRIMARY KEY(entity, logical));"
    "CREATE TABLE IF NOT EXISTS ekey(entity TEXT, logical TEXT, display TEXT, attrs TEXT,"
    " created REAL, failed INT, ord INT, PRIMARY KEY(entity, logical));" ROW_TABLES
    /* definitions' extra properties, kept by metadata_store.c */
    "CREATE TABLE IF NOT EXISTS mdx(kind TEXT, entity TEXT, name TEXT, solution TEXT, json TEXT,"
    " PRIMARY KEY(kind, entity, name));";

/* A table's own file: its rows, tombstones and key entries, and the highest version written
 * to it (org 'version'). 'store' names the main file the table file belongs to: a main file
 * deleted and made anew must not find the rows of its predecessor's tables. */
static const char *table_schema =
    "CREATE TABLE IF NOT EXISTS org(k TEXT PRIMARY KEY, v);" ROW_TABLES;

static int slot_of(const emu_entity *t)
{
    return t ? t->file : 0;
}

sqlite3 *store_db(dv_emulator *e)
{
    return dbs_db(e->dbs, 0);
}

sqlite3_stmt *store_stmt(dv_emulator *e, const char *sql)
{
    return dbs_stmt(e->dbs, 0, sql);
}

sqlite3_stmt *store_row_stmt(dv_emulator *e, const emu_entity *t, const char *sql)
{
    return dbs_stmt(e->dbs, slot_of(t), sql);
}

sqlite3_stmt *store_rows_stmt(dv_emulator *e, const char *entity, const char *sql)
{
    return store_row_stmt(e, store_by_logical(e, entity, strlen(entity)), sql);
}

int store_exec(dv_emulator *e, const char *sql)
{
    return sqlite3_exec(store_db(e), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* One statement that writes the main file, inside the caller's transaction. */
static int store_exec_write(dv_emulator *e, const char *sql)
{
    sqlite3_stmt *st = store_stmt(e, sql);
    return st && sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

void store_write_stats(dv_emulator *e, emu_wq_stats *s, int reset)
{
    if (e->dbs)
        dbs_write_stats(e->dbs, s, reset);
    else
        memset(s, 0, sizeof *s);
}

/* While a change set holds the transaction (store_hold), a handler's begin, commit and
 * rollback are part of it: the change set commits or rolls back as a whole. */
int store_begin(dv_emulator *e)
{
    if (dbs_held(e->dbs)) return 0;
    return dbs_begin(e->dbs, -1);
}

int store_begin_rows(dv_emulator *e, const emu_entity *t)
{
    if (dbs_held(e->dbs)) return 0;
    return dbs_begin(e->dbs, slot_of(t));
}

int store_commit(dv_emulator *e)
{
    if (dbs_held(e->dbs)) return 0;
    return dbs_end(e->dbs, 1);
}

void store_rollback(dv_emulator *e)
{
    if (dbs_held(e->dbs)) return;
    if (dbs_writing(e->dbs)) dbs_end(e->dbs, 0);
}

void store_snapshot(dv_emulator *e)
{
    dbs_snapshot(e->dbs);
}

void store_end_request(dv_emulator *e)
{
    dbs_end_request(e->dbs);
}

int store_hold(dv_emulator *e)
{
    if (dbs_begin(e->dbs, -1)) return -1;
    dbs_set_held(e->dbs, 1);
    return 0;
}

int store_release(dv_emulator *e, int commit)
{
    dbs_set_held(e->dbs, 0);
    if (commit) return store_commit(e);
    store_rollback(e);
    return 0;
}

static char *dupn(const unsigned char *s)
{
    return s ? strdup((const char *)s) : NULL;
}

static void free_entity(emu_entity *t)
{
    dv_entity_def *d = &t->def;
    free(d->logical_name), free(d->entity_set_name), free(d->display_name);
    free(d->primary_id), free(d->primary_name);
    for (int i = 0; i < d->n_attributes; i++) {
        free(d->attributes[i].logical_name), free(d->attributes[i].display_name);
        free(d->attributes[i].target);
    }
    free(d->attributes);
    for (int i = 0; i < d->n_keys; i++) {
        free(d->keys[i].logical_name), free(d->keys[i].display_name);
        for (int j = 0; j < d->keys[i].n_attributes; j++)
            free(d->keys[i].attributes[j]);
        free(d->keys[i].attributes);
    }
    free(d->keys);
}

static void free_cache(dv_emulator *e)
{
    for (int i = 0; i < e->n_ents; i++)
        free_entity(&e->ents[i]);
    free(e->ents);
    e->ents = NULL;
    e->n_ents = 0;
}

/* 1 when a is the name, yomi name or type companion of one of d's lookups (owneridname,
 * createdbyyominame, owneridtype): Dataverse keeps those as columns, but its Web API has no
 * such properties, so rows neither carry nor accept them. */
static int is_companion(const dv_entity_def *d, const dv_attribute_def *a)
{
    static const char *const suffix[] = {"name", "yominame", "type"};
    for (int i = 0; i < d->n_attributes; i++) {
        const dv_attribute_def *l = &d->attributes[i];
        if (l->type != DV_ATTR_LOOKUP && l->type != DV_ATTR_OWNER) continue;
        size_t n = strlen(l->logical_name);
        if (strncmp(a->logical_name, l->logical_name, n) != 0) continue;
        for (size_t k = 0; k < sizeof suffix / sizeof *suffix; k++)
            if (strcmp(a->logical_name + n, suffix[k]) == 0) return 1;
    }
    return 0;
}

static void drop_companions(dv_entity_def *d)
{
    unsigned char *drop = calloc((size_t)d->n_attributes + 1, 1);
    for (int i = 0; i < d->n_attributes; i++) {
        const dv_attribute_def *a = &d->attributes[i];
        drop[i] = a->type != DV_ATTR_LOOKUP && a->type != DV_ATTR_OWNER && is_companion(d, a);
    }
    int kept = 0;
    for (int i = 0; i < d->n_attributes; i++) {
        dv_attribute_def *a = &d->attributes[i];
        if (drop[i])
            free(a->logical_name), free(a->display_name), free(a->target);
        else
            d->attributes[kept++] = *a;
    }
    d->n_attributes = kept;
    free(drop);
}

int store_reload(dv_emulator *e)
{
    free_cache(e);
    sqlite3_stmt *st =
        store_stmt(e, "SELECT logical, setname, display, pid, pname, ct, solution FROM ent "
                      "ORDER BY ord");
    if (!st) return -1;
    int cap = 16;
    e->ents = calloc((size_t)cap, sizeof *e->ents);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (e->n_ents == cap) {
            cap *= 2;
            e->ents = realloc(e->ents, sizeof *e->ents * (size_t)cap);
        }
        emu_entity *t = &e->ents[e->n_ents++];
        memset(t, 0, sizeof *t);
        t->def.logical_name = dupn(sqlite3_column_text(st, 0));
        t->def.entity_set_name = dupn(sqlite3_column_text(st, 1));
        t->def.display_name = dupn(sqlite3_column_text(st, 2));
        t->def.primary_id = dupn(sqlite3_column_text(st, 3));
        t->def.primary_name = dupn(sqlite3_column_text(st, 4));
        t->def.change_tracking = sqlite3_column_int(st, 5);
        const unsigned char *sol = sqlite3_column_text(st, 6);
        snprintf(t->solution_id, sizeof t->solution_id, "%s", sol ? (const char *)sol : "");
        guid_from_name(t->def.logical_name, t->metadata_id);
    }
    for (int i = 0; i < e->n_ents; i++) {
        dv_entity_def *d = &e->ents[i].def;
        char err[300];
        if ((e->ents[i].file = dbs_file(e->dbs, d->logical_name, err, sizeof err)) < 0) {
            fprintf(stderr, "dvlua emulator: %s\n", err);
            return -1;
        }
        st = store_stmt(e, "SELECT logical, display, type, maxlen, required, target FROM attr "
                           "WHERE entity = ?1 ORDER BY ord");
        sqlite3_bind_text(st, 1, d->logical_name, -1, SQLITE_STATIC);
        int acap = 8;
        d->attributes = calloc((size_t)acap, sizeof *d->attributes);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (d->n_attributes == acap) {
                acap *= 2;
                d->attributes = realloc(d->attributes, sizeof *d->attributes * (size_t)acap);
            }
            dv_attribute_def *a = &d->attributes[d->n_attributes++];
            a->logical_name = dupn(sqlite3_column_text(st, 0));
            a->display_name = dupn(sqlite3_column_text(st, 1));
            a->type = (dv_attr_type)sqlite3_column_int(st, 2);
            a->max_length = sqlite3_column_int(st, 3);
            a->required = sqlite3_column_int(st, 4);
            a->target = dupn(sqlite3_column_text(st, 5));
        }
        drop_companions(d);
        st = store_stmt(e,
                        "SELECT logical, display, attrs FROM ekey WHERE entity = ?1 ORDER BY ord");
        sqlite3_bind_text(st, 1, d->logical_name, -1, SQLITE_STATIC);
        int kcap = 4;
        d->keys = calloc((size_t)kcap, sizeof *d->keys);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (d->n_keys == kcap) {
                kcap *= 2;
                d->keys = realloc(d->keys, sizeof *d->keys * (size_t)kcap);
            }
            dv_key_def *k = &d->keys[d->n_keys++];
            k->logical_name = dupn(sqlite3_column_text(st, 0));
            k->display_name = dupn(sqlite3_column_text(st, 1));
            const char *attrs = (const char *)sqlite3_column_text(st, 2);
            k->n_attributes = 0;
            k->attributes = calloc(strlen(attrs) + 1, sizeof(char *));
            char *copy = strdup(attrs), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                k->attributes[k->n_attributes++] = strdup(tok);
            free(copy);
        }
    }
    return 0;
}

emu_entity *store_by_set(dv_emulator *e, const char *set, size_t n)
{
    for (int i = 0; i < e->n_ents; i++) {
        const char *s = e->ents[i].def.entity_set_name;
        if (strlen(s) == n && strncmp(s, set, n) == 0) return &e->ents[i];
    }
    return NULL;
}

emu_entity *store_by_logical(dv_emulator *e, const char *logical, size_t n)
{
    for (int i = 0; i < e->n_ents; i++) {
        const char *s = e->ents[i].def.logical_name;
        if (strlen(s) == n && strncmp(s, logical, n) == 0) return &e->ents[i];
    }
    return NULL;
}

emu_entity *store_by_metadata_id(dv_emulator *e, const char *id)
{
    for (int i = 0; i < e->n_ents; i++)
        if (strcasecmp(e->ents[i].metadata_id, id) == 0) return &e->ents[i];
    return NULL;
}

const dv_attribute_def *store_attr(const emu_entity *t, const char *logical)
{
    for (int i = 0; i < t->def.n_attributes; i++)
        if (strcmp(t->def.attributes[i].logical_name, logical) == 0) return &t->def.attributes[i];
    return NULL;
}

const dv_attribute_def *store_prop(const emu_entity *t, const char *prop, size_t n)
{
    for (int i = 0; i < t->def.n_attributes; i++) {
        const dv_attribute_def *a = &t->def.attributes[i];
        if (!dv_attr_is_property(a->type)) continue; /* listed in metadata only */
        if (emu_prop_is(a, prop, n)) return a;
    }
    return NULL;
}

static int ident_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 100) return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

void store_bind_attr(sqlite3_stmt *st, const char *entity, const dv_attribute_def *a)
{
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, a->logical_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, a->display_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, (int)a->type);
    sqlite3_bind_int(st, 5, a->max_length);
    sqlite3_bind_int(st, 6, a->required);
    sqlite3_bind_text(st, 7, a->target, -1, SQLITE_TRANSIENT);
}

static int add_attr(dv_emulator *e, const char *entity, const dv_attribute_def *a, int ord)
{
    sqlite3_stmt *st = store_stmt(e, "INSERT OR IGNORE INTO attr VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
    if (!st) return -1;
    store_bind_attr(st, entity, a);
    sqlite3_bind_int(st, 8, ord);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* The columns every user-owned table has, maintained by the server (required levels as
 * Dataverse's own definitions give them). */
static const dv_attribute_def system_columns[] = {
    {"createdon", "Created On", DV_ATTR_DATETIME, 0, 0, NULL},
    {"modifiedon", "Modified On", DV_ATTR_DATETIME, 0, 0, NULL},
    {"versionnumber", "Version Number", DV_ATTR_BIGINT, 0, 0, NULL},
    {"statecode", "Status", DV_ATTR_STATE, 0, 2, NULL},
    {"statuscode", "Status Reason", DV_ATTR_STATUS, 0, 0, NULL},
    {"ownerid", "Owner", DV_ATTR_OWNER, 0, 2, "systemuser"},
    {"createdby", "Created By", DV_ATTR_LOOKUP, 0, 0, "systemuser"},
    {"modifiedby", "Modified By", DV_ATTR_LOOKUP, 0, 0, "systemuser"},
    {"owninguser", "Owning User", DV_ATTR_LOOKUP, 0, 0, "systemuser"},
    {"owningbusinessunit", "Owning Business Unit", DV_ATTR_LOOKUP, 0, 0, "businessunit"},
};

/* Adds the system columns a table lacks, numbered from ord (a column the table already
 * has, from its solution, keeps its definition). */
static int add_system_columns(dv_emulator *e, const char *entity, int ord)
{
    for (size_t i = 0; i < sizeof system_columns / sizeof system_columns[0]; i++)
        if (add_attr(e, entity, &system_columns[i], ord++)) return -1;
    return 0;
}

int store_add_entity(dv_emulator *e, const dv_entity_def *d, const char *solution_id, double now,
                     char *err, size_t errlen)
{
    if (!ident_ok(d->logical_name) || !ident_ok(d->entity_set_name) || !ident_ok(d->primary_id)) {
        snprintf(err, errlen,
                 "table '%s': logical name, entity set name and primary id must be "
                 "lowercase identifiers",
                 d->logical_name ? d->logical_name : "?");
        return -1;
    }
    sqlite3_stmt *st = store_stmt(e, "INSERT INTO ent VALUES(?1,?2,?3,?4,?5,?6,?7,"
                                     "(SELECT coalesce(max(ord),0)+1 FROM ent))");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, d->logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->entity_set_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->display_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->primary_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->primary_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, d->change_tracking);
    sqlite3_bind_text(st, 7, solution_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        snprintf(err, errlen, "table '%s' (entity set '%s') already exists", d->logical_name,
                 d->entity_set_name);
        return -1;
    }
    int ord = 0;
    dv_attribute_def pid = {d->primary_id, NULL, DV_ATTR_UNIQUEIDENTIFIER, 0, 2, NULL};
    if (add_attr(e, d->logical_name, &pid, ord++)) return -1;
    for (int i = 0; i < d->n_attributes; i++) {
        if (!ident_ok(d->attributes[i].logical_name)) {
            snprintf(err, errlen, "table '%s': column name '%s' is not a lowercase identifier",
                     d->logical_name, d->attributes[i].logical_name);
            return -1;
        }
        if (add_attr(e, d->logical_name, &d->attributes[i], ord++)) return -1;
    }
    if (d->primary_name && ident_ok(d->primary_name)) {
        dv_attribute_def pn = {d->primary_name, NULL, DV_ATTR_STRING, 100, 1, NULL};
        if (add_attr(e, d->logical_name, &pn, ord++)) return -1;
    }
    if (add_system_columns(e, d->logical_name, ord)) return -1;
    for (int i = 0; i < d->n_keys; i++) {
        const dv_key_def *k = &d->keys[i];
        sbuf attrs = {0};
        for (int j = 0; j < k->n_attributes; j++) {
            if (!ident_ok(k->attributes[j])) {
                snprintf(err, errlen, "key '%s': column name is not a lowercase identifier",
                         k->logical_name);
                sb_free(&attrs);
                return -1;
            }
            if (j) sb_putc(&attrs, ',');
            sb_puts(&attrs, k->attributes[j]);
        }
        st = store_stmt(e, "INSERT INTO ekey VALUES(?1,?2,?3,?4,?5,0,?6)");
        sqlite3_bind_text(st, 1, d->logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, k->logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, k->display_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, sb_str(&attrs), -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 5, now);
        sqlite3_bind_int(st, 6, i);
        int rc = sqlite3_step(st);
        sb_free(&attrs);
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "key '%s' of table '%s' is defined twice",
                     k->logical_name ? k->logical_name : "?", d->logical_name);
            return -1;
        }
    }
    return 0;
}

int store_drop_entity(dv_emulator *e, const char *logical)
{
    static const char *rows[] = {"DELETE FROM row WHERE entity = ?1",
                                 "DELETE FROM tomb WHERE entity = ?1",
                                 "DELETE FROM keyval WHERE entity = ?1"};
    static const char *defs[] = {
        "DELETE FROM ekey WHERE entity = ?1", "DELETE FROM attr WHERE entity = ?1",
        "DELETE FROM ent WHERE logical = ?1", "DELETE FROM mdx WHERE entity = ?1"};
    /* The table's file stays, emptied: the slot is the process's, and a table made again
     * under the name finds it. */
    const emu_entity *t = store_by_logical(e, logical, strlen(logical));
    for (size_t i = 0; i < 7; i++) {
        sqlite3_stmt *st = i < 3 ? store_row_stmt(e, t, rows[i]) : store_stmt(e, defs[i - 3]);
        if (!st) return -1;
        sqlite3_bind_text(st, 1, logical, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) return -1;
    }
    return 0;
}

/* Records v as the highest version of t's file. The statement opens the file's turn in an
 * every-file transaction, so versions taken after it grow in the file's commit order. */
static sqlite3_stmt *version_stmt(dv_emulator *e, const emu_entity *t)
{
    return store_row_stmt(e, t, "UPDATE org SET v = ?1 WHERE k = 'version'");
}

int64_t store_next_version(dv_emulator *e, const emu_entity *t)
{
    dbs_reserve *r = dbs_reserved(e->dbs);
    if (r->next <= r->last && r->slot == slot_of(t) && dbs_writing(e->dbs)) return r->next++;
    sqlite3_stmt *st = version_stmt(e, t);
    if (!st) return -1;
    int64_t v = dbs_take_versions(e->dbs, 1);
    sqlite3_bind_int64(st, 1, v);
    return sqlite3_step(st) == SQLITE_DONE ? v : -1;
}

int store_reserve_versions(dv_emulator *e, const emu_entity *t, int n)
{
    if (n < 1 || !dbs_writing(e->dbs)) return -1;
    sqlite3_stmt *st = version_stmt(e, t);
    if (!st) return -1;
    int64_t first = dbs_take_versions(e->dbs, n);
    sqlite3_bind_int64(st, 1, first + n - 1);
    if (sqlite3_step(st) != SQLITE_DONE) return -1;
    /* What is left of an earlier reservation is dropped: other files may have taken the
     * versions between it and these. Gaps are harmless; a version handed out twice is not. */
    dbs_reserve *r = dbs_reserved(e->dbs);
    r->next = first;
    r->last = first + n - 1;
    r->slot = slot_of(t);
    return 0;
}

int64_t store_current_version(dv_emulator *e, const emu_entity *t)
{
    sqlite3_stmt *st = store_row_stmt(e, t, "SELECT v FROM org WHERE k = 'version'");
    if (!st || sqlite3_step(st) != SQLITE_ROW) return -1;
    return sqlite3_column_int64(st, 0);
}

int64_t store_version_ceiling(dv_emulator *e)
{
    return dbs_last_version(e->dbs);
}

int store_table_file(dv_emulator *e, const char *logical)
{
    const emu_entity *t = store_by_logical(e, logical, strlen(logical));
    return t ? t->file : -1;
}

void store_hold_writers(dv_emulator *e, int file)
{
    dbs_hold_writers(e->dbs, file);
}

void store_release_writers(dv_emulator *e, int file)
{
    dbs_release_writers(e->dbs, file);
}

const char *store_key_status(dv_emulator *e, const char *entity, const char *key)
{
    sqlite3_stmt *st =
        store_stmt(e, "SELECT created, failed FROM ekey WHERE entity=?1 AND logical=?2");
    if (!st) return "Failed";
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) return "Failed";
    double created = sqlite3_column_double(st, 0);
    if (sqlite3_column_int(st, 1)) return "Failed";
    double age = emu_now(e) - created;
    if (age >= e->key_delay) return "Active";
    return age < e->key_delay / 3 ? "Pending" : "InProgress";
}

int store_row_get(dv_emulator *e, const emu_entity *t, const char *id, char **data, int64_t *ver)
{
    sqlite3_stmt *st = store_row_stmt(e, t, "SELECT data, ver FROM row WHERE entity=?1 AND id=?2");
    if (!st) return 0;
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) return 0;
    if (data) *data = strdup((const char *)sqlite3_column_text(st, 0));
    if (ver) *ver = sqlite3_column_int64(st, 1);
    return 1;
}

/* SQL computing a key's canonical value: a JSON array of the key columns, NULL when any
 * is missing. Paths are bound (?3.. ) so no name reaches the SQL text. */
static void key_value_sql(sbuf *b, int ncols, int first_param)
{
    sb_puts(b, "CASE WHEN ");
    for (int j = 0; j < ncols; j++)
        sb_printf(b, "%sjson_extract(?2, ?%d) IS NOT NULL", j ? " AND " : "", first_param + j);
    sb_puts(b, " THEN json_array(");
    for (int j = 0; j < ncols; j++)
        sb_printf(b, "%sjson_extract(?2, ?%d)", j ? "," : "", first_param + j);
    sb_puts(b, ") END");
}

const dv_attribute_def *store_key_prop(const emu_entity *t, const dv_key_def *k, int j, char *prop,
                                       size_t n)
{
    const dv_attribute_def *a = store_attr(t, k->attributes[j]);
    if (a)
        emu_prop_name(a, prop, n);
    else
        snprintf(prop, n, "%s", k->attributes[j]);
    return a;
}

void store_bind_key_paths(sqlite3_stmt *st, const emu_entity *t, const dv_key_def *k, int first)
{
    for (int j = 0; j < k->n_attributes; j++) {
        char prop[160], path[170];
        store_key_prop(t, k, j, prop, sizeof prop);
        snprintf(path, sizeof path, "$.%s", prop);
        sqlite3_bind_text(st, first + j, path, -1, SQLITE_TRANSIENT);
    }
}

int store_row_write(dv_emulator *e, const emu_entity *t, const char *id, const char *data,
                    int64_t ver, int fresh, store_member_fn member, void *ud, int *dup_key)
{
    sqlite3_stmt *st = store_row_stmt(e, t, "INSERT OR REPLACE INTO row VALUES(?1,?2,?3,?4)");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, ver);
    sqlite3_bind_text(st, 4, data, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) return -1;
    /* A row that exists has no tombstone; one that does not has no key entries. */
    if (fresh != 0) {
        st = store_row_stmt(e, t, "DELETE FROM tomb WHERE entity=?1 AND id=?2");
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
    }
    if (t->def.n_keys == 0) return 0;
    if (fresh != 1) {
        st = store_row_stmt(e, t, "DELETE FROM keyval WHERE entity=?1 AND id=?2");
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) return -1;
    }
    for (int i = 0; i < t->def.n_keys; i++) {
        const dv_key_def *k = &t->def.keys[i];
        sbuf sql = {0};
        sb_puts(&sql, "INSERT INTO keyval SELECT ?1, ?3, v, ?4 FROM (SELECT ");
        if (member) {
            /* ?5.. the key columns' own JSON values: small texts, not the whole row */
            sb_puts(&sql, "CASE WHEN ");
            for (int j = 0; j < k->n_attributes; j++)
                sb_printf(&sql, "%s(?%d ->> '$') IS NOT NULL", j ? " AND " : "", 5 + j);
            sb_puts(&sql, " THEN json_array(");
            for (int j = 0; j < k->n_attributes; j++)
                sb_printf(&sql, "%s?%d ->> '$'", j ? "," : "", 5 + j);
            sb_puts(&sql, ") END");
        } else {
            /* ?2 data, ?5.. the key columns' JSON paths */
            key_value_sql(&sql, k->n_attributes, 5);
        }
        sb_puts(&sql, " AS v) WHERE v IS NOT NULL");
        st = store_row_stmt(e, t, sb_str(&sql));
        sb_free(&sql);
        if (!st) return -1;
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        if (!member) sqlite3_bind_text(st, 2, data, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, k->logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
        if (member) {
            for (int j = 0; j < k->n_attributes; j++) {
                char prop[160];
                const char *v =
                    store_key_prop(t, k, j, prop, sizeof prop) ? member(ud, prop) : NULL;
                if (v) sqlite3_bind_text(st, 5 + j, v, -1, SQLITE_TRANSIENT);
            }
        } else {
            store_bind_key_paths(st, t, k, 5);
        }
        int rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT) {
            if (dup_key) *dup_key = i;
            return 1;
        }
        if (rc != SQLITE_DONE) return -1;
    }
    return 0;
}

int store_row_put(dv_emulator *e, const emu_entity *t, const char *id, const char *data,
                  int64_t ver, int *dup_key)
{
    return store_row_write(e, t, id, data, ver, -1, NULL, NULL, dup_key);
}

int store_row_delete(dv_emulator *e, const emu_entity *t, const char *id, double now)
{
    /* Tombstones older than the retention are purged here, in a write transaction, rather
     * than by the delta reads that used to: a read that deletes holds SQLite's write lock
     * for the rest of its request and stalls every writer. */
    sqlite3_stmt *purge = store_row_stmt(e, t, "DELETE FROM tomb WHERE at < ?1");
    if (!purge) return -1;
    sqlite3_bind_double(purge, 1, now - e->retention);
    if (sqlite3_step(purge) != SQLITE_DONE) return -1;
    int64_t v = store_next_version(e, t);
    static const char *sqls[] = {"DELETE FROM row WHERE entity=?1 AND id=?2",
                                 "DELETE FROM keyval WHERE entity=?1 AND id=?2",
                                 "INSERT OR REPLACE INTO tomb VALUES(?1,?2,?3,?4)"};
    for (size_t i = 0; i < 3; i++) {
        sqlite3_stmt *st = store_row_stmt(e, t, sqls[i]);
        if (!st) return -1;
        sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        if (i == 2) {
            sqlite3_bind_int64(st, 3, v);
            sqlite3_bind_double(st, 4, now);
        }
        if (sqlite3_step(st) != SQLITE_DONE) return -1;
    }
    return 0;
}

int store_row_by_key(dv_emulator *e, const emu_entity *t, int key, store_binder bind, void *ud,
                     char out[37])
{
    const dv_key_def *k = &t->def.keys[key];
    sbuf sql = {0};
    sb_puts(&sql, "SELECT id FROM keyval WHERE entity=?1 AND key=?2 AND val=json_array(");
    for (int j = 0; j < k->n_attributes; j++)
        sb_printf(&sql, "%s?%d", j ? "," : "", 3 + j);
    sb_puts(&sql, ")");
    sqlite3_stmt *st = store_row_stmt(e, t, sb_str(&sql));
    sb_free(&sql);
    if (!st) return 0;
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->logical_name, -1, SQLITE_STATIC);
    for (int j = 0; j < k->n_attributes; j++)
        bind(st, 3 + j, ud, j);
    if (sqlite3_step(st) != SQLITE_ROW) return 0;
    snprintf(out, 37, "%s", (const char *)sqlite3_column_text(st, 0));
    return 1;
}

/* The fixed rows of a fresh organization: the calling user, its business unit and the
 * organization itself, so lookups to them resolve. */
static int seed_rows(dv_emulator *e, double now)
{
    char ts[32];
    time_iso(now, ts);
    struct {
        const char *entity, *id, *fields;
    } seeds[] = {
        {"systemuser", EMU_USER_ID,
         "\"fullname\":\"Emulator User\",\"domainname\":\"user@emulator.local\","
         "\"internalemailaddress\":\"user@emulator.local\",\"_businessunitid_value\":\"" EMU_BU_ID
         "\""},
        {"businessunit", EMU_BU_ID, "\"name\":\"emulator\""},
        {"organization", EMU_ORG_ID, "\"name\":\"emulator\",\"expirechangetrackingindays\":7"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        emu_entity *t = store_by_logical(e, seeds[i].entity, strlen(seeds[i].entity));
        if (!t) return -1;
        int64_t v = store_next_version(e, t);
        sbuf d = {0};
        sb_printf(&d,
                  "{\"%s\":\"%s\",%s,\"createdon\":\"%s\",\"modifiedon\":\"%s\","
                  "\"versionnumber\":%lld,\"statecode\":0,\"statuscode\":1,"
                  "\"_ownerid_value\":\"%s\"}",
                  t->def.primary_id, seeds[i].id, seeds[i].fields, ts, ts, (long long)v,
                  EMU_USER_ID);
        int rc = store_row_put(e, t, seeds[i].id, sb_str(&d), v, NULL);
        sb_free(&d);
        if (rc) return -1;
    }
    return 0;
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return 0;
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    return -1;
}

static int64_t version_of(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT v FROM org WHERE k = 'version'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The main file: the schema, the store's name, and the version counter seeded from it. */
static int init_main(dv_emulator *e, dbset *d, sqlite3 *db, char *err, size_t errlen)
{
    if (exec_sql(db, schema, err, errlen) ||
        exec_sql(db, "INSERT OR IGNORE INTO org VALUES('store', lower(hex(randomblob(16))))", err,
                 errlen))
        return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT v FROM org WHERE k = 'store'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(e->store_id, sizeof e->store_id, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    dbs_seed_versions(d, version_of(db));
    return 0;
}

/* A table's file: a file left from a deleted main file of the same name is emptied; rows a
 * store of an earlier build kept in the main file move here (store_open deletes them there
 * once every table has them, so a crash midway repeats the copy, which replaces). */
static int init_table(dv_emulator *e, dbset *d, sqlite3 *db, const char *name, char *err,
                      size_t errlen)
{
    if (exec_sql(db, table_schema, err, errlen)) return -1;
    if (e->migrate) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS old", e->db_path);
        int rc = exec_sql(db, sql, err, errlen);
        sqlite3_free(sql);
        if (rc) return -1;
    }
    char *copy =
        e->migrate
            ? sqlite3_mprintf(
                  "INSERT OR REPLACE INTO row SELECT * FROM old.row WHERE entity = %Q;"
                  "INSERT OR REPLACE INTO tomb SELECT * FROM old.tomb WHERE entity = %Q;"
                  "INSERT OR REPLACE INTO keyval SELECT * FROM old.keyval WHERE entity = %Q;",
                  name, name, name)
            : NULL;
    char *sql = sqlite3_mprintf(
        "BEGIN IMMEDIATE;"
        "DELETE FROM row WHERE (SELECT v FROM org WHERE k = 'store') IS NOT %Q;"
        "DELETE FROM tomb WHERE (SELECT v FROM org WHERE k = 'store') IS NOT %Q;"
        "DELETE FROM keyval WHERE (SELECT v FROM org WHERE k = 'store') IS NOT %Q;"
        "DELETE FROM org WHERE k = 'version' AND (SELECT v FROM org WHERE k = 'store') IS NOT %Q;"
        "INSERT OR REPLACE INTO org VALUES('store', %Q);"
        /* a new table's versions start at the counter: above every token handed out */
        "INSERT OR IGNORE INTO org VALUES('version', %lld);"
        "%s"
        "COMMIT;",
        e->store_id, e->store_id, e->store_id, e->store_id, e->store_id,
        (long long)dbs_last_version(d), copy ? copy : "");
    sqlite3_free(copy);
    int rc = sql ? exec_sql(db, sql, err, errlen) : -1;
    sqlite3_free(sql);
    if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (e->migrate) sqlite3_exec(db, "DETACH old", NULL, NULL, NULL);
    if (rc) return -1;
    dbs_seed_versions(d, version_of(db));
    return 0;
}

static int init_file(void *ud, dbset *d, sqlite3 *db, int slot, const char *name, char *err,
                     size_t errlen)
{
    dv_emulator *e = ud;
    char why[200] = "";
    int rc = slot == 0 ? init_main(e, d, db, why, sizeof why)
                       : init_table(e, d, db, name, why, sizeof why);
    if (rc) snprintf(err, errlen, "cannot create the schema in %s: %s", e->db_path, why);
    return rc;
}

/* dv_nav(table, id, path): a value of a row of another table, for $filter and $orderby on a
 * lookup's columns; the row is in that table's file, out of reach of a subquery. */
static void nav_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    dv_emulator *e = sqlite3_user_data(ctx);
    (void)argc;
    const char *ent = (const char *)sqlite3_value_text(argv[0]);
    const char *id = (const char *)sqlite3_value_text(argv[1]);
    const emu_entity *t = ent ? store_by_logical(e, ent, strlen(ent)) : NULL;
    if (!t || !id) return; /* NULL */
    char low[40];
    snprintf(low, sizeof low, "%s", id);
    for (char *p = low; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    sqlite3_stmt *st =
        store_row_stmt(e, t, "SELECT data ->> ?3 FROM row WHERE entity = ?1 AND id = ?2 /*nav*/");
    if (!st) {
        sqlite3_result_error(ctx, "dv_nav: cannot read the related table", -1);
        return;
    }
    sqlite3_bind_text(st, 1, t->def.logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, low, -1, SQLITE_TRANSIENT);
    sqlite3_bind_value(st, 3, argv[2]);
    if (sqlite3_step(st) == SQLITE_ROW) sqlite3_result_value(ctx, sqlite3_column_value(st, 0));
    sqlite3_reset(st);
}

static void on_open(void *ud, sqlite3 *db)
{
    sqlite3_create_function(db, "dv_nav", 3, SQLITE_UTF8, ud, nav_fn, NULL, NULL);
}

int store_open(dv_emulator *e, char *err, size_t errlen)
{
    const char *path = e->db_path ? e->db_path : ":memory:";
    e->per_thread = strcmp(path, ":memory:") != 0;
    pthread_rwlock_init(&e->schema, NULL);
    dbs_opts o = {path, init_file, on_open, e};
    if (!(e->dbs = dbs_open(&o, err, errlen))) return -1;
    sqlite3_stmt *st = store_stmt(e, "SELECT count(*) FROM ent");
    int fresh = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0;
    if (st) sqlite3_reset(st);
    if (fresh) {
        int n;
        const dv_entity_def *b = builtin_entities(&n);
        store_begin(e);
        for (int i = 0; i < n; i++) {
            if (store_add_entity(e, &b[i], "", 0, err, errlen)) {
                store_rollback(e);
                return -1;
            }
        }
        if (store_reload(e) || seed_rows(e, emu_now(e)) || store_commit(e)) {
            store_rollback(e);
            snprintf(err, errlen, "cannot seed the organization in %s: %s", path,
                     sqlite3_errmsg(store_db(e)));
            return -1;
        }
    } else {
        /* A database from an earlier build gets the built-in tables it lacks. */
        int n;
        const dv_entity_def *b = builtin_entities(&n);
        store_begin(e);
        for (int i = 0; i < n; i++) {
            st = store_stmt(e, "SELECT 1 FROM ent WHERE logical = ?1");
            sqlite3_bind_text(st, 1, b[i].logical_name, -1, SQLITE_STATIC);
            int have = sqlite3_step(st) == SQLITE_ROW;
            sqlite3_reset(st);
            if (!have && store_add_entity(e, &b[i], "", 0, err, errlen)) {
                store_rollback(e);
                return -1;
            }
        }
        /* ... and every table the system columns added since. */
        sqlite3_stmt *ents = NULL;
        sqlite3_prepare_v2(store_db(e),
                           "SELECT logical, (SELECT max(ord) + 1 FROM attr WHERE entity = logical) "
                           "FROM ent",
                           -1, &ents, NULL);
        while (ents && sqlite3_step(ents) == SQLITE_ROW)
            if (add_system_columns(e, (const char *)sqlite3_column_text(ents, 0),
                                   sqlite3_column_int(ents, 1))) {
                sqlite3_finalize(ents);
                store_rollback(e);
                snprintf(err, errlen, "cannot update the system columns in %s", path);
                return -1;
            }
        sqlite3_finalize(ents);
        if (store_commit(e)) {
            snprintf(err, errlen, "cannot update the built-in tables in %s: %s", path,
                     sqlite3_errmsg(store_db(e)));
            return -1;
        }
    }
    /* A store of an earlier build keeps every row in the main file: the tables' files take
     * them as store_reload opens them, and the main file lets them go after. */
    st = e->per_thread ? store_stmt(e, "SELECT EXISTS(SELECT 1 FROM row) OR "
                                       "EXISTS(SELECT 1 FROM tomb) OR EXISTS(SELECT 1 FROM keyval)")
                       : NULL;
    e->migrate = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    if (st) sqlite3_reset(st);
    if (store_reload(e)) {
        snprintf(err, errlen, "cannot open the tables of %s", path);
        return -1;
    }
    if (e->migrate) {
        e->migrate = 0;
        if (store_begin(e) || store_exec_write(e, "DELETE FROM row") ||
            store_exec_write(e, "DELETE FROM tomb") || store_exec_write(e, "DELETE FROM keyval") ||
            store_commit(e)) {
            store_rollback(e);
            snprintf(err, errlen, "cannot move the rows of %s into its tables' files", path);
            return -1;
        }
    }
    return 0;
}

void store_close(dv_emulator *e)
{
    /* Every thread that served requests is gone by now (the daemon was stopped first). */
    dbs_close(e->dbs);
    e->dbs = NULL;
    free_cache(e);
    pthread_rwlock_destroy(&e->schema);
}
