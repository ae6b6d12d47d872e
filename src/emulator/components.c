/* Solution components in layers (see components.h). Three tables next to the store's own:
 *   sollayer(layer, seq)                  a layer's place: 0 for the system, install order for
 *                                         managed solutions, ACTIVE_SEQ for the unmanaged one;
 *   solcomp(layer, kind, entity, name, def)  one row per component a layer holds, with the
 *                                         definition it ships as JSON (NULL: the layer only
 *                                         touches it, say with a form);
 *   solrel(name, referencing, attr, referenced)  the relationships in effect.
 * A component that a solution adds to something the organization had already first gets a
 * system-layer row holding what it was, so that uninstalling brings that back. */
#include "components.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "store.h"

#define SYSTEM_LAYER ""
#define ACTIVE_LAYER "active"
#define ACTIVE_SEQ 4611686018427387904LL

static const char *schema =
    "CREATE TABLE IF NOT EXISTS sollayer(layer TEXT PRIMARY KEY, seq INTEGER);"
    "INSERT OR IGNORE INTO sollayer VALUES('', 0);"
    "CREATE TABLE IF NOT EXISTS solcomp(layer TEXT, kind TEXT, entity TEXT, name TEXT, def TEXT,"
    " PRIMARY KEY(layer, kind, entity, name));"
    "CREATE INDEX IF NOT EXISTS solcomp_comp ON solcomp(kind, entity, name);"
    "CREATE TABLE IF NOT EXISTS solrel(name TEXT PRIMARY KEY, referencing TEXT, attr TEXT,"
    " referenced TEXT);";

/* Columns every table keeps while it exists, whoever shipped them. */
static const char *const kept_columns[] = {"createdon", "modifiedon", "versionnumber",
                                           "statecode", "statuscode", "ownerid"};

/* A growing list of strings (component names read before they are changed). */
typedef struct {
    char **v;
    size_t n, cap;
    int failed;
} strlist;

static void sl_push(strlist *l, const unsigned char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **grown = realloc(l->v, cap * sizeof *grown);
        if (!grown) {
            l->failed = 1;
            return;
        }
        l->v = grown;
        l->cap = cap;
    }
    char *d = strdup(s ? (const char *)s : "");
    if (!d) {
        l->failed = 1;
        return;
    }
    l->v[l->n++] = d;
}

static void sl_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int ensure_schema(dv_emulator *e)
{
    return store_exec(e, schema);
}

static int step_done(sqlite3_stmt *st)
{
    return st && sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* ---- definitions as JSON ---- */

static void entity_json(sbuf *b, const dv_entity_def *d)
{
    sb_puts(b, "{\"display\":");
    sb_json_str(b, d->display_name);
    sb_printf(b, ",\"ct\":%d}", d->change_tracking ? 1 : 0);
}

static void attr_json(sbuf *b, const dv_attribute_def *a)
{
    sb_puts(b, "{\"display\":");
    sb_json_str(b, a->display_name);
    sb_printf(b, ",\"type\":%d,\"maxlen\":%d,\"required\":%d,\"target\":", (int)a->type,
              a->max_length, a->required);
    sb_json_str(b, a->target);
    sb_putc(b, '}');
}

static void key_json(sbuf *b, const dv_key_def *k)
{
    sb_puts(b, "{\"display\":");
    sb_json_str(b, k->display_name);
    sb_puts(b, ",\"attrs\":\"");
    for (int j = 0; j < k->n_attributes; j++)
        sb_printf(b, "%s%s", j ? "," : "", k->attributes[j]);
    sb_puts(b, "\"}");
}

static void rel_json(sbuf *b, const dv_relationship_def *r)
{
    sb_puts(b, "{\"referencing\":");
    sb_json_str(b, r->referencing_entity);
    sb_puts(b, ",\"attr\":");
    sb_json_str(b, r->referencing_attribute);
    sb_puts(b, ",\"referenced\":");
    sb_json_str(b, r->referenced_entity);
    sb_putc(b, '}');
}

/* ---- layer rows ---- */

static int put_comp(dv_emulator *e, const char *layer, const char *kind, const char *entity,
                    const char *name, const char *def)
{
    sqlite3_stmt *st = store_stmt(e, "INSERT OR REPLACE INTO solcomp VALUES(?1,?2,?3,?4,?5)");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, layer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, def, -1, SQLITE_TRANSIENT);
    return step_done(st);
}

static int has_layers(dv_emulator *e, const char *kind, const char *entity, const char *name)
{
    sqlite3_stmt *st =
        store_stmt(e, "SELECT 1 FROM solcomp WHERE kind=?1 AND entity=?2 AND name=?3 LIMIT 1");
    if (!st) return 0;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW;
}

/* Records what an existing component is before the first solution layers over it. */
static int snapshot(dv_emulator *e, const char *kind, const char *entity, const char *name)
{
    if (has_layers(e, kind, entity, name)) return 0;
    const char *sql =
        !strcmp(kind, "entity")
            ? "INSERT INTO solcomp SELECT '', 'entity', logical, '', "
              "json_object('display', display, 'ct', ct) FROM ent WHERE logical=?1"
        : !strcmp(kind, "attr")
            ? "INSERT INTO solcomp SELECT '', 'attr', entity, logical, json_object('display', "
              "display, 'type', type, 'maxlen', maxlen, 'required', required, 'target', target) "
              "FROM attr WHERE entity=?1 AND logical=?2"
            : "INSERT INTO solcomp SELECT '', 'key', entity, logical, json_object('display', "
              "display, 'attrs', attrs) FROM ekey WHERE entity=?1 AND logical=?2";
    sqlite3_stmt *st = store_stmt(e, sql);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    if (strcmp(kind, "entity") != 0) sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return step_done(st);
}

/* Gives a component the definition of its top layer (layers that only touch it do not
 * count). */
static int apply_top(dv_emulator *e, const char *kind, const char *entity, const char *name)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT c.def FROM solcomp c JOIN sollayer l ON l.layer = "
                                     "c.layer WHERE c.kind=?1 AND c.entity=?2 AND c.name=?3 AND "
                                     "c.def IS NOT NULL ORDER BY l.seq DESC LIMIT 1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) return 0;
    char *def = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    const char *sql =
        !strcmp(kind, "entity")
            ? "UPDATE ent SET display = coalesce(json_extract(?3, '$.display'), display), "
              "ct = json_extract(?3, '$.ct') WHERE logical = ?1 AND ?2 = ''"
        : !strcmp(kind, "attr")
            ? "UPDATE attr SET display = json_extract(?3, '$.display'), "
              "maxlen = json_extract(?3, '$.maxlen'), required = json_extract(?3, '$.required'), "
              "target = coalesce(json_extract(?3, '$.target'), target) "
              "WHERE entity = ?1 AND logical = ?2"
        : !strcmp(kind, "key")
            ? "UPDATE ekey SET display = json_extract(?3, '$.display') "
              "WHERE entity = ?1 AND logical = ?2"
            : "INSERT OR REPLACE INTO solrel VALUES(?2, json_extract(?3, '$.referencing'), "
              "json_extract(?3, '$.attr'), json_extract(?3, '$.referenced'))";
    st = store_stmt(e, sql);
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, def, -1, SQLITE_TRANSIENT);
        rc = step_done(st);
    }
    free(def);
    return rc;
}

static int64_t layer_seq(dv_emulator *e, const char *layer, int managed)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT seq FROM sollayer WHERE layer=?1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, layer, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) return sqlite3_column_int64(st, 0);
    st = store_stmt(e, "INSERT INTO sollayer SELECT ?1, CASE WHEN ?2 THEN (SELECT max(seq) + 1 "
                       "FROM sollayer WHERE seq < ?3) ELSE ?3 END RETURNING seq");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, layer, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, managed);
    sqlite3_bind_int64(st, 3, ACTIVE_SEQ);
    if (sqlite3_step(st) != SQLITE_ROW) return -1;
    int64_t seq = sqlite3_column_int64(st, 0);
    sqlite3_step(st);
    return seq;
}

/* ---- import ---- */

static const char *type_label(dv_attr_type t)
{
    const char *n = dv_attr_type_name(t);
    return n ? n : dv_attr_type_code(t);
}

static int column_type(dv_emulator *e, const char *entity, const char *column)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT type FROM attr WHERE entity=?1 AND logical=?2");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
}

static int add_column(dv_emulator *e, const char *entity, const dv_attribute_def *a)
{
    sqlite3_stmt *st = store_stmt(
        e, "INSERT INTO attr(entity, logical, display, type, maxlen, required, target, ord) "
           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
           "(SELECT coalesce(max(ord), -1) + 1 FROM attr WHERE entity = ?1))");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->logical_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->display_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)a->type);
    sqlite3_bind_int(st, 5, a->max_length);
    sqlite3_bind_int(st, 6, a->required);
    sqlite3_bind_text(st, 7, a->target, -1, SQLITE_STATIC);
    return step_done(st);
}

static int key_exists(dv_emulator *e, const char *entity, const char *key)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT 1 FROM ekey WHERE entity=?1 AND logical=?2");
    if (!st) return 0;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW;
}

static int add_key(dv_emulator *e, const char *entity, const dv_key_def *k, double now)
{
    sbuf attrs = {0};
    for (int j = 0; j < k->n_attributes; j++)
        sb_printf(&attrs, "%s%s", j ? "," : "", k->attributes[j]);
    sqlite3_stmt *st =
        store_stmt(e, "INSERT INTO ekey(entity, logical, display, attrs, created, failed, ord) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, 0, "
                      "(SELECT coalesce(max(ord), -1) + 1 FROM ekey WHERE entity = ?1))");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, k->logical_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, k->display_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, sb_str(&attrs), -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 5, now);
        rc = step_done(st);
    }
    sb_free(&attrs);
    return rc;
}

/* Rows written before a key existed get its index entries; a duplicate among them fails the
 * key's index job, as Dataverse reports it (the import itself succeeds). */
static int index_existing_rows(dv_emulator *e, const char *entity)
{
    emu_entity *t = store_by_logical(e, entity, strlen(entity));
    if (!t || t->def.n_keys == 0) return 0;
    sqlite3_stmt *st = store_row_stmt(e, t, "SELECT id, data, ver FROM row WHERE entity=?1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    strlist rows = {0}; /* id, data, version: read first, rewritten after */
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < 3; c++)
            sl_push(&rows, sqlite3_column_text(st, c));
    sqlite3_reset(st);
    int rc = rows.failed ? -1 : 0;
    for (size_t i = 0; !rc && i < rows.n; i += 3) {
        int dup = -1;
        int put =
            store_row_put(e, t, rows.v[i], rows.v[i + 1], strtoll(rows.v[i + 2], NULL, 10), &dup);
        if (put < 0) rc = -1;
        if (put == 1 && dup >= 0) {
            sqlite3_stmt *f = store_stmt(e, "UPDATE ekey SET failed=1 WHERE entity=?1 AND "
                                            "logical=?2");
            sqlite3_bind_text(f, 1, entity, -1, SQLITE_STATIC);
            sqlite3_bind_text(f, 2, t->def.keys[dup].logical_name, -1, SQLITE_STATIC);
            if (step_done(f)) rc = -1;
        }
    }
    sl_free(&rows);
    return rc;
}

/* An existing table: its columns, keys and properties join as this layer's. */
static int merge_entity(dv_emulator *e, const dv_entity_def *d, const char *layer, double now,
                        int *new_keys, char *err, size_t errlen)
{
    const char *en = d->logical_name;
    sbuf b = {0};
    int rc = snapshot(e, "entity", en, "");
    if (!rc && d->has_info) entity_json(&b, d);
    if (!rc) rc = put_comp(e, layer, "entity", en, "", d->has_info ? sb_str(&b) : NULL);
    for (int i = 0; !rc && i < d->n_attributes; i++) {
        const dv_attribute_def *a = &d->attributes[i];
        int have = column_type(e, en, a->logical_name);
        if (have >= 0 && have != (int)a->type) {
            snprintf(err, errlen,
                     "column '%s' of table '%s' is of type %s; the solution defines it as %s",
                     a->logical_name, en, type_label((dv_attr_type)have), type_label(a->type));
            rc = -1;
            break;
        }
        rc = have >= 0 ? snapshot(e, "attr", en, a->logical_name) : add_column(e, en, a);
        b.n = 0;
        attr_json(&b, a);
        if (!rc) rc = put_comp(e, layer, "attr", en, a->logical_name, sb_str(&b));
    }
    for (int i = 0; !rc && i < d->n_keys; i++) {
        const dv_key_def *k = &d->keys[i];
        for (int j = 0; j < k->n_attributes; j++)
            if (column_type(e, en, k->attributes[j]) < 0) {
                snprintf(err, errlen, "key '%s' of table '%s' names column '%s', which it lacks",
                         k->logical_name, en, k->attributes[j]);
                sb_free(&b);
                return -1;
            }
        if (key_exists(e, en, k->logical_name)) {
            rc = snapshot(e, "key", en, k->logical_name);
        } else {
            rc = add_key(e, en, k, now);
            *new_keys = 1;
        }
        b.n = 0;
        key_json(&b, k);
        if (!rc) rc = put_comp(e, layer, "key", en, k->logical_name, sb_str(&b));
    }
    sb_free(&b);
    if (rc && !*err) snprintf(err, errlen, "table '%s' could not be updated", en);
    return rc;
}

/* A table the solution creates: every column and key it defines is this layer's. */
static int create_entity(dv_emulator *e, const dv_entity_def *d, const char *solution_id,
                         const char *layer, double now, char *err, size_t errlen)
{
    if (!d->has_info) {
        snprintf(err, errlen,
                 "table '%s' does not exist and the solution does not define it (no EntityInfo)",
                 d->logical_name);
        return COMP_MISSING;
    }
    if (!d->primary_name) {
        snprintf(err, errlen,
                 "table '%s' is new and no column is marked PrimaryName in its DisplayMask",
                 d->logical_name);
        return -1;
    }
    for (int i = 0; i < d->n_keys; i++)
        for (int j = 0; j < d->keys[i].n_attributes; j++) {
            int found = 0;
            for (int a = 0; a < d->n_attributes && !found; a++)
                found = !strcmp(d->attributes[a].logical_name, d->keys[i].attributes[j]);
            if (!found) {
                snprintf(err, errlen,
                         "key '%s' of new table '%s' names column '%s', which it lacks",
                         d->keys[i].logical_name, d->logical_name, d->keys[i].attributes[j]);
                return -1;
            }
        }
    if (store_add_entity(e, d, solution_id, now, err, errlen)) return -1;
    sbuf b = {0};
    entity_json(&b, d);
    int rc = put_comp(e, layer, "entity", d->logical_name, "", sb_str(&b));
    for (int i = 0; !rc && i < d->n_attributes; i++) {
        b.n = 0;
        attr_json(&b, &d->attributes[i]);
        rc = put_comp(e, layer, "attr", d->logical_name, d->attributes[i].logical_name, sb_str(&b));
    }
    for (int i = 0; !rc && i < d->n_keys; i++) {
        b.n = 0;
        key_json(&b, &d->keys[i]);
        rc = put_comp(e, layer, "key", d->logical_name, d->keys[i].logical_name, sb_str(&b));
    }
    sb_free(&b);
    if (rc) snprintf(err, errlen, "table '%s' could not be recorded", d->logical_name);
    return rc;
}

/* Relationships whose lookup column exists take effect; those that name tables the emulator
 * does not have (activities, notes, teams, ...) are left out. */
static int add_relationships(dv_emulator *e, const dv_solution_def *def, const char *layer)
{
    sbuf b = {0};
    int rc = 0;
    for (int i = 0; !rc && i < def->n_relationships; i++) {
        const dv_relationship_def *r = &def->relationships[i];
        int t = column_type(e, r->referencing_entity, r->referencing_attribute);
        if (t != DV_ATTR_LOOKUP && t != DV_ATTR_OWNER) continue;
        b.n = 0;
        rel_json(&b, r);
        rc = put_comp(e, layer, "rel", r->referencing_entity, r->name, sb_str(&b));
        int polymorphic = 0; /* a customer lookup: one relationship per target table */
        for (int j = 0; j < def->n_relationships && !polymorphic; j++) {
            const dv_relationship_def *o = &def->relationships[j];
            polymorphic = j != i && !strcmp(o->referencing_entity, r->referencing_entity) &&
                          !strcmp(o->referencing_attribute, r->referencing_attribute) &&
                          strcmp(o->referenced_entity, r->referenced_entity) != 0;
        }
        if (!rc && t == DV_ATTR_LOOKUP && !polymorphic) {
            sqlite3_stmt *st = store_stmt(e, "UPDATE attr SET target = ?3 WHERE entity = ?1 AND "
                                             "logical = ?2 AND target IS NULL");
            sqlite3_bind_text(st, 1, r->referencing_entity, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, r->referencing_attribute, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, r->referenced_entity, -1, SQLITE_STATIC);
            rc = step_done(st);
        }
    }
    sb_free(&b);
    return rc;
}

static int apply_layer_tops(dv_emulator *e, const char *layer)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT kind, entity, name FROM solcomp WHERE layer=?1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, layer, -1, SQLITE_STATIC);
    strlist l = {0};
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < 3; c++)
            sl_push(&l, sqlite3_column_text(st, c));
    sqlite3_reset(st);
    int rc = l.failed ? -1 : 0;
    for (size_t i = 0; !rc && i < l.n; i += 3)
        rc = apply_top(e, l.v[i], l.v[i + 1], l.v[i + 2]);
    sl_free(&l);
    return rc;
}

int comp_import(dv_emulator *e, const dv_solution_def *def, const char *solution_id, double now,
                char *err, size_t errlen)
{
    err[0] = '\0';
    if (ensure_schema(e)) {
        snprintf(err, errlen, "the component tables could not be created");
        return -1;
    }
    const char *layer = def->managed ? solution_id : ACTIVE_LAYER;
    if (layer_seq(e, layer, def->managed) < 0) {
        snprintf(err, errlen, "the solution's layer could not be recorded");
        return -1;
    }
    char *keyed = calloc((size_t)def->n_entities + 1, 1); /* existing tables given new keys */
    int rc = 0;
    for (int i = 0; !rc && i < def->n_entities; i++) {
        const dv_entity_def *d = &def->entities[i];
        sqlite3_stmt *st = store_stmt(e, "SELECT 1 FROM ent WHERE logical=?1");
        sqlite3_bind_text(st, 1, d->logical_name, -1, SQLITE_STATIC);
        int exists = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        int new_keys = 0;
        rc = exists ? merge_entity(e, d, layer, now, &new_keys, err, errlen)
                    : create_entity(e, d, solution_id, layer, now, err, errlen);
        keyed[i] = (char)new_keys;
    }
    if (!rc) rc = add_relationships(e, def, layer);
    if (!rc) rc = apply_layer_tops(e, layer);
    if (!rc) rc = store_reload(e);
    for (int i = 0; !rc && i < def->n_entities; i++)
        if (keyed[i]) rc = index_existing_rows(e, def->entities[i].logical_name);
    free(keyed);
    if (rc && !*err) snprintf(err, errlen, "the solution's components could not be recorded");
    return rc == COMP_MISSING ? rc : rc ? -1 : 0;
}

/* ---- uninstall ---- */

static int kept_column(dv_emulator *e, const char *entity, const char *column)
{
    for (size_t i = 0; i < sizeof kept_columns / sizeof *kept_columns; i++)
        if (!strcmp(column, kept_columns[i])) return 1;
    sqlite3_stmt *st = store_stmt(e, "SELECT 1 FROM ent WHERE logical=?1 AND (pid=?2 OR pname=?2)");
    if (!st) return 1;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW;
}

static int entity_exists(dv_emulator *e, const char *entity)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT 1 FROM ent WHERE logical=?1");
    if (!st) return 0;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW;
}

static int exec_bound(dv_emulator *e, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = store_stmt(e, sql);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    return step_done(st);
}

/* exec_bound on the rows of the table a names. */
static int exec_rows(dv_emulator *e, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = store_rows_stmt(e, a, sql);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    return step_done(st);
}

/* Deletes a component no layer holds any more, with its data. */
static int drop_component(dv_emulator *e, const char *kind, const char *entity, const char *name)
{
    if (!strcmp(kind, "rel")) return exec_bound(e, "DELETE FROM solrel WHERE name=?1", name, NULL);
    if (!entity_exists(e, entity)) return 0;
    if (!strcmp(kind, "entity")) {
        if (store_drop_entity(e, entity)) return -1;
        return exec_bound(e, "DELETE FROM solcomp WHERE entity=?1", entity, NULL) ||
               exec_bound(e, "DELETE FROM solrel WHERE referencing=?1", entity, NULL);
    }
    if (!strcmp(kind, "key"))
        return exec_bound(e, "DELETE FROM ekey WHERE entity=?1 AND logical=?2", entity, name) ||
               exec_rows(e, "DELETE FROM keyval WHERE entity=?1 AND key=?2", entity, name);
    if (kept_column(e, entity, name)) return 0;
    /* A key another layer keeps still needs its columns (Dataverse would list it as a
     * dependency of the uninstall). */
    sqlite3_stmt *k = store_stmt(e, "SELECT 1 FROM ekey WHERE entity = ?1 AND "
                                    "',' || attrs || ',' LIKE '%,' || ?2 || ',%'");
    if (!k) return -1;
    sqlite3_bind_text(k, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(k, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(k) == SQLITE_ROW) return 0;
    int type = column_type(e, entity, name);
    char path[300];
    snprintf(path, sizeof path,
             type == DV_ATTR_LOOKUP || type == DV_ATTR_OWNER ? "$._%s_value" : "$.%s", name);
    return exec_bound(e, "DELETE FROM attr WHERE entity=?1 AND logical=?2", entity, name) ||
           exec_rows(e, "UPDATE row SET data = json_remove(data, ?2) WHERE entity = ?1", entity,
                     path);
}

int comp_uninstall(dv_emulator *e, const char *solution_id, char *err, size_t errlen)
{
    err[0] = '\0';
    if (ensure_schema(e)) {
        snprintf(err, errlen, "the component tables could not be read");
        return -1;
    }
    /* Keys and relationships first, then columns, then tables. */
    sqlite3_stmt *st = store_stmt(e, "SELECT kind, entity, name FROM solcomp WHERE layer=?1 "
                                     "ORDER BY CASE kind WHEN 'key' THEN 0 WHEN 'rel' THEN 1 "
                                     "WHEN 'attr' THEN 2 ELSE 3 END");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, solution_id, -1, SQLITE_STATIC);
    strlist l = {0};
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < 3; c++)
            sl_push(&l, sqlite3_column_text(st, c));
    sqlite3_reset(st);
    int rc = l.failed || exec_bound(e, "DELETE FROM solcomp WHERE layer=?1", solution_id, NULL) ||
             exec_bound(e, "DELETE FROM sollayer WHERE layer=?1", solution_id, NULL);
    for (size_t i = 0; !rc && i < l.n; i += 3) {
        const char *kind = l.v[i], *entity = l.v[i + 1], *name = l.v[i + 2];
        rc = has_layers(e, kind, entity, name) ? apply_top(e, kind, entity, name)
                                               : drop_component(e, kind, entity, name);
    }
    sl_free(&l);
    /* Tables an earlier build recorded only through their owning solution. */
    st = store_stmt(e, "SELECT logical FROM ent WHERE solution=?1 AND NOT EXISTS (SELECT 1 FROM "
                       "solcomp WHERE kind='entity' AND entity=ent.logical)");
    strlist orphans = {0};
    if (!rc && st) {
        sqlite3_bind_text(st, 1, solution_id, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW)
            sl_push(&orphans, sqlite3_column_text(st, 0));
        sqlite3_reset(st);
        rc = orphans.failed;
    }
    for (size_t i = 0; !rc && i < orphans.n; i++)
        rc = store_drop_entity(e, orphans.v[i]);
    sl_free(&orphans);
    if (rc) snprintf(err, errlen, "the solution's components could not be removed");
    return rc;
}

void comp_relationships(dv_emulator *e, comp_rel_cb cb, void *ud)
{
    sqlite3_stmt *st = store_stmt(e, "SELECT 1 FROM sqlite_master WHERE name = 'solrel'");
    if (!st || sqlite3_step(st) != SQLITE_ROW) return; /* no solution was imported yet */
    sqlite3_reset(st);
    st = store_stmt(e, "SELECT name, referencing, attr, referenced FROM solrel ORDER BY name");
    if (!st) return;
    while (sqlite3_step(st) == SQLITE_ROW)
        cb(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
    sqlite3_reset(st);
}
