/* HTTP over libcurl: one keep-alive connection object, TLS verified, gzip accepted,
 * HTTP/2 where available, a retry policy for throttling and transient failures,
 * bearer auth from an attached dv_auth, and an opt-in trace with secrets redacted.
 *
 * Offers:
 *   dv_http_options_init  fill an options struct with the defaults
 *   dv_http_new / free    create / destroy a connection object
 *   dv_http_set_auth      attach a token provider (the dv_http takes ownership)
 *   dv_http_request       perform one logical request (retries included)
 *   dv_http_resp_header   look up a response header, case-insensitively
 *   dv_http_resp_free     release what a response holds
 *   dv_http_error_from_response  map a Dataverse error body onto a dv_error
 *   dv_http_try_begin / end / abort  one try on a caller's easy handle, and the retry
 *                         policy's verdict on it: for drivers of many transfers (src/multi.c)
 *
 * A dv_http is not thread-safe: use one per thread. The only process-wide state is
 * curl_global_init, run once through pthread_once. */
#ifndef DV_HTTP_H
#define DV_HTTP_H

#include <stddef.h>

#include "error.h"

typedef struct dv_http dv_http;
typedef struct dv_auth dv_auth; /* src/auth.h */

/* Zero in a numeric field means "the default". */
typedef struct dv_http_options {
    long connect_timeout_ms; /* default 10000 */
    long timeout_ms;         /* whole-request limit per try; default 120000 */
    int max_tries;           /* tries per request, first included; default 5 */
    long backoff_base_ms;    /* first backoff step; default 500 */
    long backoff_cap_ms;     /* no single wait exceeds this, Retry-After included; default 30000 */
    int insecure_skip_tls_verify; /* 1 turns off TLS peer and host verification; default 0 */
    int allow_insecure_http;      /* 1 lets tokens and secrets go over plain http:// to any host;
                                     default 0: only to loopback addresses (src/urlsafe.h) */
    int trace;                    /* 1 traces to stderr; also on when env DVLUA_TRACE=1 */
    const char *user_agent;       /* default "dvlua/<version>"; copied */
} dv_http_options;

/* One response header; names keep the server's spelling. */
typedef struct dv_http_header {
    char *name;
    char *value;
} dv_http_header;

/* Flags for dv_http_req.flags. */
enum {
    DV_HTTP_NO_AUTH = 1,   /* send no Authorization header even if a dv_auth is attached */
    DV_HTTP_SENSITIVE = 2, /* bodies hold secrets: the trace shows their sizes only */
};

typedef struct dv_http_req {
    const char *method;         /* "GET", "POST", "PATCH", "DELETE", ... */
    const char *url;            /* absolute URL */
    const char *const *headers; /* NULL-terminated array of "Name: value", or NULL */
    const char *body;           /* may be NULL */
    size_t body_len;
    unsigned flags; /* DV_HTTP_* */
} dv_http_req;

typedef struct dv_http_resp {
    long status; /* 0 when no response was received */
    char *body;  /* NUL-terminated (the NUL is not counted in body_len); dv_http_resp_free */
    size_t body_len;
    size_t body_map; /* a large body is mapped memory of this size, not malloc'd; 0 otherwise */
    dv_http_header *headers; /* headers of the final response only */
    size_t nheaders;
    int tries; /* how many tries were made */
} dv_http_resp;

/* One try, as a caller's logging hook sees it (dv_http_set_events). */
typedef struct dv_http_event {
    const char *kind; /* "request": a try ended (answer or failure); "retry": a wait begins */
    const char *method;
    const char *url;    /* secret query values redacted */
    long status;        /* 0 when no answer arrived */
    int attempt;        /* 1 for the first try */
    double elapsed;     /* seconds the try took */
    double retry_after; /* seconds the server asked for; -1 when it did not */
    double wait;        /* "retry": seconds until the next try */
    const char *error;  /* what went wrong, or NULL */
} dv_http_event;

typedef void (*dv_http_event_fn)(void *ud, const dv_http_event *ev);

/* Fills o with the defaults (all zero, which the functions below read as defaults). */
void dv_http_options_init(dv_http_options *o);

/* Creates a connection object; o may be NULL for the defaults. Returns NULL and fills err
 * when libcurl cannot be set up. */
dv_http *dv_http_new(const dv_http_options *o, dv_error *err);

/* Frees h, its curl handle (closing kept-alive connections) and its attached auth. NULL is fine. */
void dv_http_free(dv_http *h);

/* Attaches a token provider; h owns it from now on (frees a previously attached one).
 * Requests then carry "Authorization: Bearer <token>"; a 401 answer leads to one forced
 * token refresh and one more try. NULL detaches. */
void dv_http_set_auth(dv_http *h, dv_auth *a);

/* Calls fn(ud, event) after every try and before every wait between tries, whichever
 * driver runs them (dv_http_request or src/multi.h); NULL turns it off. fn must not start
 * requests on h. */
void dv_http_set_events(dv_http *h, dv_http_event_fn fn, void *ud);

/* The attached provider, or NULL. */
dv_auth *dv_http_auth(dv_http *h);

/* Performs req, with the retry policy:
 *   - 429, 502, 503, 504 and connection failures (nothing was sent) are retried up to
 *     max_tries, waiting a full-jitter exponential backoff (base * 2^n, capped), or the
 *     server's Retry-After (seconds, still capped) when it sent one;
 *   - a GET/HEAD that timed out or lost its connection after sending is retried too;
 *     any other method is NOT repeated then: it fails with code "maybe_applied";
 *   - a 401 with an attached auth: one forced refresh and one more try.
 * resp is always initialised (free it with dv_http_resp_free, also on failure).
 * Returns 0 when a response with status < 400 arrived. Returns -1 and fills err when:
 *   - the final response has status >= 400: err gets status, code and message from the
 *     Dataverse JSON error body (code "http" when the body has none), retry_after and
 *     request_id; resp still holds that response so callers can inspect it;
 *   - no response arrived: code "transport" (message names the host and curl's reason),
 *     "maybe_applied" (see above), "auth" (the token could not be obtained) or
 *     "interrupted" (Ctrl-C, src/interrupt.h: a transfer or a wait in progress ends);
 *   - the request would carry a token or a secret (an attached auth, DV_HTTP_SENSITIVE) over
 *     plain http:// to a host that is not a loopback address and allow_insecure_http is
 *     not set: code "insecure", nothing is sent. */
int dv_http_request(dv_http *h, const dv_http_req *req, dv_http_resp *resp, dv_error *err);

/* The value of the first response header called name (case-insensitive), or NULL. */
const char *dv_http_resp_header(const dv_http_resp *resp, const char *name);

/* Frees what resp holds and resets it; resp itself is not freed. */
void dv_http_resp_free(dv_http_resp *resp);

/* Fills err from a response with status >= 400: the Dataverse body
 * {"error":{"code":"0x…","message":"…"}} gives code and message; otherwise code "http" and
 * the status line. Also sets retry_after and request_id from the headers. Returns -1. */
int dv_http_error_from_response(const dv_http_resp *resp, const char *method, const char *url,
                                dv_error *err);

/* ---- one try at a time, for a driver of many transfers (src/multi.c) ----
 * dv_http_request is a loop over these; a driver that runs several requests at once keeps
 * one dv_http_progress per logical request and applies the same verdicts. */

typedef struct dv_http_try dv_http_try;

/* Where a logical request stands between tries. Zero it before the first try. */
typedef struct dv_http_progress {
    int retry;          /* tries made so far minus one, once a try ended with DV_HTTP_RETRY */
    int refreshed;      /* the one forced token refresh after a 401 was used */
    long wait_ms;       /* DV_HTTP_RETRY: how long to wait before the next try */
    int throttled;      /* DV_HTTP_RETRY: the answer was 429 */
    double retry_after; /* DV_HTTP_RETRY: the server's Retry-After in seconds, or negative */
    int spare_429;      /* set by a driver before ending a try: a 429 answer to it does not
                           count against max_tries (DV_HTTP_SPARE_429_MAX at most) */
    int spared;         /* 429 answers not counted so far */
} dv_http_progress;

#define DV_HTTP_SPARE_429_MAX 50

typedef enum {
    DV_HTTP_DONE,    /* a response with status < 400 */
    DV_HTTP_FAILED,  /* final: err filled (resp holds a final error response, if any) */
    DV_HTTP_RETRY,   /* try again after p->wait_ms */
    DV_HTTP_REFRESH, /* 401: invalidate the token, then try again at once */
} dv_http_verdict;

/* Prepares easy (a CURL *) for one try of req with token (NULL: none) and resets resp.
 * req must stay valid until the try ends. Returns NULL with err filled when out of memory. */
dv_http_try *dv_http_try_begin(dv_http *h, void *easy, const dv_http_req *req, const char *token,
                               dv_http_progress *p, dv_http_resp *resp, dv_error *err);

/* Ends a try whose transfer finished with curl_code (a CURLcode) and frees t; returns what
 * the retry policy says next (see dv_http_request). */
dv_http_verdict dv_http_try_end(dv_http *h, dv_http_try *t, int curl_code, dv_http_progress *p,
                                dv_http_resp *resp, dv_error *err);

/* Frees a try that will not be ended (its transfer was abandoned). NULL is fine. */
void dv_http_try_abort(dv_http_try *t);

/* The token for req (NULL when req carries none or it could not be had: err tells). */
const char *dv_http_token(dv_http *h, const dv_http_req *req, int force, dv_error *err);
int dv_http_wants_auth(const dv_http *h, const dv_http_req *req);
/* Changes whenever the attached provider fetched a new token: one refresh serves every
 * transfer that was refused with the old one. */
long dv_http_auth_generation(const dv_http *h);
const dv_http_options *dv_http_opts(const dv_http *h);

#endif
