#include "wqueue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A group larger than this commits even with writers waiting: the first writer's answer
 * waits for every later one's turn. */
#define GROUP_MAX 32

/* A writer waiting for its group's commit (on its own stack). */
typedef struct member {
    pthread_cond_t cv;
    int done, rc;
    struct member *next;
} member;

enum { S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO, S_N };
static const char *const sqls[S_N] = {"BEGIN IMMEDIATE", "COMMIT",    "ROLLBACK",
                                      "SAVEPOINT w",     "RELEASE w", "ROLLBACK TO w"};

struct emu_wqueue {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
    pthread_mutex_t turn;
    int waiting; /* threads asking for the turn (atomic) */
    /* Under turn: */
    int open;      /* the group's transaction is open */
    int failed;    /* SQLite rolled it back under an error: the group's writes are gone */
    int savepoint; /* this turn's part is in a savepoint (the transaction has others' parts) */
    int n_members;
    member *members;
    double turn_at;
    emu_wq_stats stats;
    pthread_mutex_t done_mu; /* members' done and rc */
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
    pthread_mutex_init(&q->done_mu, NULL);
    return q;
}

void wq_free(emu_wqueue *q)
{
    if (!q) return;
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(q->st[i]);
    pthread_mutex_destroy(&q->turn);
    pthread_mutex_destroy(&q->done_mu);
    free(q);
}

/* Commits (or, when it cannot, rolls back) the open group and tells its members; under turn.
 * Returns the group's result. */
static int finish_group(emu_wqueue *q)
{
    int rc = -1;
    if (q->open && !sqlite3_get_autocommit(q->db)) {
        double t0 = mono_s();
        rc = run(q, S_COMMIT);
        q->stats.commit_ms += (mono_s() - t0) * 1000.0;
        if (rc)
            run(q, S_ROLLBACK);
        else
            q->stats.commits++;
    }
    if (q->failed) rc = -1;
    q->open = q->failed = 0;
    pthread_mutex_lock(&q->done_mu);
    for (member *m = q->members; m; m = m->next) {
        m->rc = rc;
        m->done = 1;
        pthread_cond_signal(&m->cv);
    }
    pthread_mutex_unlock(&q->done_mu);
    q->members = NULL;
    q->n_members = 0;
    return rc;
}

int wq_begin(emu_wqueue *q)
{
    double asked = mono_s();
    __atomic_add_fetch(&q->waiting, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&q->turn);
    __atomic_sub_fetch(&q->waiting, 1, __ATOMIC_SEQ_CST);
    q->turn_at = mono_s();
    q->stats.wait_ms += (q->turn_at - asked) * 1000.0;
    /* A turn that opens the transaction has it to itself so far: a rollback of the whole is a
     * rollback of its part, and no savepoint (a statement journal) is needed. */
    q->savepoint = q->open;
    if (!q->open) {
        if (run(q, S_BEGIN)) {
            pthread_mutex_unlock(&q->turn);
            return -1;
        }
        q->open = 1;
    } else if (run(q, S_SAVEPOINT)) {
        q->savepoint = 0;
        wq_end(q, 0);
        return -1;
    }
    return 0;
}

int wq_end(emu_wqueue *q, int ok)
{
    sqlite3 *db = q->db;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        if (sqlite3_stmt_busy(st)) sqlite3_reset(st);
    /* Some errors (a full disk, I/O, out of memory) make SQLite roll the whole transaction
     * back: the parts of the writers before this one went with it. */
    if (q->open && sqlite3_get_autocommit(db)) q->failed = 1;
    if (q->open && !q->failed && q->savepoint) {
        if (ok && run(q, S_RELEASE)) ok = 0;
        if (!ok) {
            run(q, S_ROLLBACK_TO);
            run(q, S_RELEASE);
            if (sqlite3_get_autocommit(db)) q->failed = 1;
        }
    } else if (q->open && !q->failed && !ok) {
        run(q, S_ROLLBACK); /* the transaction held this turn's part alone */
        q->open = 0;
    }
    q->stats.writes++;
    int others = __atomic_load_n(&q->waiting, __ATOMIC_SEQ_CST) > 0;
    if (q->open && !q->failed && others && q->n_members < GROUP_MAX) {
        q->stats.turn_ms += (mono_s() - q->turn_at) * 1000.0;
        if (!ok) { /* nothing of this writer's to wait for; the next one carries the group */
            pthread_mutex_unlock(&q->turn);
            return -1;
        }
        member m;
        memset(&m, 0, sizeof m);
        pthread_cond_init(&m.cv, NULL);
        m.next = q->members;
        q->members = &m;
        q->n_members++;
        pthread_mutex_unlock(&q->turn);
        pthread_mutex_lock(&q->done_mu);
        while (!m.done)
            pthread_cond_wait(&m.cv, &q->done_mu);
        pthread_mutex_unlock(&q->done_mu);
        pthread_cond_destroy(&m.cv);
        return m.rc;
    }
    int rc = finish_group(q);
    q->stats.turn_ms += (mono_s() - q->turn_at) * 1000.0;
    pthread_mutex_unlock(&q->turn);
    return ok ? rc : -1;
}

void wq_hold(emu_wqueue *q)
{
    pthread_mutex_lock(&q->turn);
    if (q->open) finish_group(q);
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
