/* What the emulator's parts share: the emulator object, the per-request context handlers
 * fill in, and the entity cache the store keeps. Internal to src/emulator/. */
#ifndef DV_EMU_INTERNAL_H
#define DV_EMU_INTERNAL_H
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "emulator.h"
#include "sbuf.h"
#include "solution_def.h"

/* The organization's fixed identities: WhoAmI answers these on every start. */
#define EMU_USER_ID "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d01"
#define EMU_BU_ID "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d02"
#define EMU_ORG_ID "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d03"

/* A table as served: its definition plus the identity the metadata answers carry. */
typedef struct {
    dv_entity_def def;
    char metadata_id[37];
    char solution_id[37]; /* "" for the built-in tables */
} emu_entity;

typedef struct emu_fault emu_fault;

struct dv_emulator {
    char *db_path, *host, *token;
    unsigned short port;
    long max_body;
    double retention, key_delay;
    unsigned conn_timeout;
    int faults_enabled;

    sqlite3 *db;
    void *stmts;        /* store.c's prepared-statement cache */
    pthread_mutex_t mu; /* guards db, the cache and the clock */
    emu_entity *ents;
    int n_ents;
    double clock_offset; /* added to the real clock: the test hook that ages tokens */

    pthread_mutex_t fmu; /* guards the fault list */
    emu_fault *faults;
    unsigned long requests;
    int tx_hold; /* a $batch change set holds the transaction: handlers' begin/commit nest */

    struct MHD_Daemon *daemon;
    char url[128];
};

#define EMU_MAX_HEADERS 8

/* A header or query argument of a $batch sub-request, which has no connection of its own. */
typedef struct {
    const char *name, *value;
} emu_kv;

/* One request as the handlers see it, and the answer they build. */
typedef struct {
    dv_emulator *emu;
    struct MHD_Connection *conn;
    const char *method;
    char base[256]; /* "http://host:port/api/data/v9.2/" as the client addressed us */
    const char *body;
    size_t body_len;
    int status;
    sbuf out;
    const char *content_type;
    char *hdr_name[EMU_MAX_HEADERS];
    char *hdr_val[EMU_MAX_HEADERS];
    int n_hdr;
    /* Set for a $batch sub-request (conn is NULL): its own headers and decoded arguments. */
    const emu_kv *sub_hdrs, *sub_args;
    int n_sub_hdrs, n_sub_args;
} emu_req;

/* server.c */
double emu_now(dv_emulator *emu);
const char *emu_arg(emu_req *r, const char *name);
const char *emu_header(emu_req *r, const char *name);
void emu_add_header(emu_req *r, const char *name, const char *value);
/* Sets a Dataverse-shaped error answer; returns -1. */
int emu_error(emu_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Starts a JSON answer with the given status. */
void emu_json(emu_req *r, int status);
/* Appends every query argument except those named in skip (NULL-terminated) as k=v&... */
void emu_args_except(emu_req *r, sbuf *b, const char *const *skip);

/* The property name a column is read and filtered by (`_x_value` for lookups). */
void emu_prop_name(const dv_attribute_def *a, char *out, size_t n);

#endif
