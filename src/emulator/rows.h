/* Rows over the Web API (rows.c): `<set>…` paths — collections with $select, $filter,
 * $orderby, $top, $count, $expand and paging; single rows by id or alternate key; create,
 * update, upsert, delete; single columns; change tracking with delta links. */
#ifndef DV_EMU_ROWS_H
#define DV_EMU_ROWS_H
#include "emu_internal.h"

/* Answers a request whose path (after the API base) starts with an entity set name.
 * Fills in r and returns 0, or -1 after emu_error. Called with emu->mu held. */
int h_rows(emu_req *r, const char *path);

/* Creates a row of t from a JSON object text inside the caller's transaction (validated
 * like a POST body); its id goes to id_out. Returns 0, or -1 after emu_error. */
int rows_create_json(emu_req *r, emu_entity *t, const char *json, char id_out[37]);

/* Updates (upsert 0: the row must exist) or upserts the row addressed by addr — the text
 * inside the parentheses of `set(…)`, an id or alternate-key values, ending with ')' — from
 * a JSON object, inside the caller's transaction. Its id goes to id_out and *created says
 * whether it was created. Returns 0, or -1 after emu_error. */
int rows_write_json(emu_req *r, emu_entity *t, const char *addr, const char *json, size_t len,
                    int upsert, char id_out[37], int *created);

#endif
