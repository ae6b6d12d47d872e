/* The writers' queue of one SQLite connection: threads take turns writing through it, one
 * transaction (BEGIN IMMEDIATE ... COMMIT) per turn.
 *
 * Waiting is on a mutex, handed to the next writer the moment a turn ends. SQLite's busy
 * handler, which writers on connections of their own would wait in, sleeps for growing
 * intervals (1 ms, 2 ms, 5 ms ... 100 ms) however soon the lock is free, so with several
 * writers most of their time went in sleeping past it. Group commit (the writes of waiting
 * writers committed together) was tried and measured no better here: see docs/BENCH.md. */
#ifndef DV_EMU_WQUEUE_H
#define DV_EMU_WQUEUE_H
#include <sqlite3.h>

typedef struct emu_wqueue emu_wqueue;

typedef struct {
    long writes;      /* turns */
    long commits;     /* turns that committed */
    double wait_ms;   /* summed time writers waited for their turn */
    double turn_ms;   /* summed length of the turns, commits included */
    double commit_ms; /* summed time in COMMIT */
} emu_wq_stats;

/* The queue of db (which must outlive it); NULL when out of memory. */
emu_wqueue *wq_new(sqlite3 *db);
void wq_free(emu_wqueue *q);

/* Waits for a turn and opens its transaction: 0, or -1 (no turn held). */
int wq_begin(emu_wqueue *q);
/* Ends the turn: with ok, commits and returns 0 once the commit succeeded (-1 when it did
 * not, and the transaction is rolled back); without, rolls back and returns -1. Statements of
 * db left stepped are reset first: the connection is the next writer's. */
int wq_end(emu_wqueue *q, int ok);

/* Takes the turn with no transaction open, for work that needs the writers held, such as a
 * checkpoint that must catch up; wq_unhold ends it. */
void wq_hold(emu_wqueue *q);
void wq_unhold(emu_wqueue *q);

void wq_stats(emu_wqueue *q, emu_wq_stats *s, int reset);

#endif
