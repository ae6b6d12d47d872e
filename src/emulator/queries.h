/* Collection queries over the Web API (queries.c): GET <set> and <set>/$count. */
#ifndef DV_EMU_QUERIES_H
#define DV_EMU_QUERIES_H
#include "entity.h"
#include "request.h"

/* Answers a collection query on t (count_only: <set>/$count). Fills in r and returns 0, or
 * -1 after emu_error. Called with emu->mu held. */
int h_query_rows(emu_req *r, emu_entity *t, int count_only);

#endif
