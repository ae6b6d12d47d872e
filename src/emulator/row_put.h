/* Writing a row addressed by id or alternate key (row_put.c): the update-or-create step that
 * PATCH and the bulk messages share, inside the caller's transaction. Callers hold emu->mu. */
#ifndef DV_EMU_ROW_PUT_H
#define DV_EMU_ROW_PUT_H
#include <stdint.h>

#include "entity.h"
#include "request.h"
#include "row_address.h"

/* 1 when an If-Match (or If-None-Match) value names a version other than ver ("*" and NULL
 * match any). */
int etag_mismatch(const char *if_match, int64_t ver);
/* The 412 answer for a version that does not match; returns -1. */
int version_mismatch(emu_req *r);

/* Updates or creates the row a addresses from a JSON object with the If-Match /
 * If-None-Match rules (either may be NULL); id receives the row's id and *exists_out says
 * whether it existed. Returns 0, or -1 after emu_error. */
int row_put_addressed(emu_req *r, emu_entity *t, const address *a, const char *json, size_t len,
                      const char *if_match, const char *if_none, char id[37], int *exists_out);

/* Updates (upsert 0: the row must exist) or upserts the row addressed by addr — the text
 * inside the parentheses of `set(…)`, an id or alternate-key values, ending with ')'. Its id
 * goes to id_out and *created says whether it was created. Returns 0, or -1 after emu_error. */
int row_put_json(emu_req *r, emu_entity *t, const char *addr, const char *json, size_t len,
                 int upsert, char id_out[37], int *created);

#endif
