/* The built-in Dataverse Web API emulator: a libmicrohttpd server over SQLite that answers
 * the Web API on loopback (rows, queries, change tracking, metadata, solutions, OAuth). */
#ifndef DV_EMULATOR_H
#define DV_EMULATOR_H

typedef struct dv_emulator dv_emulator;

typedef struct {
    const char *db;                /* SQLite file, or ":memory:" (NULL means ":memory:") */
    const char *host;              /* IPv4 address to listen on; NULL means 127.0.0.1 */
    unsigned short port;           /* 0 picks a free port */
    const char *token;             /* when set, the only bearer token accepted (and issued) */
    const char *faults;            /* NULL: fault injection off; else a spec (may be "") */
    long max_body;                 /* request body limit in bytes; 0 means 64 MiB */
    double retention;              /* change-tracking retention in seconds; 0 means 7 days */
    double key_delay;              /* seconds until a new alternate key is Active (0: at once);
                                      negative means the default, 0.6 */
    unsigned conn_timeout;         /* idle connection timeout in seconds; 0 means 30 */
    unsigned header_timeout;       /* a connection that has not sent a whole request head within
                                      this many idle seconds is closed; 0 means 5 */
    unsigned max_conns;            /* connections at once; 0: from RLIMIT_NOFILE, at most 4096 */
    unsigned max_conns_per_client; /* from one client address; 0 means max_conns / 4 */
    /* Service protection limits (src/emulator/limits.h); off unless limits is 1. Zero fields
     * take Dataverse's defaults: 6,000 requests, 1,200,000 ms of execution time and 52
     * concurrent requests per 300-second window. */
    int limits;
    long limit_requests;
    long limit_execution_ms;
    int limit_concurrent;
    double limit_window;
    /* Latency model (src/emulator/latency.h): each answer waits request_ms plus per_row_ms
     * per row returned; both 0 means off. */
    double latency_request_ms;
    double latency_per_row_ms;
    int dop_hint; /* the x-ms-dop-hint every answer carries; 0 means 8 */
} dv_emulator_options;

/* Counters since the start (or the last reset). */
typedef struct {
    long requests;        /* Web API requests admitted */
    long throttled;       /* refused by a service protection limit */
    int peak_concurrent;  /* most requests in progress at once */
    int concurrent;       /* in progress now */
    double busy_ms;       /* summed execution time of admitted requests, latency included */
    double lock_wait_ms;  /* the part of busy_ms spent waiting for the store's single lock */
    double latency_ms;    /* the part of busy_ms the latency model added */
    long writes;          /* writes (each handler's transaction; writers take turns) */
    long commits;         /* writes that committed */
    double write_wait_ms; /* summed time writers waited for their turn */
    double write_ms;      /* summed length of the turns */
    double commit_ms;     /* summed time in COMMIT */
} dv_emulator_stats;

/* Starts serving in background threads; returns NULL and writes a message on failure. */
dv_emulator *dv_emulator_start(const dv_emulator_options *opt, char *err, unsigned errlen);

/* The organization URL, e.g. "http://127.0.0.1:40123" (Web API under /api/data/v9.2/). */
const char *dv_emulator_url(const dv_emulator *emu);

/* Stops serving, closes the database and frees everything; NULL is fine. */
void dv_emulator_stop(dv_emulator *emu);

/* Fills s; with reset, the counters start again from zero (the in-progress count stays). */
void dv_emulator_get_stats(dv_emulator *emu, dv_emulator_stats *s, int reset);

/* Test hooks. Each returns 0, or -1 with a message in err. */
/* Adds faults (same syntax as the faults option); refused when faults were not enabled. */
int dv_emulator_add_faults(dv_emulator *emu, const char *spec, char *err, unsigned errlen);
/* Moves the emulator's clock forward (ages tokens, tombstones and key jobs). */
void dv_emulator_advance(dv_emulator *emu, double seconds);
/* Sets the change-tracking retention in seconds. */
void dv_emulator_set_retention(dv_emulator *emu, double seconds);
/* Forces an alternate key's index job to Failed. */
int dv_emulator_fail_key(dv_emulator *emu, const char *entity, const char *key, char *err,
                         unsigned errlen);
/* Holds the writers of a table's rows off, as a long write of the table would, until
 * dv_emulator_release_writes: returns a handle (>= 0), or -1 with a message in err. */
int dv_emulator_hold_writes(dv_emulator *emu, const char *table, char *err, unsigned errlen);
void dv_emulator_release_writes(dv_emulator *emu, int handle);

#endif
