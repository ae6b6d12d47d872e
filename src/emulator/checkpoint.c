#include "checkpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct emu_checkpointer {
    emu_ckpt_opts o;
    sqlite3 *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int due, stop;
    int copied; /* WAL frames copied by the last run; under mu */
    long runs;
};

/* SQLite calls this after each commit of an attached connection, on the committing thread:
 * it only records the size and wakes the thread. */
static int on_commit(void *ud, sqlite3 *db, const char *name, int pages)
{
    emu_checkpointer *k = ud;
    (void)db, (void)name;
    if (pages < k->o.pages) return SQLITE_OK;
    pthread_mutex_lock(&k->mu);
    if (pages < k->copied) k->copied = 0; /* the WAL started over */
    /* Due once `pages` more frames were appended since the last copy, not after every commit
     * while the WAL is long: each run costs two fsyncs. */
    if (!k->due && pages - k->copied >= k->o.pages) {
        k->due = 1;
        pthread_cond_signal(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return SQLITE_OK;
}

static void passive(emu_checkpointer *k, int *log, int *done)
{
    sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, log, done);
}

static void *run(void *ud)
{
    emu_checkpointer *k = ud;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->due && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop) break;
        k->due = 0;
        pthread_mutex_unlock(&k->mu);
        /* A connection finds out that the database is in WAL mode only when it reads it;
         * until then a checkpoint on it does nothing at all. */
        sqlite3_exec(k->db, "PRAGMA schema_version", NULL, NULL, NULL);
        /* Copy while the writers go on, until little is left ... */
        int log = 0, done = 0;
        for (int i = 0; i < 4; i++) {
            passive(k, &log, &done);
            if (log - done <= k->o.pages / 4) break;
        }
        /* ... and once the WAL is long, the rest with the writers held: writers that never
         * pause keep a checkpoint from ever reaching the WAL's end, and only a WAL copied to
         * its end starts over (the next writer rewinds it) instead of growing. Holding them
         * costs every writer a wait (the copy and two fsyncs), so it is not done each time. */
        if (k->o.hold_writers && log >= k->o.hard_pages) {
            k->o.hold_writers(k->o.ud);
            passive(k, &log, &done);
            k->o.release_writers(k->o.ud);
        }
        pthread_mutex_lock(&k->mu);
        k->copied = done;
        k->runs++;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

emu_checkpointer *ckpt_start(const char *path, const emu_ckpt_opts *o, char *err, size_t errlen)
{
    emu_checkpointer *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k->o = *o;
    if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s for checkpoints: %s", path,
                 k->db ? sqlite3_errmsg(k->db) : "out of memory");
        sqlite3_close(k->db);
        free(k);
        return NULL;
    }
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (pthread_create(&k->thread, NULL, run, k)) {
        snprintf(err, errlen, "cannot start the checkpoint thread");
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        sqlite3_close(k->db);
        free(k);
        return NULL;
    }
    return k;
}

void ckpt_attach(emu_checkpointer *k, sqlite3 *db)
{
    if (k) sqlite3_wal_hook(db, on_commit, k);
}

long ckpt_count(emu_checkpointer *k)
{
    if (!k) return 0;
    pthread_mutex_lock(&k->mu);
    long n = k->runs;
    pthread_mutex_unlock(&k->mu);
    return n;
}

void ckpt_stop(emu_checkpointer *k)
{
    if (!k) return;
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    sqlite3_close(k->db);
    free(k);
}
