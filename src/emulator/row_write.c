/* Rows from JSON bodies: a body's members checked against the table's columns (types,
 * lengths, lookups bound with @odata.bind, deep inserts), then stored with the system
 * columns (dates, state, owner, version) filled in. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "emu_internal.h"
#include "jwalk.h"
#include "row_write.h"
#include "store.h"

void fs_set(fieldset *fs, const char *name, const char *json)
{
    for (int i = 0; i < fs->n; i++) {
        if (strcmp(fs->f[i].name, name) == 0) {
            free(fs->f[i].json);
            fs->f[i].json = strdup(json);
            return;
        }
    }
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 16;
        fs->f = realloc(fs->f, sizeof *fs->f * (size_t)fs->cap);
    }
    fs->f[fs->n].name = strdup(name);
    fs->f[fs->n++].json = strdup(json);
}

const char *fs_get(const fieldset *fs, const char *name)
{
    for (int i = 0; i < fs->n; i++)
        if (strcmp(fs->f[i].name, name) == 0) return fs->f[i].json;
    return NULL;
}

void fs_free(fieldset *fs)
{
    for (int i = 0; i < fs->n; i++)
        free(fs->f[i].name), free(fs->f[i].json);
    free(fs->f);
    memset(fs, 0, sizeof *fs);
}

/* each_field for the bodies jw_object reads: the members copied out NUL-terminated. */
static int each_flat_field(size_t len, const jw_member *m, int n, field_cb cb, void *ud)
{
    char *buf = malloc(2 * len + 3 * (size_t)n + 1);
    if (!buf) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char *key = buf, *js = key + m[i].key_len + 1, *text = js + m[i].json_len + 1;
        memcpy(key, m[i].key, m[i].key_len);
        key[m[i].key_len] = 0;
        memcpy(js, m[i].json, m[i].json_len);
        js[m[i].json_len] = 0;
        memcpy(text, m[i].text, m[i].text_len);
        text[m[i].text_len] = 0;
        rc = cb(ud, key, m[i].type, js, text);
    }
    free(buf);
    return rc;
}

int each_field(dv_emulator *e, const char *json, size_t len, field_cb cb, void *ud)
{
    jw_member *m = NULL;
    int n = 0;
    if (jw_object(json, len, &m, &n) == 0) {
        int rc = each_flat_field(len, m, n, cb, ud);
        free(m);
        return rc;
    }
    sqlite3_stmt *st = store_stmt(
        e, "SELECT key, type, CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
           "WHEN 'null' THEN 'null' WHEN 'object' THEN value WHEN 'array' THEN value "
           "ELSE json_quote(value) END, value FROM json_each(?1)");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, json, (int)len, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = cb(
            ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
        if (r) {
            sqlite3_reset(st);
            return r;
        }
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

static int json_is_object(dv_emulator *e, const char *json, size_t len)
{
    jw_member *m = NULL;
    int n = 0;
    if (jw_object(json, len, &m, &n) == 0) {
        free(m);
        return 1;
    }
    sqlite3_stmt *st = store_stmt(e, "SELECT json_valid(?1) AND json_type(?1) = 'object'");
    sqlite3_bind_text(st, 1, json, (int)len, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
}

int collect_cb(void *ud, const char *key, const char *type, const char *json, const char *text)
{
    (void)type, (void)text;
    fs_set(ud, key, json);
    return 0;
}

/* ---- writing ---- */

typedef struct {
    emu_req *r;
    emu_entity *t;
    fieldset *fs;
    fieldset deep; /* related rows to create first: lookup column -> JSON object */
    int failed;
} apply_ctx;

static int date_ok(const char *s)
{
    return strlen(s) >= 10 && isdigit((unsigned char)s[0]) && s[4] == '-' && s[7] == '-';
}

/* A column listed in the metadata whose content the emulator does not keep. Dataverse itself
 * refuses a file column's content in a create or update ("Use file column data": file data
 * goes through the file messages); image and choices columns it would take. */
static int unstored_column(emu_req *r, const emu_entity *t, const dv_attribute_def *a)
{
    if (a->type == DV_ATTR_FILE)
        return emu_error(r, 400, "0x80040203",
                         "The value of file column '%s' of table '%s' can't be set in a create or "
                         "update operation; upload the file with the file column messages.",
                         a->logical_name, t->def.logical_name);
    return emu_error(r, 501, "0x80040203",
                     "The dvlua emulator does not store the content of column '%s' (%s) of table "
                     "'%s'.",
                     a->logical_name,
                     dv_attr_type_name(a->type) ? dv_attr_type_name(a->type)
                                                : dv_attr_type_code(a->type),
                     t->def.logical_name);
}

/* Lookups the server fills from the caller and the owner. */
static int is_server_lookup(const char *logical)
{
    return !strcmp(logical, "createdby") || !strcmp(logical, "modifiedby") ||
           !strcmp(logical, "owninguser") || !strcmp(logical, "owningbusinessunit");
}

static int apply_cb(void *ud, const char *key, const char *type, const char *json, const char *text)
{
    apply_ctx *c = ud;
    emu_req *r = c->r;
    const emu_entity *t = c->t;
    const char *tn = t->def.logical_name;
    if (key[0] == '@') return 0; /* instance annotations such as @odata.type */
    size_t klen = strlen(key);
    if (klen > 11 && strcmp(key + klen - 11, "@odata.bind") == 0) {
        char nav[128];
        snprintf(nav, sizeof nav, "%.*s", (int)(klen - 11), key);
        const dv_attribute_def *a = store_attr(t, nav);
        if (!a) {
            /* A custom lookup's navigation property is its SchemaName (sample_ParentBook);
             * the emulator keeps logical names, so it matches that spelling case-blind. The
             * system lookups (no publisher prefix) stay case-sensitive, as in Dataverse. */
            char low[128];
            for (size_t i = 0; i < sizeof low; i++)
                if (!(low[i] = (char)tolower((unsigned char)nav[i]))) break;
            const dv_attribute_def *custom = strchr(low, '_') ? store_attr(t, low) : NULL;
            if (custom) {
                a = custom;
                memcpy(nav, low, sizeof nav);
            }
        }
        const char *want_target = a ? a->target : NULL;
        char *us = strrchr(nav, '_');
        if (!a && us) {
            /* customer lookups bind as <column>_<table>: parentcustomerid_account */
            *us = 0;
            a = store_attr(t, nav);
            want_target = us + 1;
            if (a && a->target) a = NULL;
            if (!a) *us = '_';
        }
        if (a && is_server_lookup(a->logical_name))
            return 0; /* system-maintained: Dataverse ignores what a client sends */
        if (!a || (a->type != DV_ATTR_LOOKUP && a->type != DV_ATTR_OWNER)) {
            c->failed = 1;
            return emu_error(r, 400, BAD_QUERY,
                             "An undeclared property '%s' which only has property annotations "
                             "in the payload but no property value was found in the payload. In "
                             "OData, only declared navigation properties and declared named "
                             "streams can be represented as properties without values.",
                             nav);
        }
        char prop[160];
        emu_prop_name(a, prop, sizeof prop);
        if (strcmp(type, "null") == 0) {
            fs_set(c->fs, prop, "null");
            return 0;
        }
        const char *seg = text && strcmp(type, "text") == 0 ? strrchr(text, '/') : NULL;
        seg = seg ? seg + 1 : (strcmp(type, "text") == 0 ? text : NULL);
        const char *lp = seg ? strchr(seg, '(') : NULL;
        emu_entity *target = lp ? store_by_set(r->emu, seg, (size_t)(lp - seg)) : NULL;
        if (!target || !guid_valid(lp + 1, strnlen(lp + 1, 36)) || lp[37] != ')') {
            c->failed = 1;
            return emu_error(r, 400, BAD_QUERY,
                             "The value of '%s' is not a valid entity reference: expected "
                             "'/<entityset>(<guid>)'.",
                             key);
        }
        if (want_target && strcmp(want_target, target->def.logical_name) != 0) {
            c->failed = 1;
            return emu_error(r, 400, BAD_QUERY, "'%s' refers to table '%s'; '%s' expects a '%s'.",
                             key, target->def.logical_name, nav, want_target);
        }
        char id[37];
        for (int i = 0; i < 36; i++)
            id[i] = (char)tolower((unsigned char)lp[1 + i]);
        id[36] = 0;
        if (!store_row_get(r->emu, target, id, NULL, NULL)) {
            c->failed = 1;
            return emu_error(r, 404, NOT_FOUND, "Entity '%s' With Id = %s Does Not Exist",
                             target->def.logical_name, id);
        }
        char q[40];
        snprintf(q, sizeof q, "\"%s\"", id);
        fs_set(c->fs, prop, q);
        return 0;
    }
    if (strcmp(type, "object") == 0 || strcmp(type, "array") == 0) {
        /* Deep insert: "primarycontactid": {…} creates the contact and links it. */
        const dv_attribute_def *nav = store_attr(t, key);
        if (nav && nav->type == DV_ATTR_LOOKUP && nav->target && !strcmp(type, "object")) {
            fs_set(&c->deep, key, json);
            return 0;
        }
        c->failed = 1;
        if (!strcmp(type, "object"))
            return emu_error(r, 400, "0x80048d19",
                             "Error identified in Payload provided by the user for Entity :'%s', "
                             "For more information on this error please follow this help link "
                             "https://go.microsoft.com/fwlink/?linkid=2195293  ---->  "
                             "InnerException : Microsoft.OData.ODataException: A node of type "
                             "'StartObject' was read from the JSON reader when trying to read a "
                             "value of the property '%s'; however, a 'PrimitiveValue' or "
                             "'StartArray' node was expected.",
                             t->def.entity_set_name, key);
        if (!strcmp(type, "array"))
            return emu_error(r, 501, BAD_QUERY,
                             "Creating related rows through the collection '%s' is not served by "
                             "the dvlua emulator.",
                             key);
    }
    if (strcmp(type, "null") == 0) {
        /* "Disassociate tables on update": a single-valued navigation property set to null */
        const dv_attribute_def *nav = store_attr(t, key);
        if (nav && (nav->type == DV_ATTR_LOOKUP || nav->type == DV_ATTR_OWNER) &&
            !is_server_lookup(nav->logical_name)) {
            char prop[160];
            emu_prop_name(nav, prop, sizeof prop);
            fs_set(c->fs, prop, "null");
            return 0;
        }
    }
    const dv_attribute_def *a = store_prop(t, key, klen);
    if (!a || a->type == DV_ATTR_LOOKUP || a->type == DV_ATTR_OWNER) {
        c->failed = 1;
        return emu_error(r, 400, BAD_QUERY,
                         "The property '%s' does not exist on type 'Microsoft.Dynamics.CRM.%s'. "
                         "Make sure to only use property names that are defined by the type.",
                         key, tn);
    }
    if (!dv_attr_stored(a->type)) {
        c->failed = 1;
        return unstored_column(r, t, a);
    }
    if (!strcmp(key, "createdon") || !strcmp(key, "modifiedon") || !strcmp(key, "versionnumber"))
        return 0; /* system-maintained: Dataverse ignores what a client sends */
    int ok;
    if (strcmp(type, "null") == 0)
        ok = 1;
    else
        switch (a->type) {
        case DV_ATTR_STRING:
        case DV_ATTR_MEMO:
            ok = !strcmp(type, "text");
            break;
        case DV_ATTR_INTEGER:
        case DV_ATTR_BIGINT:
        case DV_ATTR_PICKLIST:
        case DV_ATTR_STATE:
        case DV_ATTR_STATUS:
            ok = !strcmp(type, "integer");
            break;
        case DV_ATTR_DECIMAL:
        case DV_ATTR_DOUBLE:
        case DV_ATTR_MONEY:
            ok = !strcmp(type, "integer") || !strcmp(type, "real");
            break;
        case DV_ATTR_BOOLEAN:
            ok = !strcmp(type, "true") || !strcmp(type, "false");
            break;
        case DV_ATTR_DATETIME:
            ok = !strcmp(type, "text") && date_ok(text);
            break;
        default:
            ok = !strcmp(type, "text") && guid_valid(text, strlen(text));
            break;
        }
    if (!ok) {
        c->failed = 1;
        return emu_error(r, 400, BAD_QUERY,
                         "Cannot convert a primitive value to the expected type '%s'. See the "
                         "inner exception for more details. (property '%s')",
                         dv_attr_edm_type(a->type) ? dv_attr_edm_type(a->type) : "Edm.Guid", key);
    }
    if ((a->type == DV_ATTR_STRING || a->type == DV_ATTR_MEMO) && a->max_length > 0 &&
        strcmp(type, "text") == 0) {
        long chars = 0; /* UTF-8 code points, close to Dataverse's UTF-16 units */
        for (const unsigned char *q = (const unsigned char *)text; *q; q++)
            chars += (*q & 0xC0) != 0x80;
        if (chars > a->max_length) {
            c->failed = 1;
            return emu_error(r, 400, "0x80044331",
                             "A validation error occurred. The length of the '%s' attribute of "
                             "the '%s' entity exceeded the maximum allowed length of '%d'.",
                             key, tn, a->max_length);
        }
    }
    if (a->type == DV_ATTR_UNIQUEIDENTIFIER && strcmp(type, "text") == 0) {
        char low[40];
        snprintf(low, sizeof low, "\"%s\"", text);
        for (char *p = low; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        fs_set(c->fs, key, low);
        return 0;
    }
    fs_set(c->fs, key, json);
    return 0;
}

/* Builds the stored JSON of a row from its fields, in the table's column order. */
static void build_data(const emu_entity *t, const fieldset *fs, sbuf *out)
{
    sb_putc(out, '{');
    for (int i = 0; i < t->def.n_attributes; i++) {
        char prop[160];
        emu_prop_name(&t->def.attributes[i], prop, sizeof prop);
        const char *v = fs_get(fs, prop);
        if (i) sb_putc(out, ',');
        sb_putc(out, '"');
        sb_puts(out, prop);
        sb_puts(out, "\":");
        sb_puts(out, v ? v : "null");
    }
    sb_putc(out, '}');
}

static int dup_key_error(emu_req *r, const emu_entity *t, int k)
{
    const dv_key_def *kd = &t->def.keys[k];
    sbuf cols = {0};
    for (int j = 0; j < kd->n_attributes; j++) {
        const dv_attribute_def *a = store_attr(t, kd->attributes[j]);
        sb_printf(&cols, "%s%s", j ? ", " : "",
                  a && a->display_name ? a->display_name : kd->attributes[j]);
    }
    int rc = emu_error(r, 412, DUP_KEY,
                       "A record that has the attribute values %s already exists. The entity "
                       "key %s requires that this set of attributes contains unique values. "
                       "Select unique values and try again.",
                       sb_str(&cols), kd->display_name ? kd->display_name : kd->logical_name);
    sb_free(&cols);
    return rc;
}

/* contact.fullname is computed from the name parts, as Dataverse does. */
static void contact_fullname(dv_emulator *e, const emu_entity *t, fieldset *fs)
{
    if (strcmp(t->def.logical_name, "contact") != 0) return;
    const char *first = fs_get(fs, "firstname"), *last = fs_get(fs, "lastname");
    sqlite3_stmt *st =
        store_stmt(e, "SELECT nullif(trim(coalesce(json_extract(?1,'$'),'') || ' ' || "
                      "coalesce(json_extract(?2,'$'),'')), '')");
    if (!st) return;
    sqlite3_bind_text(st, 1, first ? first : "null", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, last ? last : "null", -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        sbuf v = {0};
        sb_json_str(&v, (const char *)sqlite3_column_text(st, 0));
        fs_set(fs, "fullname", sb_str(&v));
        sb_free(&v);
    }
    sqlite3_reset(st);
}

static const char *fs_member(void *ud, const char *prop)
{
    return fs_get(ud, prop);
}

int write_row(emu_req *r, const emu_entity *t, const char *id, fieldset *fs, int existing)
{
    dv_emulator *e = r->emu;
    contact_fullname(e, t, fs);
    int64_t v = store_next_version(e, t);
    char ts[32], q[64];
    time_iso(emu_now(e), ts);
    snprintf(q, sizeof q, "\"%s\"", ts);
    if (!existing) {
        fs_set(fs, "createdon", q);
        if (!fs_get(fs, "statecode") || !strcmp(fs_get(fs, "statecode"), "null"))
            fs_set(fs, "statecode", "0");
        if (!fs_get(fs, "statuscode") || !strcmp(fs_get(fs, "statuscode"), "null"))
            fs_set(fs, "statuscode", "1");
        if (!fs_get(fs, "_ownerid_value")) fs_set(fs, "_ownerid_value", "\"" EMU_USER_ID "\"");
        /* Who created and owns a row is the server's to say: the caller (WhoAmI's user). */
        fs_set(fs, "_createdby_value", "\"" EMU_USER_ID "\"");
        fs_set(fs, "_owninguser_value", fs_get(fs, "_ownerid_value"));
        fs_set(fs, "_owningbusinessunit_value", "\"" EMU_BU_ID "\"");
    }
    fs_set(fs, "_modifiedby_value", "\"" EMU_USER_ID "\"");
    fs_set(fs, "modifiedon", q);
    snprintf(q, sizeof q, "%lld", (long long)v);
    fs_set(fs, "versionnumber", q);
    snprintf(q, sizeof q, "\"%s\"", id);
    fs_set(fs, t->def.primary_id, q);
    sbuf data = {0};
    build_data(t, fs, &data);
    int dup = -1;
    int rc = store_row_write(e, t, id, sb_str(&data), v, !existing, fs_member, fs, &dup);
    sb_free(&data);
    if (rc == 1) return dup_key_error(r, t, dup);
    if (rc)
        return emu_error(r, 500, "0x80040216", "The store failed: %s", sqlite3_errmsg(store_db(e)));
    return 0;
}

/* Parses the request body into fs (validated against t); returns 0 or -1 (answer set). */
int body_fields(emu_req *r, emu_entity *t, const char *json, size_t len, fieldset *fs)
{
    if (!json_is_object(r->emu, json, len))
        return emu_error(r, 400, BAD_QUERY,
                         "The request body is not a JSON object (or is not valid JSON).");
    apply_ctx c = {r, t, fs, {0}, 0};
    int rc = each_field(r->emu, json, len, apply_cb, &c);
    if (c.failed || rc) {
        if (!c.failed) emu_error(r, 400, BAD_QUERY, "The request body could not be read.");
        fs_free(&c.deep);
        return -1;
    }
    /* After the walk over this body: creating a related row reads another body. */
    for (int i = 0; i < c.deep.n; i++) {
        const dv_attribute_def *nav = store_attr(t, c.deep.f[i].name);
        emu_entity *target = store_by_logical(r->emu, nav->target, strlen(nav->target));
        char id[37], prop[160], q[40];
        if (!target || rows_create_json(r, target, c.deep.f[i].json, id)) {
            if (!target) emu_error(r, 400, BAD_QUERY, "No table '%s' to create.", nav->target);
            fs_free(&c.deep);
            return -1;
        }
        emu_prop_name(nav, prop, sizeof prop);
        snprintf(q, sizeof q, "\"%s\"", id);
        fs_set(fs, prop, q);
    }
    fs_free(&c.deep);
    return 0;
}

int rows_create_json(emu_req *r, emu_entity *t, const char *json, char id_out[37])
{
    fieldset fs = {0};
    if (body_fields(r, t, json, strlen(json), &fs)) {
        fs_free(&fs);
        return -1;
    }
    const char *given = fs_get(&fs, t->def.primary_id);
    if (given && strcmp(given, "null") != 0)
        snprintf(id_out, 37, "%.36s", given + 1);
    else
        guid_new(id_out);
    if (store_row_get(r->emu, t, id_out, NULL, NULL)) {
        fs_free(&fs);
        return emu_error(r, 412, DUP_RECORD, "Cannot insert duplicate key.");
    }
    int rc = write_row(r, t, id_out, &fs, 0);
    fs_free(&fs);
    return rc;
}
