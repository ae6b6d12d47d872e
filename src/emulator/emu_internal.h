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

    /* store.c's SQLite connections, each with its prepared-statement cache. A file store
     * gives every thread its own (per_thread), so reads run beside a write (WAL); writers
     * queue in wq; ":memory:" has one, used under mu by every request. */
    void *main_conn;
    int per_thread;
    pthread_key_t conn_key;
    pthread_mutex_t conns_mu; /* guards the list of connections */
    struct emu_wqueue *wq;    /* wqueue.h: writers take turns, their writes committed in groups */
    struct store_conn *wconn; /* the one connection writes go through (main_conn: ":memory:") */
    struct emu_checkpointer *ckpt; /* checkpoint.h: the WAL is checkpointed off the request path */
    void *conns;
    pthread_mutex_t mu;      /* ":memory:": guards the store, the entity cache, the clock */
    pthread_rwlock_t schema; /* file store: shared by row requests, exclusive for requests
                                that may change the entity cache (and for the test hooks) */
    emu_entity *ents;
    int n_ents;
    double clock_offset; /* added to the real clock: the test hook that ages tokens */

    pthread_mutex_t fmu; /* guards the fault list */
    emu_fault *faults;
    unsigned long requests;
    int tx_hold; /* a $batch change set holds the transaction: handlers' begin/commit nest */

    emu_guard *guard; /* service protection, latency model, dop hint, counters */

    struct MHD_Daemon *daemon;
    char url[128];
};

#endif
