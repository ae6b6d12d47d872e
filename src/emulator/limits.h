/* Service protection for the emulator, as Dataverse documents it ("Service protection API
 * limits"): per user, over a sliding window, the number of requests, their combined
 * execution time, and the number of concurrent requests, each refused with 429, its own
 * error code and message, and Retry-After. Off unless asked for. Also what every answer
 * carries whether limits are on or not: x-ms-dop-hint, and the counters the specs and
 * benchmarks read (requests, peak concurrency, throttled, server time).
 *
 * The emulator has a single user (WhoAmI), so the window is the emulator's.
 *
 * Offers:
 *   emu_guard_new / free   the limits, the latency model and the counters of one emulator
 *   emu_guard_parse        "requests=100,concurrent=4,window=10" / "request_ms=20,per_row_ms=0.05"
 *   emu_guard_enter        admit a request or say why not (before the handler)
 *   emu_guard_locked       note when the request got the store's lock
 *   emu_guard_leave        apply the latency model and account execution time (after it)
 *   emu_guard_headers      the headers every Web API answer carries
 *   emu_guard_stats        the counters */
#ifndef DV_EMU_LIMITS_H
#define DV_EMU_LIMITS_H
#include <stddef.h>

#include "emulator.h"
#include "latency.h"

struct MHD_Response;

#define EMU_LIMIT_REQUESTS 6000
#define EMU_LIMIT_EXECUTION_MS 1200000L
#define EMU_LIMIT_CONCURRENT 52
#define EMU_LIMIT_WINDOW_S 300.0
#define EMU_DOP_HINT 8

typedef struct emu_guard_opts {
    int limits;          /* 1: service protection on */
    long requests;       /* per window; 0: EMU_LIMIT_REQUESTS */
    long execution_ms;   /* per window; 0: EMU_LIMIT_EXECUTION_MS */
    int concurrent;      /* 0: EMU_LIMIT_CONCURRENT */
    double window_s;     /* 0: EMU_LIMIT_WINDOW_S */
    emu_latency latency; /* all zero: off */
    int dop_hint;        /* 0: EMU_DOP_HINT */
} emu_guard_opts;

typedef struct emu_guard emu_guard;

/* What a request holds between enter and leave. */
typedef struct emu_ticket {
    double start;  /* monotonic seconds */
    double locked; /* when the store's lock was had; 0 if never */
} emu_ticket;

/* Why a request was refused. */
typedef struct emu_refusal {
    const char *code;
    char message[200];
    long retry_after; /* seconds */
} emu_refusal;

emu_guard *emu_guard_new(const emu_guard_opts *o);
void emu_guard_free(emu_guard *g);

/* Parses a comma-separated key=value list into o: the limits' keys (requests, execution_ms,
 * concurrent, window) when latency is 0, the latency model's (request_ms, per_row_ms)
 * otherwise. Returns 0, or -1 with a message naming the bad part. */
int emu_guard_parse(const char *spec, int latency, emu_guard_opts *o, char *err, size_t errlen);

/* Returns 0 when the request is admitted (counted as in flight until emu_guard_leave), 1 when
 * a limit refuses it (why filled; it is not counted). */
int emu_guard_enter(emu_guard *g, emu_ticket *t, emu_refusal *why);

/* Notes that the request got the store's lock: the wait before it is counted apart
 * (lock_wait_ms), since the service has no such single lock. */
void emu_guard_locked(emu_ticket *t);

/* Called after the handler, without the store's lock: waits as the latency model says for
 * the answer body, then accounts the request's execution time (handler and wait). */
void emu_guard_leave(emu_guard *g, const emu_ticket *t, const char *body, size_t len);

/* Adds x-ms-dop-hint and, with limits on, x-ms-ratelimit-burst-remaining-xrm-requests and
 * x-ms-ratelimit-time-remaining-xrm-requests to an answer. */
void emu_guard_headers(emu_guard *g, struct MHD_Response *resp);

void emu_guard_stats(emu_guard *g, dv_emulator_stats *s, int reset);

#endif
