/* The store's SQLite files and who may write them.
 *
 * A file store is a main file (the organization's metadata) and a file per table (its rows),
 * because SQLite lets one writer at a time into a file: with every row in one file, a write to
 * one table waited for a write to any other. Each file has one writer connection, which
 * writers take turns on (wqueue.h), and a pool of reader connections that requests borrow and
 * give back when they end, so reads run beside the writes (WAL). ":memory:" is one connection
 * that holds everything (single), which callers use one at a time.
 *
 * A thread writes in one of two modes. One file (dbs_begin with its slot): the turn of that
 * file only, so writers of different tables proceed at once; a statement that would write any
 * other file is refused as a bug. Every file (slot -1): the writers of all files are held off
 * (a lock writers share and this mode takes alone) and each file's turn is taken the first
 * time a statement writes it; the files then commit one after another, so a crash between two
 * commits can leave one committed without the other (a rollback undoes them all).
 *
 * The version counter of the whole organization lives here, in memory, shared by the files:
 * a writer takes versions while it holds its file's turn, so each file's versions grow in the
 * order its transactions commit. The store records the highest in each file. */
#ifndef DV_EMU_DBSET_H
#define DV_EMU_DBSET_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "wqueue.h"

typedef struct dbset dbset;

typedef struct {
    const char *path; /* the main file, or ":memory:" */
    /* Once per file before any other use, on its writer connection, with no transaction open:
     * creates the file's schema (slot 0 is the main file, name NULL). 0, or -1 with err. */
    int (*init)(void *ud, dbset *d, sqlite3 *db, int slot, const char *name, char *err,
                size_t errlen);
    /* For every connection opened (to register SQL functions). */
    void (*on_open)(void *ud, sqlite3 *db);
    void *ud;
} dbs_opts;

dbset *dbs_open(const dbs_opts *o, char *err, size_t errlen);
/* Every thread that used it must be done with it. */
void dbs_close(dbset *d);

/* The slot of a table's file, opening it (and running init) the first time; always 0 when
 * single. -1 with a message in err. Table names are lowercase identifiers. */
int dbs_file(dbset *d, const char *name, char *err, size_t errlen);

/* A prepared statement on the connection the calling thread reaches slot's file through now:
 * the writer connection while it holds the file's turn, a borrowed reader otherwise. Reset,
 * bindings cleared, cached per connection. NULL on error (written to stderr). */
sqlite3_stmt *dbs_stmt(dbset *d, int slot, const char *sql);
/* That connection itself (for sqlite3_errmsg, sqlite3_changes). */
sqlite3 *dbs_db(dbset *d, int slot);

/* Opens the calling thread's write transaction: on slot's file, or (slot -1) on every file.
 * 0, or -1 (none open: one is open already, or the file's BEGIN failed). */
int dbs_begin(dbset *d, int slot);
/* 1 while the calling thread has one open. */
int dbs_writing(dbset *d);
/* Ends it: commits every file it wrote (commit 1; 0 once all committed, -1 when any failed
 * and the rest were rolled back) or rolls them back (-1). */
int dbs_end(dbset *d, int commit);
/* A change set: while held, callers' begin and end join the open transaction. */
void dbs_set_held(dbset *d, int held);
int dbs_held(dbset *d);

/* The reads of the calling thread's request see one state of each file it reads. */
void dbs_snapshot(dbset *d);
/* After each request: ends what is open (rolled back), resets every statement and gives the
 * borrowed connections back. */
void dbs_end_request(dbset *d);

/* The organization's version counter: takes n versions and returns the first. */
int64_t dbs_take_versions(dbset *d, int n);
/* Raises the counter to at least v. */
void dbs_seed_versions(dbset *d, int64_t v);
/* The last version taken. */
int64_t dbs_last_version(dbset *d);
/* Versions the calling thread's transaction took ahead (first..last, none when first >
 * last), and the slot they were recorded in; they die with the transaction. */
typedef struct {
    int64_t next, last;
    int slot;
} dbs_reserve;
dbs_reserve *dbs_reserved(dbset *d);

/* The writer queues' counters, summed over the files. */
void dbs_write_stats(dbset *d, emu_wq_stats *s, int reset);
/* Holds slot's writers off (no transaction open) until dbs_release_writers: test hooks. */
void dbs_hold_writers(dbset *d, int slot);
void dbs_release_writers(dbset *d, int slot);

#endif
