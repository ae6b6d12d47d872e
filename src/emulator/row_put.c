/* The update-or-create step of PATCH, shared with the bulk messages. See row_put.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"
#include "row_put.h"
#include "row_write.h"
#include "store.h"

int etag_mismatch(const char *if_match, int64_t ver)
{
    if (!if_match || strcmp(if_match, "*") == 0) return 0;
    char want[64];
    snprintf(want, sizeof want, "W/\"%lld\"", (long long)ver);
    return strcmp(if_match, want) != 0;
}

int version_mismatch(emu_req *r)
{
    return emu_error(r, 412, "0x80060882",
                     "The version of the existing record doesn't match the RowVersion "
                     "property provided.");
}

int row_put_addressed(emu_req *r, emu_entity *t, const address *a, const char *json, size_t len,
                      const char *if_match, const char *if_none, char id[37], int *exists_out)
{
    dv_emulator *e = r->emu;
    int exists = find_row(r, t, a, id);
    *exists_out = exists;
    if (exists && if_none && strcmp(if_none, "*") == 0)
        return emu_error(r, 412, DUP_RECORD, "A record with matching key values already exists.");
    if (!exists && if_match) return not_found(r, t, a);
    fieldset fs = {0};
    int64_t ver = 0;
    if (exists) {
        char *old = NULL;
        store_row_get(e, t, id, &old, &ver);
        if (etag_mismatch(if_match, ver)) {
            free(old);
            return version_mismatch(r);
        }
        each_field(e, old, strlen(old), collect_cb, &fs);
        free(old);
    } else if (a->kind == ADDR_ID) {
        snprintf(id, 37, "%s", a->id);
    } else {
        guid_new(id);
        /* An upsert by alternate key creates the row with the key's values. */
        for (int i = 0; i < a->kv.n; i++) {
            const keyval *kv = &a->kv.v[i];
            const dv_attribute_def *at = store_attr(t, kv->name);
            char prop[160];
            if (!at) continue;
            emu_prop_name(at, prop, sizeof prop);
            sbuf v = {0};
            if (kv->type == SQLITE_TEXT)
                sb_json_str(&v, kv->text);
            else if (kv->type == SQLITE_INTEGER)
                sb_printf(&v, "%lld", kv->i);
            else
                sb_printf(&v, "%.17g", kv->d);
            fs_set(&fs, prop, sb_str(&v));
            sb_free(&v);
        }
    }
    fieldset old_keys = {0};
    if (exists) {
        /* An upsert that updates never moves the row's key: the body's values for the
         * addressed key's columns give way to the stored ones. */
        const dv_key_def *k = a->kind == ADDR_KEY ? &t->def.keys[a->key] : NULL;
        for (int j = 0; k && j < k->n_attributes; j++) {
            const dv_attribute_def *at = store_attr(t, k->attributes[j]);
            char prop[160];
            if (!at) continue;
            emu_prop_name(at, prop, sizeof prop);
            const char *v = fs_get(&fs, prop);
            if (v) fs_set(&old_keys, prop, v);
        }
    }
    if (body_fields(r, t, json, len, &fs)) {
        fs_free(&fs);
        fs_free(&old_keys);
        return -1;
    }
    for (int i = 0; i < old_keys.n; i++)
        fs_set(&fs, old_keys.f[i].name, old_keys.f[i].json);
    fs_free(&old_keys);
    const char *given = fs_get(&fs, t->def.primary_id);
    if (given && strcmp(given, "null") != 0 && strncmp(given + 1, id, 36) != 0) {
        fs_free(&fs);
        return emu_error(r, 400, "0x80040203",
                         "The primary id in the body does not match the record addressed.");
    }
    int rc = write_row(r, t, id, &fs, exists);
    fs_free(&fs);
    return rc ? -1 : 0;
}

int row_put_json(emu_req *r, emu_entity *t, const char *addr, const char *json, size_t len,
                 int upsert, char id_out[37], int *created)
{
    address a;
    const char *end = NULL;
    if (parse_address(r, t, addr, &end, &a)) return -1;
    int exists = 0;
    int rc = row_put_addressed(r, t, &a, json, len, upsert ? NULL : "*", NULL, id_out, &exists);
    keyvals_free(&a.kv);
    *created = !exists;
    return rc;
}
