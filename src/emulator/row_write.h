/* Rows from JSON bodies (row_write.c): the fields of a body validated against a table,
 * and a row written from them at a new version. Callers hold emu->mu. */
#ifndef DV_EMU_ROW_WRITE_H
#define DV_EMU_ROW_WRITE_H
#include "entity.h"
#include "request.h"

typedef struct {
    char *name; /* property name */
    char *json; /* its value as JSON text */
} field;

typedef struct {
    field *f;
    int n, cap;
} fieldset;

void fs_set(fieldset *fs, const char *name, const char *json);
const char *fs_get(const fieldset *fs, const char *name);
void fs_free(fieldset *fs);

/* Splits a flat JSON object into fields, using SQLite's JSON1 parser. */
typedef int (*field_cb)(void *ud, const char *key, const char *type, const char *json,
                        const char *text);
int each_field(dv_emulator *e, const char *json, size_t len, field_cb cb, void *ud);
/* A field_cb that adds each member to the fieldset ud as it is. */
int collect_cb(void *ud, const char *key, const char *type, const char *json, const char *text);

/* Parses the request body into fs (validated against t); returns 0 or -1 (answer set). */
int body_fields(emu_req *r, emu_entity *t, const char *json, size_t len, fieldset *fs);
/* Writes a row from fs (already validated) at a new version. existing is 1 for updates.
 * Returns 0, or -1 after emu_error. */
int write_row(emu_req *r, const emu_entity *t, const char *id, fieldset *fs, int existing);

/* Creates a row of t from a JSON object text inside the caller's transaction (validated
 * like a POST body); its id goes to id_out. Returns 0, or -1 after emu_error. */
int rows_create_json(emu_req *r, emu_entity *t, const char *json, char id_out[37]);

#endif
