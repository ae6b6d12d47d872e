#include "wqueue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { S_BEGIN, S_COMMIT, S_ROLLBACK, S_N };
static const char *const sqls[S_N] = {"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"};

struct emu_wqueue {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    pthread_mutex_t turn;
    double turn_at;     /* under turn */
    emu_wq_stats stats; /* under turn */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(emu_wqueue *q, int which)
{
    sqlite3_stmt *st = q->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

emu_wqueue *wq_new(sqlite3 *db)
{
    emu_wqueue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->db = db;
    for (int i = 0; i < S_N; i++)
        if (sqlite3_prepare_v3(db, sqls[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL) !=
            SQLITE_OK) {
            wq_free(q);
            return NULL;
        }
    pthread_mutex_init(&q->turn, NULL);
    return q;
}

void wq_free(emu_wqueue *q)
{
    if (!q) return;
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(q->st[i]);
    pthread_mutex_destroy(&q->turn);
    free(q);
}

int wq_begin(emu_wqueue *q)
{
    double asked = mono_s();
    pthread_mutex_lock(&q->turn);
    q->turn_at = mono_s();
    q->stats.wait_ms += (q->turn_at - asked) * 1000.0;
    if (run(q, S_BEGIN) == 0) return 0;
    pthread_mutex_unlock(&q->turn);
    return -1;
}

int wq_end(emu_wqueue *q, int ok)
{
    sqlite3 *db = q->db;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        if (sqlite3_stmt_busy(st)) sqlite3_reset(st);
    int rc = -1;
    /* Some errors (a full disk, I/O, out of memory) have rolled the transaction back already. */
    if (!sqlite3_get_autocommit(db)) {
        if (ok) {
            double t0 = mono_s();
            rc = run(q, S_COMMIT);
            q->stats.commit_ms += (mono_s() - t0) * 1000.0;
            if (rc == 0) q->stats.commits++;
        }
        if (rc) run(q, S_ROLLBACK);
    }
    q->stats.writes++;
    q->stats.turn_ms += (mono_s() - q->turn_at) * 1000.0;
    pthread_mutex_unlock(&q->turn);
    return ok ? rc : -1;
}

void wq_hold(emu_wqueue *q)
{
    pthread_mutex_lock(&q->turn);
}

void wq_unhold(emu_wqueue *q)
{
    pthread_mutex_unlock(&q->turn);
}

void wq_stats(emu_wqueue *q, emu_wq_stats *s, int reset)
{
    pthread_mutex_lock(&q->turn);
    *s = q->stats;
    if (reset) memset(&q->stats, 0, sizeof q->stats);
    pthread_mutex_unlock(&q->turn);
}
