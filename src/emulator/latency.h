/* The emulator's latency model: each answer is held back by a fixed time per request plus a
 * time per row it returns, so benchmarks see the shape of the real service (a 5,000-row
 * page in about a second) while requests still overlap (the wait happens without the store's
 * lock, on the connection's own thread).
 *
 * Offers:
 *   emu_latency_rows   how many rows a JSON answer carries (its top-level "value" array)
 *   emu_latency_wait   sleep for the model's delay of an answer; returns the delay in ms */
#ifndef DV_EMU_LATENCY_H
#define DV_EMU_LATENCY_H
#include <stddef.h>

typedef struct emu_latency {
    double request_ms; /* per answer */
    double per_row_ms; /* per row in the answer's "value" array */
} emu_latency;

long emu_latency_rows(const char *body, size_t len);

/* Sleeps request_ms + rows * per_row_ms (nothing when both are 0); returns the delay. */
double emu_latency_wait(const emu_latency *l, const char *body, size_t len);

#endif
