/* $batch (batch.c): a multipart/mixed request of up to 1,000 requests, run in order; change
 * sets commit or roll back as a whole; Content-ID references ($1) inside a change set;
 * Prefer: odata.continue-on-error. Each part is answered through the router's dispatch
 * callback, so this handler never calls up. */
#ifndef DV_EMU_BATCH_H
#define DV_EMU_BATCH_H
#include "emu_internal.h"
#include "request.h"

#define BATCH_MAX_REQUESTS 1000

/* Answers one sub-request whose path is relative to the API base ("accounts(…)"); fills in
 * sub like any handler. Called with emu->mu held. */
typedef int (*batch_dispatch_fn)(emu_req *sub, const char *path, void *ud);

/* Answers POST $batch. Fills in r and returns 0, or -1 after emu_error. */
int h_batch(emu_req *r, batch_dispatch_fn dispatch, void *ud);

#endif
