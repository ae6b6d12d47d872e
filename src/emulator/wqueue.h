/* The writers' queue of one SQLite connection: threads take turns writing through it, and
 * the writes of several turns are committed together (group commit).
 *
 * A writer's turn starts with wq_begin (a savepoint inside the open transaction, which the
 * turn opens if none is) and ends with wq_end. When other writers are already waiting, a
 * successful turn leaves the transaction open for them and waits; the last writer of the
 * group, finding nobody waiting, commits it. Every writer of the group returns only after
 * that commit, with its result: a write is acknowledged once it is committed, never before.
 * A failed turn rolls back to its savepoint and leaves the others' writes alone. Waiting is
 * on a mutex handed straight to the next writer, never SQLite's busy handler, which sleeps
 * for growing intervals (1 ms, 2 ms, 5 ms ... 100 ms) while the lock is long free. */
#ifndef DV_EMU_WQUEUE_H
#define DV_EMU_WQUEUE_H
#include <sqlite3.h>

typedef struct emu_wqueue emu_wqueue;

typedef struct {
    long writes;      /* turns */
    long commits;     /* transactions committed (writes / commits: the mean group size) */
    double wait_ms;   /* summed time writers waited for their turn */
    double turn_ms;   /* summed length of the turns */
    double commit_ms; /* summed time in COMMIT */
} emu_wq_stats;

/* The queue of db (which must outlive it); NULL when out of memory. */
emu_wqueue *wq_new(sqlite3 *db);
void wq_free(emu_wqueue *q);

/* Waits for a turn and opens the writer's part of the transaction: 0, or -1 (no turn held). */
int wq_begin(emu_wqueue *q);
/* Ends the turn: with ok, keeps the part and returns 0 once a commit holding it succeeded
 * (-1 when that commit failed); without, rolls the part back and returns -1. Statements of
 * db left stepped are reset: the connection is the next writer's. */
int wq_end(emu_wqueue *q, int ok);

/* Takes the turn with no transaction open (a group in progress is committed first), for work
 * that needs the writers held, such as a checkpoint that must catch up; wq_unhold ends it. */
void wq_hold(emu_wqueue *q);
void wq_unhold(emu_wqueue *q);

void wq_stats(emu_wqueue *q, emu_wq_stats *s, int reset);

#endif
