#include "dbset.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"

#define STMT_CACHE 128
#define MAX_FILES 16384

enum { M_NONE, M_ONE, M_ALL };

typedef struct dbconn {
    sqlite3 *db;
    char *sql[STMT_CACHE];
    sqlite3_stmt *st[STMT_CACHE];
    int n;
    struct dbconn *next_idle, *next_all;
} dbconn;

typedef struct {
    char *name, *path;
    dbconn *w; /* the writer connection (single: the only one) */
    emu_wqueue *wq;
    emu_ckpt_file *ck;
    pthread_mutex_t mu; /* guards idle and all */
    dbconn *idle, *all;
} dbfile;

/* What a thread has of the set: the connections it borrowed, the turns it holds. */
typedef struct dbthread {
    int mode, held, snapshot;
    int cap;     /* entries of rd and begun */
    dbconn **rd; /* borrowed reader per slot */
    unsigned char *begun;
    dbs_reserve resv;
    struct dbset *d;
    struct dbthread *next;
} dbthread;

struct dbset {
    dbs_opts o;
    int single;
    int lock_fd; /* the main file, flock'ed: one emulator per store */
    emu_checkpointer *ck;
    pthread_mutex_t mu; /* guards n (files only append), names, threads */
    dbfile *files[MAX_FILES];
    int n;
    pthread_rwlock_t writers; /* shared by one-file writers, taken alone by every-file ones */
    pthread_key_t key;
    dbthread *threads;
    pthread_mutex_t vmu;
    int64_t version;
};

/* ---- connections ---- */

static void conn_close(dbconn *c)
{
    for (int i = 0; i < c->n; i++) {
        sqlite3_finalize(c->st[i]);
        free(c->sql[i]);
    }
    sqlite3_close(c->db);
    free(c);
}

static dbconn *conn_open(dbset *d, dbfile *f, char *err, size_t errlen)
{
    dbconn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(f->path, &c->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", f->path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    /* Writers in this process queue in wqueue.c; the busy timeout covers what is left (a
     * checkpoint, another process on the same file) rather than failing at once. */
    sqlite3_busy_timeout(c->db, 30000);
    if (!d->single) {
        sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
        /* Rows keyed by random GUIDs land on random pages of the primary key's index: with
         * SQLite's default 2 MB cache a table of 100,000 rows reads a page back for most
         * writes. A cap, not an allocation: a connection grows to it only as it reads. */
        sqlite3_exec(c->db, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
    }
    ckpt_attach(f->ck, c->db);
    if (d->o.on_open) d->o.on_open(d->o.ud, c->db);
    pthread_mutex_lock(&f->mu);
    c->next_all = f->all;
    f->all = c;
    pthread_mutex_unlock(&f->mu);
    return c;
}

static sqlite3_stmt *cached(dbconn *c, const char *sql)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->sql[i], sql) == 0) {
            sqlite3_reset(c->st[i]);
            sqlite3_clear_bindings(c->st[i]);
            return c->st[i];
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "dvlua emulator: SQL error: %s\n", sqlite3_errmsg(c->db));
        return NULL;
    }
    if (c->n == STMT_CACHE) { /* full: drop the oldest entry */
        sqlite3_finalize(c->st[0]);
        free(c->sql[0]);
        memmove(c->sql, c->sql + 1, sizeof(c->sql[0]) * (STMT_CACHE - 1));
        memmove(c->st, c->st + 1, sizeof(c->st[0]) * (STMT_CACHE - 1));
        c->n--;
    }
    c->sql[c->n] = strdup(sql);
    c->st[c->n++] = st;
    return st;
}

static void reset_busy(sqlite3 *db)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        if (sqlite3_stmt_busy(st)) sqlite3_reset(st);
}

/* ---- threads ---- */

static void thread_end(void *v);

static dbthread *thread(dbset *d)
{
    dbthread *t = pthread_getspecific(d->key);
    if (t) return t;
    t = calloc(1, sizeof *t);
    if (!t) abort();
    t->resv.next = 1; /* none reserved */
    t->d = d;
    pthread_mutex_lock(&d->mu);
    t->next = d->threads;
    d->threads = t;
    pthread_mutex_unlock(&d->mu);
    pthread_setspecific(d->key, t);
    return t;
}

static void grow(dbthread *t, int slot)
{
    if (slot < t->cap) return;
    int cap = t->cap ? t->cap : 8;
    while (cap <= slot)
        cap *= 2;
    dbconn **rd = realloc(t->rd, sizeof *rd * (size_t)cap);
    unsigned char *b = realloc(t->begun, (size_t)cap);
    if (!rd || !b) abort();
    memset(rd + t->cap, 0, sizeof *rd * (size_t)(cap - t->cap));
    memset(b + t->cap, 0, (size_t)(cap - t->cap));
    t->rd = rd;
    t->begun = b;
    t->cap = cap;
}

static dbfile *file_at(dbset *d, int slot)
{
    return slot >= 0 && slot < MAX_FILES ? d->files[slot] : NULL;
}

/* The reader of slot the thread borrowed, borrowing one the first time. */
static dbconn *reader(dbset *d, dbthread *t, int slot)
{
    dbfile *f = file_at(d, slot);
    if (!f) return NULL;
    if (d->single) return f->w;
    grow(t, slot);
    if (t->rd[slot]) return t->rd[slot];
    pthread_mutex_lock(&f->mu);
    dbconn *c = f->idle;
    if (c) f->idle = c->next_idle;
    pthread_mutex_unlock(&f->mu);
    if (!c) {
        char err[256];
        if (!(c = conn_open(d, f, err, sizeof err))) {
            fprintf(stderr, "dvlua emulator: %s\n", err);
            return NULL;
        }
    }
    t->rd[slot] = c;
    if (t->snapshot) sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
    return c;
}

static void give_back(dbset *d, dbthread *t)
{
    for (int i = 0; i < t->cap; i++) {
        dbconn *c = t->rd[i];
        if (!c) continue;
        t->rd[i] = NULL;
        /* A write here bypassed the writers' queue and held SQLite's write lock until now,
         * so every writer of the file waited on it: a bug worth a line. */
        if (sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_WRITE)
            fprintf(stderr, "dvlua emulator: bug: a request wrote outside a write transaction\n");
        if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        /* A statement left stepped holds its read transaction open, and with it an old
         * snapshot: the next borrower would not see what others committed since. */
        reset_busy(c->db);
        dbfile *f = d->files[i];
        pthread_mutex_lock(&f->mu);
        c->next_idle = f->idle;
        f->idle = c;
        pthread_mutex_unlock(&f->mu);
    }
    t->snapshot = 0;
}

static void thread_free(dbthread *t)
{
    free(t->rd);
    free(t->begun);
    free(t);
}

/* A thread that ends gives back what it still has (its last request did already). */
static void thread_end(void *v)
{
    dbthread *t = v;
    dbset *d = t->d;
    give_back(d, t);
    pthread_mutex_lock(&d->mu);
    for (dbthread **p = &d->threads; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    pthread_mutex_unlock(&d->mu);
    thread_free(t);
}

/* ---- files ---- */

static void hold_file(void *ud)
{
    wq_hold(((dbfile *)ud)->wq);
}

static void release_file(void *ud)
{
    wq_unhold(((dbfile *)ud)->wq);
}

static void file_free(dbfile *f)
{
    wq_free(f->wq); /* before the connection its statements belong to */
    while (f->all) {
        dbconn *c = f->all;
        f->all = c->next_all;
        conn_close(c);
    }
    pthread_mutex_destroy(&f->mu);
    free(f->name);
    free(f->path);
    free(f);
}

/* A new file, opened and initialised; published as slot d->n by the caller. */
static dbfile *file_new(dbset *d, const char *name, const char *path, int slot, char *err,
                        size_t errlen)
{
    dbfile *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->name = name ? strdup(name) : NULL;
    f->path = strdup(path);
    if (d->ck && !(f->ck = ckpt_add(d->ck, path, hold_file, release_file, f, err, errlen))) {
        file_free(f);
        return NULL;
    }
    if (!(f->w = conn_open(d, f, err, errlen))) {
        file_free(f);
        return NULL;
    }
    if (!(f->wq = wq_new(f->w->db))) {
        snprintf(err, errlen, "cannot prepare the writers' queue of %s: %s", path,
                 sqlite3_errmsg(f->w->db));
        file_free(f);
        return NULL;
    }
    if (d->o.init && d->o.init(d->o.ud, d, f->w->db, slot, name, err, errlen)) {
        file_free(f);
        return NULL;
    }
    return f;
}

dbset *dbs_open(const dbs_opts *o, char *err, size_t errlen)
{
    dbset *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->o = *o;
    d->single = strcmp(o->path, ":memory:") == 0;
    d->lock_fd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->vmu, NULL);
    /* Every-file writers (imports, change sets) would wait forever behind a steady stream of
     * one-file writers under glibc's default, which lets readers of the lock in first. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&d->writers, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (pthread_key_create(&d->key, thread_end)) {
        snprintf(err, errlen, "cannot create a thread key");
        free(d);
        return NULL;
    }
    /* Two emulators on one store would each keep a version counter and a table cache of
     * their own, and hand out the same versions. (flock, not SQLite's fcntl locks, which it
     * does not see.) */
    if (!d->single) {
        d->lock_fd = open(o->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (d->lock_fd < 0) {
            snprintf(err, errlen, "cannot open database %s: %s", o->path, strerror(errno));
            dbs_close(d);
            return NULL;
        }
        if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            snprintf(err, errlen,
                     "the store %s is in use by another emulator (one emulator serves a store: "
                     "point clients at its URL)",
                     o->path);
            dbs_close(d);
            return NULL;
        }
    }
    /* Each table's file takes descriptors (its writer, its checkpointer, the readers
     * borrowed at once, two each with the WAL): an organization of a few hundred tables
     * would pass the usual soft limit of 1024, which the hard limit allows to raise. */
    struct rlimit rl;
    if (!d->single && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* SQLite's own default to start; the WAL peaks at about 50 MB of 4 KB pages. */
    emu_ckpt_opts ko = {1000, 10000};
    if (!d->single && !(d->ck = ckpt_start(&ko, err, errlen))) {
        dbs_close(d);
        return NULL;
    }
    if (!(d->files[0] = file_new(d, NULL, o->path, 0, err, errlen))) {
        dbs_close(d);
        return NULL;
    }
    d->n = 1;
    return d;
}

void dbs_close(dbset *d)
{
    if (!d) return;
    ckpt_stop(d->ck); /* no request runs any more: nothing commits */
    pthread_key_delete(d->key);
    for (int i = 0; i < d->n; i++)
        file_free(d->files[i]);
    while (d->threads) {
        dbthread *t = d->threads;
        d->threads = t->next;
        thread_free(t);
    }
    if (d->lock_fd >= 0) close(d->lock_fd);
    pthread_rwlock_destroy(&d->writers);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->vmu);
    free(d);
}

int dbs_file(dbset *d, const char *name, char *err, size_t errlen)
{
    if (d->single) return 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 1; i < d->n; i++)
        if (strcmp(d->files[i]->name, name) == 0) {
            pthread_mutex_unlock(&d->mu);
            return i;
        }
    int slot = -1;
    if (d->n == MAX_FILES) {
        snprintf(err, errlen, "more than %d tables", MAX_FILES - 1);
        goto out;
    }
    /* Beside the main file: "<main>.tables/<name>.sqlite". */
    size_t n = strlen(d->files[0]->path) + strlen(name) + 16;
    char *path = malloc(n);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(path, n, "%s.tables", d->files[0]->path);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the directory %s: %s", path, strerror(errno));
        free(path);
        goto out;
    }
    snprintf(path, n, "%s.tables/%s.sqlite", d->files[0]->path, name);
    dbfile *f = file_new(d, name, path, d->n, err, errlen);
    free(path);
    if (f) {
        slot = d->n;
        d->files[slot] = f;
        d->n++;
    }
out:
    pthread_mutex_unlock(&d->mu);
    return slot;
}

/* ---- transactions ---- */

/* Resets the statements left stepped on the thread's borrowed readers outside a read
 * snapshot (dbs_snapshot), which would otherwise keep their connection's view from moving on. */
static void reset_readers(dbset *d, dbthread *t)
{
    for (int i = 0; i < t->cap && !d->single; i++)
        if (t->rd[i] && sqlite3_get_autocommit(t->rd[i]->db)) reset_busy(t->rd[i]->db);
}

static int begin_file(dbset *d, dbthread *t, int slot)
{
    dbfile *f = file_at(d, slot);
    if (!f) return -1;
    grow(t, slot);
    if (wq_begin(f->wq)) return -1;
    t->begun[slot] = 1;
    return 0;
}

sqlite3_stmt *dbs_stmt(dbset *d, int slot, const char *sql)
{
    dbthread *t = thread(d);
    dbfile *f = file_at(d, slot);
    if (!f) return NULL;
    if (slot < t->cap && t->begun[slot]) return cached(f->w, sql);
    dbconn *c = reader(d, t, slot);
    if (!c) return NULL;
    sqlite3_stmt *st = cached(c, sql);
    if (!st || d->single || t->mode == M_NONE || sqlite3_stmt_readonly(st)) return st;
    if (t->mode == M_ALL) return begin_file(d, t, slot) ? NULL : cached(f->w, sql);
    fprintf(stderr, "dvlua emulator: bug: a write to %s outside its table's transaction: %.60s\n",
            f->path, sql);
    return NULL;
}

sqlite3 *dbs_db(dbset *d, int slot)
{
    dbthread *t = thread(d);
    dbfile *f = file_at(d, slot);
    if (!f) return NULL;
    if (slot < t->cap && t->begun[slot]) return f->w->db;
    dbconn *c = reader(d, t, slot);
    return c ? c->db : f->w->db;
}

int dbs_begin(dbset *d, int slot)
{
    dbthread *t = thread(d);
    if (t->mode != M_NONE) return -1; /* SQLite would refuse the nested BEGIN too */
    /* A statement of the thread's readers left stepped keeps an old snapshot open: the reads
     * after the commit would not see what this transaction wrote. At the start and the end,
     * never midway: once the transaction is open, a caller may be walking a reader's statement
     * while it writes (an every-file transaction takes a file's turn at its first write). */
    reset_readers(d, t);
    if (slot < 0) {
        pthread_rwlock_wrlock(&d->writers);
        t->mode = M_ALL;
        /* single: one file, begun at once like the one-file mode */
        if (!d->single) return 0;
        slot = 0;
    } else {
        pthread_rwlock_rdlock(&d->writers);
        t->mode = M_ONE;
        if (d->single) slot = 0;
    }
    if (begin_file(d, t, slot) == 0) return 0;
    t->mode = M_NONE;
    pthread_rwlock_unlock(&d->writers);
    return -1;
}

int dbs_writing(dbset *d)
{
    return thread(d)->mode != M_NONE;
}

static int end_file(dbset *d, dbthread *t, int slot, int ok)
{
    t->begun[slot] = 0;
    return wq_end(d->files[slot]->wq, ok);
}

int dbs_end(dbset *d, int commit)
{
    dbthread *t = thread(d);
    if (t->mode == M_NONE) return -1;
    int rc = commit ? 0 : -1;
    /* Rows before the metadata that describes them. */
    for (int i = 1; i < t->cap; i++)
        if (t->begun[i] && end_file(d, t, i, rc == 0)) rc = -1;
    if (t->cap > 0 && t->begun[0] && end_file(d, t, 0, rc == 0)) rc = -1;
    t->mode = M_NONE;
    t->resv.next = 1;
    t->resv.last = 0;
    pthread_rwlock_unlock(&d->writers);
    /* Reads made through the readers during the transaction (of files it had not written
     * yet) may have left a statement stepped, and with it a snapshot from before the commit:
     * the request's reads after it must see what it wrote. */
    reset_readers(d, t);
    return rc;
}

void dbs_set_held(dbset *d, int held)
{
    thread(d)->held = held;
}

int dbs_held(dbset *d)
{
    return thread(d)->held;
}

void dbs_snapshot(dbset *d)
{
    dbthread *t = thread(d);
    t->snapshot = 1;
    /* readers borrowed before now join it too */
    for (int i = 0; i < t->cap; i++)
        if (t->rd[i] && !d->single && sqlite3_get_autocommit(t->rd[i]->db))
            sqlite3_exec(t->rd[i]->db, "BEGIN", NULL, NULL, NULL);
}

void dbs_end_request(dbset *d)
{
    dbthread *t = thread(d);
    t->held = 0; /* a change set left open midway */
    if (t->mode != M_NONE) dbs_end(d, 0);
    if (d->single) {
        sqlite3 *db = d->files[0]->w->db;
        if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        reset_busy(db);
        t->snapshot = 0;
        return;
    }
    give_back(d, t);
}

/* ---- versions ---- */

int64_t dbs_take_versions(dbset *d, int n)
{
    pthread_mutex_lock(&d->vmu);
    int64_t first = d->version + 1;
    d->version += n;
    pthread_mutex_unlock(&d->vmu);
    return first;
}

void dbs_seed_versions(dbset *d, int64_t v)
{
    pthread_mutex_lock(&d->vmu);
    if (v > d->version) d->version = v;
    pthread_mutex_unlock(&d->vmu);
}

int64_t dbs_last_version(dbset *d)
{
    pthread_mutex_lock(&d->vmu);
    int64_t v = d->version;
    pthread_mutex_unlock(&d->vmu);
    return v;
}

dbs_reserve *dbs_reserved(dbset *d)
{
    return &thread(d)->resv;
}

/* ---- counters and hooks ---- */

void dbs_write_stats(dbset *d, emu_wq_stats *s, int reset)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&d->mu);
    int n = d->n;
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < n; i++) {
        emu_wq_stats one;
        wq_stats(d->files[i]->wq, &one, reset);
        s->writes += one.writes;
        s->commits += one.commits;
        s->wait_ms += one.wait_ms;
        s->turn_ms += one.turn_ms;
        s->commit_ms += one.commit_ms;
    }
}

void dbs_hold_writers(dbset *d, int slot)
{
    dbfile *f = file_at(d, slot);
    if (f) wq_hold(f->wq);
}

void dbs_release_writers(dbset *d, int slot)
{
    dbfile *f = file_at(d, slot);
    if (f) wq_unhold(f->wq);
}
