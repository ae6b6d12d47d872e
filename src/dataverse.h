/* A connection to one Dataverse organization's Web API: base URL, token provider, one
 * keep-alive HTTP object (src/http.h), and the request/response exchange every operation is
 * built on. */
#ifndef DV_DATAVERSE_H
#define DV_DATAVERSE_H
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http.h"
#include "multi.h"

#define DV_API_PATH "/api/data/v9.2/"

typedef struct dv_conn dv_conn;

/* Strings are copied; NULL means "not given". */
typedef struct {
    const char *url;            /* organization URL, e.g. "https://org.crm.dynamics.com" */
    const char *token;          /* a bearer token obtained elsewhere */
    const char *tenant_id;      /* with client_id + client_secret: client credentials */
    const char *client_id;      /* with device_code: device code sign-in */
    const char *client_secret;  /* never printed */
    const char *authority_host; /* Entra ID host; NULL: env or the public cloud */
    long timeout;               /* seconds per try; 0 means 120 */
    int retries;                /* extra tries for throttling; negative means the default */
    int trace;                  /* 1: trace requests on stderr (secrets redacted) */
    int allow_insecure_http;    /* 1: plain http:// to a host that is not loopback is fine */
    int concurrency;            /* > 0 caps the concurrency budget (src/multi.h) */
    int device_code;            /* 1: sign in at a terminal (client_id, optional tenant_id) */
} dv_conn_options;

/* Returns NULL with err filled when the options are unusable (no URL, partial credentials).
 * With no credentials given, DATAVERSE_TOKEN and AZURE_* from the environment are used. */
dv_conn *dv_conn_open(const dv_conn_options *opt, dv_error *err);
void dv_conn_close(dv_conn *c);

/* The organization URL (no trailing slash) and the Web API base (ending in '/'). */
const char *dv_conn_url(const dv_conn *c);
const char *dv_conn_base(const dv_conn *c);

/* Hands every try and every retry wait to fn (src/http.h dv_http_set_events). */
void dv_conn_set_events(dv_conn *c, dv_http_event_fn fn, void *ud);

/* A secret-free description of how the connection signs in. */
void dv_conn_describe_auth(const dv_conn *c, char *out, size_t outsz);

/* Sends one request. target is a path relative to the Web API base ("accounts(…)") or an
 * absolute URL that must start with the organization URL (nextLink, deltaLink). headers is a
 * NULL-terminated list of "Name: value" lines or NULL; the OData headers are added. Retries
 * and token refresh happen below (src/http.c).
 * Returns 0 when a response arrived: out->status tells, and for a status >= 400 err holds the
 * server's error (code, message, retry_after, request_id). Returns -1 with err filled when no
 * response arrived. Free out with dv_http_resp_free in both cases. */
int dv_conn_send(dv_conn *c, const char *method, const char *target, const char *body,
                 size_t body_len, const char *const *headers, dv_http_resp *out, dv_error *err);

/* The same exchange without waiting: queues the request on the connection's multi driver
 * (src/multi.h) and returns its id (0 with err filled on failure). Drive it with
 * dv_multi_wait on dv_conn_multi(c); dv_conn_result then gives what dv_conn_send would have. */
uint64_t dv_conn_submit(dv_conn *c, const char *method, const char *target, const char *body,
                        size_t body_len, const char *const *headers, dv_error *err);
int dv_conn_result(dv_conn *c, uint64_t id, dv_http_resp *out, dv_error *err);
dv_multi *dv_conn_multi(dv_conn *c);

#endif
