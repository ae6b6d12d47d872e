/* Single rows over the Web API (rows.c): read by id or alternate key, create, update,
 * upsert, delete, and single columns. Each handler fills in r and returns 0, or -1 after
 * emu_error; called with emu->mu held. */
#ifndef DV_EMU_ROWS_H
#define DV_EMU_ROWS_H
#include "entity.h"
#include "request.h"
#include "row_address.h"

/* GET <set>(<key>). */
int h_row_get(emu_req *r, emu_entity *t, const address *a);
/* POST <set>: creates a row (return=representation answers it). */
int h_row_post(emu_req *r, emu_entity *t);
/* PATCH <set>(<key>): updates the row, or creates it (upsert) unless If-Match says not to. */
int h_row_patch(emu_req *r, emu_entity *t, const address *a);
/* DELETE <set>(<key>). */
int h_row_delete(emu_req *r, emu_entity *t, const address *a);
/* GET/PUT/DELETE <set>(<key>)/<column>. */
int h_row_property(emu_req *r, emu_entity *t, const address *a, const char *prop);

#endif
