#include "checkpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct emu_ckpt_file {
    emu_checkpointer *k;
    sqlite3 *db; /* the thread's own connection */
    void (*hold)(void *ud);
    void (*release)(void *ud);
    void *ud;
    int due;    /* under k->mu */
    int copied; /* WAL frames copied by the last run; under k->mu */
    struct emu_ckpt_file *next;
};

struct emu_checkpointer {
    emu_ckpt_opts o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    emu_ckpt_file *files; /* under mu; only ever grows until ckpt_stop */
    int due, stop;
    long runs;
};

/* SQLite calls this after each commit of an attached connection, on the committing thread:
 * it only records the size and wakes the thread. */
static int on_commit(void *ud, sqlite3 *db, const char *name, int pages)
{
    emu_ckpt_file *f = ud;
    emu_checkpointer *k = f->k;
    (void)db, (void)name;
    if (pages < k->o.pages) return SQLITE_OK;
    pthread_mutex_lock(&k->mu);
    if (pages < f->copied) f->copied = 0; /* the WAL started over */
    /* Due once `pages` more frames were appended since the last copy, not after every commit
     * while the WAL is long: each run costs two fsyncs. */
    if (!f->due && pages - f->copied >= k->o.pages) {
        f->due = 1;
        k->due = 1;
        pthread_cond_signal(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return SQLITE_OK;
}

static void passive(emu_ckpt_file *f, int *log, int *done)
{
    sqlite3_wal_checkpoint_v2(f->db, NULL, SQLITE_CHECKPOINT_PASSIVE, log, done);
}

/* One file's run; returns the frames copied. */
static int checkpoint(emu_checkpointer *k, emu_ckpt_file *f)
{
    /* A connection finds out that the database is in WAL mode only when it reads it; until
     * then a checkpoint on it does nothing at all. */
    sqlite3_exec(f->db, "PRAGMA schema_version", NULL, NULL, NULL);
    /* Copy while the writers go on, until little is left ... */
    int log = 0, done = 0;
    for (int i = 0; i < 4; i++) {
        passive(f, &log, &done);
        if (log - done <= k->o.pages / 4) break;
    }
    /* ... and once the WAL is long, the rest with the writers held: writers that never pause
     * keep a checkpoint from ever reaching the WAL's end, and only a WAL copied to its end
     * starts over (the next writer rewinds it) instead of growing. Holding them costs every
     * writer of the file a wait (the copy and two fsyncs), so it is not done each time. */
    if (f->hold && log >= k->o.hard_pages) {
        f->hold(f->ud);
        passive(f, &log, &done);
        f->release(f->ud);
    }
    return done;
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
        for (emu_ckpt_file *f = k->files; f; f = f->next) {
            if (!f->due) continue;
            f->due = 0;
            pthread_mutex_unlock(&k->mu);
            int done = checkpoint(k, f);
            pthread_mutex_lock(&k->mu);
            f->copied = done;
            k->runs++;
        }
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

emu_checkpointer *ckpt_start(const emu_ckpt_opts *o, char *err, size_t errlen)
{
    emu_checkpointer *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k->o = *o;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (pthread_create(&k->thread, NULL, run, k)) {
        snprintf(err, errlen, "cannot start the checkpoint thread");
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        free(k);
        return NULL;
    }
    return k;
}

emu_ckpt_file *ckpt_add(emu_checkpointer *k, const char *path, void (*hold)(void *ud),
                        void (*release)(void *ud), void *ud, char *err, size_t errlen)
{
    if (!k) return NULL;
    emu_ckpt_file *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s for checkpoints: %s", path,
                 f->db ? sqlite3_errmsg(f->db) : "out of memory");
        sqlite3_close(f->db);
        free(f);
        return NULL;
    }
    f->k = k;
    f->hold = hold;
    f->release = release;
    f->ud = ud;
    pthread_mutex_lock(&k->mu);
    f->next = k->files;
    k->files = f;
    pthread_mutex_unlock(&k->mu);
    return f;
}

void ckpt_attach(emu_ckpt_file *f, sqlite3 *db)
{
    if (f) sqlite3_wal_hook(db, on_commit, f);
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
    while (k->files) {
        emu_ckpt_file *f = k->files;
        k->files = f->next;
        sqlite3_close(f->db);
        free(f);
    }
    free(k);
}
