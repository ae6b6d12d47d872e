/* A connection to one Dataverse organization's Web API: base URL, bearer token, one
 * keep-alive HTTP handle, and the request/response exchange every operation is built on. */
#ifndef DV_DATAVERSE_H
#define DV_DATAVERSE_H
#include <stddef.h>

#include "error.h"
#include "odata.h"

#define DV_API_PATH "/api/data/v9.2/"

typedef struct dv_conn dv_conn;

typedef struct {
    const char *url;   /* organization URL, e.g. "https://org.crm.dynamics.com" (required) */
    const char *token; /* bearer token sent with every request (may be NULL) */
    long timeout;      /* seconds per request; 0 means 120 */
    int retries;       /* extra tries for 429/502/503/504; negative means 3 */
    int trace;         /* 1: one line per request on stderr (never a header value) */
} dv_conn_options;

typedef struct {
    long status;
    dv_buf body;
    dv_buf headers; /* "name: value\n" lines of the final response */
} dv_response;

/* Returns NULL with err filled when the options are unusable. */
dv_conn *dv_conn_open(const dv_conn_options *opt, dv_error *err);
void dv_conn_close(dv_conn *c);

/* The organization URL (no trailing slash) and the Web API base (ending in '/'). */
const char *dv_conn_url(const dv_conn *c);
const char *dv_conn_base(const dv_conn *c);

/* Replaces the bearer token (NULL clears it). Returns 0, or -1 when memory ran out. */
int dv_conn_set_token(dv_conn *c, const char *token);

/* Sends one request. target is a path relative to the Web API base ("accounts(…)") or an
 * absolute URL that must start with the organization URL (nextLink, deltaLink). headers is a
 * NULL-terminated list of "Name: value" lines or NULL. Retries 429/502/503/504 honouring
 * Retry-After. Returns 0 when a response arrived (any status; out->status tells), -1 with
 * err filled when none did. out is overwritten; free it with dv_response_free. */
int dv_conn_send(dv_conn *c, const char *method, const char *target, const char *body,
                 size_t body_len, const char *const *headers, dv_response *out, dv_error *err);

void dv_response_free(dv_response *r);

/* The value of the first response header with that name (case-insensitive), or NULL; *len gets
 * its length. */
const char *dv_response_header(const dv_response *r, const char *name, size_t *len);

#endif
