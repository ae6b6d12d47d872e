/* Many requests in flight on one dv_http (src/http.h) through libcurl's multi interface, under
 * one concurrency budget for everything that runs on the connection:
 *   - the budget starts at the server's x-ms-dop-hint (DV_MULTI_DEFAULT before one is known,
 *     never above DV_MULTI_MAX), optionally capped lower by the caller;
 *   - a 429 halves it (not below 1; once per throttling episode, not once per refused
 *     transfer) and pauses every transfer of the connection until Retry-After has passed;
 *   - it then grows back by one per DV_MULTI_RECOVER_EVERY successful responses;
 *   - a request starts as soon as it is queued when a slot is free, and a slot freed by an
 *     answer is refilled at once; between waits, answers the caller has not taken yet count
 *     against the budget, so a caller slower than the server holds at most one answer per
 *     slot (a wait that needs progress launches up to the full budget);
 *   - every request keeps dv_http_request's retry policy (src/http.h), except that a 429 to
 *     a transfer launched before the latest halving does not use up one of its tries (it
 *     was refused for what the others did); a 401 leads to one token refresh shared by all
 *     the transfers refused with the same token.
 *
 * Offers:
 *   dv_multi_new / free      a driver over an existing dv_http (which it does not own)
 *   dv_multi_submit          queue a request (copied); returns its id
 *   dv_multi_submit_timer    queue a wait that finishes after some seconds (no transfer)
 *   dv_multi_wait            drive transfers until a given request is finished
 *   dv_multi_wait_any        drive transfers until one of several requests is finished
 *   dv_multi_kick            start what may start and move transfers on, without waiting
 *   dv_multi_cancel          forget a request, cutting its transfer off if it runs
 *   dv_multi_result          the outcome of a finished request (and forget it)
 *   dv_multi_stats_get       counters and the current budget
 *
 * Single-threaded: the caller drives it (a blocking wait, or a scheduler of coroutines).
 * All state is per object. */
#ifndef DV_MULTI_H
#define DV_MULTI_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http.h"

#define DV_MULTI_MAX 52           /* Dataverse's default limit of concurrent requests per user */
#define DV_MULTI_DEFAULT 4        /* before (or without) an x-ms-dop-hint */
#define DV_MULTI_RECOVER_EVERY 20 /* successful responses per +1 after a halving */

typedef struct dv_multi dv_multi;

typedef struct dv_multi_stats {
    long requests;   /* HTTP requests sent (every try counts) */
    long retries;    /* tries beyond the first of a request */
    long throttled;  /* 429 answers */
    double waited_s; /* seconds the connection was paused by 429s (wall time, not summed) */
    int concurrency; /* the current budget */
    int cap;         /* what it may grow back to: min(hint or default, caller's cap, 52) */
    int hint;        /* the last x-ms-dop-hint, 0 when none came */
    int in_flight;   /* transfers running now */
    int queued;      /* requests waiting for a slot, a pause or a backoff */
    int held;        /* requests finished whose answer nobody has taken yet */
    int peak;        /* most transfers ever running at once */
} dv_multi_stats;

/* max_concurrency > 0 caps the budget below what the server hints. */
dv_multi *dv_multi_new(dv_http *h, int max_concurrency, dv_error *err);
void dv_multi_free(dv_multi *m);

/* Changes the caller's cap (0: none). */
void dv_multi_set_cap(dv_multi *m, int max_concurrency);

/* Queues req; method, URL, headers and body are copied. Returns an id (> 0), or 0 with err
 * filled when out of memory. */
uint64_t dv_multi_submit(dv_multi *m, const dv_http_req *req, dv_error *err);

/* Queues a wait: an id that finishes, with result 0 and no response, once seconds have
 * passed; it takes no slot of the budget. Lets a scheduler's task sleep while the others'
 * transfers go on. Returns 0 with err filled when out of memory. */
uint64_t dv_multi_submit_timer(dv_multi *m, double seconds, dv_error *err);

/* Drives every transfer until request id is finished. Returns 0, or -1 when id is unknown. */
int dv_multi_wait(dv_multi *m, uint64_t id);

/* Drives every transfer until one of the n requests in ids is finished (or none of them is
 * known). Schedulers pass the requests their waiting tasks need, so two of them nested on
 * one connection never steal each other's answers. */
void dv_multi_wait_any(dv_multi *m, const uint64_t *ids, size_t n);

/* Starts the queued requests the budget allows and moves every transfer on as far as it goes
 * without blocking: a request submitted ahead of need (the next page of a read) is on the
 * wire while the caller works on the previous answer. */
void dv_multi_kick(dv_multi *m);

/* Forgets request id whatever its state (a running transfer is cut off, its connection
 * closed); nothing when id is unknown. For a request submitted ahead of need that is no
 * longer wanted. */
void dv_multi_cancel(dv_multi *m, uint64_t id);

/* 1 when request id is finished, 0 when it is still queued or running, -1 when unknown. */
int dv_multi_finished(const dv_multi *m, uint64_t id);

/* Moves the outcome of finished request id into resp and err and forgets the request; the
 * return value is dv_http_request's (0, or -1 with err filled; resp holds a final error
 * response). Returns -2 when id is unknown or not finished (resp and err untouched). */
int dv_multi_result(dv_multi *m, uint64_t id, dv_http_resp *resp, dv_error *err);

void dv_multi_stats_get(const dv_multi *m, dv_multi_stats *s);

#endif
