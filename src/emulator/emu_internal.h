/* The emulator object every part shares (the entity cache the store keeps, the database,
 * the fault list, the daemon). Internal to src/emulator/. */
#ifndef DV_EMU_INTERNAL_H
#define DV_EMU_INTERNAL_H
#include <pthread.h>
#include <sqlite3.h>

#include "emulator.h"
#include "entity.h"

typedef struct emu_fault emu_fault;
typedef struct emu_guard emu_guard; /* limits.h */

struct dv_emulator {
    char *db_path, *host, *token;
    unsigned short port;
    long max_body;
    double retention, key_delay;
    unsigned conn_timeout;
    unsigned header_timeout;
    int faults_enabled;

    /* store.c's SQLite files (dbset.h): a file store has a file per table, so writes to
     * different tables proceed at once, and borrowed reader connections, so reads run
     * beside a write (WAL); ":memory:" has one connection, used under mu by every request. */
    struct dbset *dbs;
    int per_thread;          /* a file store */
    int migrate;             /* store_open: the main file holds rows of an earlier build */
    char store_id[40];       /* names the main file; its tables' files carry it */
    pthread_mutex_t mu;      /* ":memory:": guards the store, the entity cache, the clock */
    pthread_rwlock_t schema; /* file store: shared by row requests, exclusive for requests
                                that may change the entity cache (and for the test hooks) */
    emu_entity *ents;
    int n_ents;
    double clock_offset; /* added to the real clock: the test hook that ages tokens */

    pthread_mutex_t fmu; /* guards the fault list */
    emu_fault *faults;
    unsigned long requests;

    emu_guard *guard; /* service protection, latency model, dop hint, counters */

    struct MHD_Daemon *daemon;
    char url[128];
};

#endif
