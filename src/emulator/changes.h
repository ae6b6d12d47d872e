/* Change tracking over the Web API (changes.c): GET <set> with Prefer odata.track-changes,
 * $deltatoken links and their next pages. */
#ifndef DV_EMU_CHANGES_H
#define DV_EMU_CHANGES_H
#include "entity.h"
#include "request.h"

/* Answers a change-tracking read of t (count_only: <set>/$count with a delta token). Fills
 * in r and returns 0, or -1 after emu_error. Called with emu->mu held. */
int h_changes(emu_req *r, emu_entity *t, int count_only);

#endif
