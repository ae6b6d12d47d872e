/* The HTTP side of the emulator: libmicrohttpd threads, request size limits, fault
 * injection, the bearer check and the emulator's lifecycle and test hooks. API paths go
 * to the router, OAuth paths (no bearer token) straight to their handler. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "emu_internal.h"
#include "limits.h"
#include "metadata_store.h"
#include "oauth.h"
#include "request.h"
#include "router.h"
#include "store.h"

enum { F_429, F_503, F_DELAY, F_DROP };

struct emu_fault {
    int kind;
    long arg;       /* Retry-After seconds, or delay milliseconds */
    long remaining; /* "next N" faults: how many are left; -1 for "every Nth" */
    long every;
    unsigned long seen;
    emu_fault *next;
};

/* ---- faults ---- */

static int parse_faults(dv_emulator *e, const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL;
    emu_fault *list = NULL, **tail = &list;
    for (char *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        emu_fault f = {0};
        f.remaining = 1;
        char *mode = strpbrk(item, "*/");
        char m = mode ? *mode : '*';
        if (mode) *mode++ = 0;
        char *arg = strchr(item, '=');
        if (arg) *arg++ = 0;
        if (strcmp(item, "429") == 0)
            f.kind = F_429, f.arg = arg ? atol(arg) : 1;
        else if (strcmp(item, "503") == 0)
            f.kind = F_503, f.arg = arg ? atol(arg) : 0;
        else if (strcmp(item, "delay") == 0)
            f.kind = F_DELAY, f.arg = arg ? atol(arg) : 1000;
        else if (strcmp(item, "drop") == 0)
            f.kind = F_DROP;
        else {
            snprintf(err, errlen, "faults: unknown fault '%s' (want 429, 503, delay or drop)",
                     item);
            goto fail;
        }
        long n = mode ? atol(mode) : 1;
        if (n <= 0) {
            snprintf(err, errlen, "faults: count after '%c' must be a positive number", m);
            goto fail;
        }
        if (m == '/')
            f.remaining = -1, f.every = n;
        else
            f.remaining = n;
        emu_fault *nf = malloc(sizeof *nf);
        *nf = f;
        *tail = nf;
        tail = &nf->next;
    }
    free(copy);
    pthread_mutex_lock(&e->fmu);
    *tail = e->faults;
    e->faults = list;
    pthread_mutex_unlock(&e->fmu);
    return 0;
fail:
    free(copy);
    while (list) {
        emu_fault *n = list->next;
        free(list);
        list = n;
    }
    return -1;
}

/* The fault to apply to this request, if any (copied out; the list may change). */
static int pick_fault(dv_emulator *e, emu_fault *out)
{
    int hit = 0;
    pthread_mutex_lock(&e->fmu);
    e->requests++;
    for (emu_fault **pp = &e->faults; *pp && !hit;) {
        emu_fault *f = *pp;
        if (f->remaining > 0) {
            *out = *f;
            hit = 1;
            if (--f->remaining == 0) {
                *pp = f->next;
                free(f);
                continue;
            }
        } else if (f->remaining < 0 && ++f->seen % (unsigned long)f->every == 0) {
            *out = *f;
            hit = 1;
        }
        pp = &f->next;
    }
    pthread_mutex_unlock(&e->fmu);
    return hit;
}

int dv_emulator_add_faults(dv_emulator *emu, const char *spec, char *err, unsigned errlen)
{
    if (!emu->faults_enabled) {
        snprintf(err, errlen,
                 "fault injection was not enabled when the emulator started "
                 "(start it with faults = \"\" or --faults)");
        return -1;
    }
    return parse_faults(emu, spec, err, errlen);
}

/* ---- auth ---- */

static int auth_ok(emu_req *r)
{
    const char *h = emu_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    if (!*tok) return 0;
    if (!r->emu->token) return 1;
    size_t a = strlen(tok), b = strlen(r->emu->token);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned)(tok[i] ^ r->emu->token[i]);
    return diff == 0;
}

typedef struct {
    sbuf body;
    int too_big;
    int framing; /* conflicting Content-Length / Transfer-Encoding: refused, never routed */
} conn_ctx;

typedef struct {
    char *data;
    size_t len, cut;
} drop_ctx;

static ssize_t drop_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    drop_ctx *d = cls;
    if (pos >= d->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = d->cut - (size_t)pos;
    if (n > max) n = max;
    memcpy(buf, d->data + pos, n);
    return (ssize_t)n;
}

static void drop_free(void *cls)
{
    drop_ctx *d = cls;
    free(d->data);
    free(d);
}

/* ---- which requests run at once ---- */

static int is_read(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* Takes the lock a request needs; returns 1 when it holds the store alone. A ":memory:"
 * store has one connection: every request takes mu. A file store lets reads, and writes of
 * rows, share the schema lock (SQLite orders the writes); anything else (imports, metadata,
 * $batch, solution uninstalls) may change the entity cache and takes it exclusively. */
static int lock_request(dv_emulator *e, const char *method, const char *path)
{
    if (!e->per_thread) {
        pthread_mutex_lock(&e->mu);
        return 1;
    }
    pthread_rwlock_rdlock(&e->schema);
    if (is_read(method)) return 0;
    size_t n = strcspn(path, "(/?");
    emu_entity *t = n ? store_by_set(e, path, n) : NULL;
    if (t && strcmp(t->def.logical_name, "solution") != 0) return 0;
    pthread_rwlock_unlock(&e->schema);
    pthread_rwlock_wrlock(&e->schema);
    return 1;
}

static void unlock_request(dv_emulator *e, int excl)
{
    (void)excl;
    if (!e->per_thread)
        pthread_mutex_unlock(&e->mu);
    else
        pthread_rwlock_unlock(&e->schema);
}

/* The test hooks change what every request reads (clock, retention, key state). */
static void lock_all(dv_emulator *e)
{
    if (e->per_thread)
        pthread_rwlock_wrlock(&e->schema);
    else
        pthread_mutex_lock(&e->mu);
}

static void unlock_all(dv_emulator *e)
{
    unlock_request(e, 1);
}

/* ---- request framing ---- */

typedef struct {
    int n_length, n_encoding, conflict;
    unsigned long long length;
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    framing *f = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) f->n_encoding++;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0) return MHD_YES;
    /* "Content-Length: 5, 5" and repeated headers: every value must be the same number. */
    const char *p = value ? value : "";
    do {
        p += strspn(p, " \t,");
        if (!*p) break;
        size_t digits = strspn(p, "0123456789");
        unsigned long long v = strtoull(p, NULL, 10);
        p += digits;
        size_t ws = strspn(p, " \t");
        if (digits == 0 || digits > 18 || (p[ws] && p[ws] != ',')) f->conflict = 1;
        p += ws;
        if (f->n_length++ && v != f->length) f->conflict = 1;
        f->length = v;
    } while (*p == ',');
    return MHD_YES;
}

/* 1 when the headers leave where the body ends open to interpretation (RFC 9112, 6.3): two
 * Content-Length values that differ or are not numbers, or Transfer-Encoding together with
 * Content-Length. A proxy in front could read such a request differently, so the rest of the
 * body could pass for a second request ("request smuggling"). */
static int ambiguous_framing(struct MHD_Connection *conn)
{
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &f);
    return f.conflict || (f.n_encoding && f.n_length) || f.n_encoding > 1;
}

static void base_from_host(emu_req *r, const char *version)
{
    const char *host = emu_header(r, MHD_HTTP_HEADER_HOST);
    if (host && strlen(host) < 180 && !strpbrk(host, "\"\\ /"))
        snprintf(r->base, sizeof r->base, "http://%s/api/data/%s/", host, version);
    else
        snprintf(r->base, sizeof r->base, "%s/api/data/%s/", r->emu->url, version);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    dv_emulator *e = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        *con_cls = cc;
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, e->conn_timeout);
        if (ambiguous_framing(conn)) {
            /* Answer now, before any body byte is read, and close: where the body ends is
             * unknown, so nothing after the headers may be taken for another request. */
            cc->framing = 1;
        } else {
            const char *cl =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (!cl || atoll(cl) <= e->max_body) return MHD_YES;
            /* Too big by its Content-Length: answer now rather than read the body. */
            cc->too_big = 1;
        }
    }
    if (*upload_size && cc->framing) {
        *upload_size = 0; /* never read: the connection closes after the 400 */
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cc->too_big) {
            if (cc->body.n + *upload_size > (size_t)e->max_body) {
                cc->too_big = 1;
                sb_free(&cc->body);
            } else {
                sb_put(&cc->body, upload, *upload_size);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }

    emu_req r;
    memset(&r, 0, sizeof r);
    r.emu = e;
    r.conn = conn;
    r.method = method;
    r.body = sb_str(&cc->body);
    r.body_len = cc->body.n;
    emu_fault fault;
    memset(&fault, 0, sizeof fault);
    int faulted = 0;
    emu_ticket ticket;
    emu_refusal refusal;

    const char *api = NULL, *ver = "v9.2";
    static const char *versions[] = {"v9.2", "v9.1", "v9.0"};
    for (int i = 0; i < 3; i++) {
        char prefix[32];
        int n = snprintf(prefix, sizeof prefix, "/api/data/%s", versions[i]);
        if (strncmp(url, prefix, (size_t)n) == 0 && (url[n] == 0 || url[n] == '/')) {
            api = url + n + (url[n] == '/');
            ver = versions[i];
        }
    }
    base_from_host(&r, ver);
    const char *oauth = strstr(url, "/oauth2/");
    if (cc->framing) {
        emu_error(&r, 400, "0x80060888",
                  "The request's framing is ambiguous: it has Content-Length headers that "
                  "disagree, or Transfer-Encoding together with Content-Length.");
    } else if (cc->too_big) {
        emu_error(&r, 413, "0x80040216",
                  "The request body is larger than the limit of %ld "
                  "bytes.",
                  e->max_body);
    } else if (!api && oauth && url[0] == '/' && strchr(url + 1, '/') == oauth) {
        h_oauth(&r, oauth + 8);
    } else if (!api) {
        emu_error(&r, 404, "0x80060888", "Resource not found for the segment '%s'.", url);
    } else if (e->faults_enabled && (faulted = pick_fault(e, &fault)) && fault.kind != F_DROP &&
               fault.kind != F_DELAY) {
        if (fault.kind == F_429) {
            char ra[32];
            snprintf(ra, sizeof ra, "%ld", fault.arg);
            emu_add_header(&r, "Retry-After", ra);
            emu_error(&r, 429, "0x80072322",
                      "Number of requests exceeded the limit of 6000 over "
                      "time window of 300 seconds.");
        } else {
            if (fault.arg > 0) {
                char ra[32];
                snprintf(ra, sizeof ra, "%ld", fault.arg);
                emu_add_header(&r, "Retry-After", ra);
            }
            emu_error(&r, 503, "0x80040216", "The service is temporarily unavailable.");
        }
    } else if (!auth_ok(&r)) {
        char wa[512];
        snprintf(wa, sizeof wa,
                 "Bearer authorization_uri=%.200s/common/oauth2/authorize, resource_id=%.200s/",
                 e->url, e->url);
        emu_add_header(&r, "WWW-Authenticate", wa);
        r.status = 401;
    } else if (emu_guard_enter(e->guard, &ticket, &refusal)) {
        char ra[32];
        snprintf(ra, sizeof ra, "%ld", refusal.retry_after);
        emu_add_header(&r, "Retry-After", ra);
        emu_error(&r, 429, refusal.code, "%s", refusal.message);
    } else {
        if (faulted && fault.kind == F_DELAY) usleep((useconds_t)fault.arg * 1000);
        char *path = strdup(api);
        int excl = lock_request(e, method, path);
        emu_guard_locked(&ticket);
        int snapshot = e->per_thread && !excl && is_read(method);
        /* A read sees one state of the store, whatever commits meanwhile: a delta token and
         * the changes it covers come from the same snapshot. */
        if (snapshot) store_snapshot(e);
        router_route(&r, path);
        store_end_request(e); /* a handler that failed midway leaves nothing behind */
        if (r.status == 0 || (r.status >= 400 && r.out.n == 0)) {
            /* A handler path that ended without an answer, or refused without saying why,
             * is a bug: it gets a Dataverse-shaped 500 (which specs and fuzzing look for),
             * and a line on stderr naming the request. */
            fprintf(stderr, "dvlua emulator: bug: %s %s ended with status %d and no body\n", method,
                    url, r.status);
            sb_free(&r.out);
            r.content_type = NULL;
            emu_error(&r, 500, "0x80040216",
                      "An unexpected error occurred: the request ended without an answer.");
        }
        unlock_request(e, excl);
        free(path);
        emu_guard_leave(e->guard, &ticket, r.out.p, r.out.n); /* latency, outside the lock */
    }

    struct MHD_Response *resp;
    if (faulted && fault.kind == F_DROP && r.out.n > 1) {
        drop_ctx *d = malloc(sizeof *d);
        d->len = r.out.n;
        d->cut = r.out.n / 2;
        d->data = r.out.p;
        r.out.p = NULL;
        resp = MHD_create_response_from_callback(d->len, 4096, drop_reader, d, drop_free);
    } else if (faulted && fault.kind == F_DROP) {
        sb_free(&r.out);
        for (int i = 0; i < r.n_hdr; i++)
            free(r.hdr_name[i]), free(r.hdr_val[i]);
        return MHD_NO; /* closes the connection without an answer */
    } else {
        resp = MHD_create_response_from_buffer(r.out.n, r.out.p ? r.out.p : (void *)"",
                                               r.out.p ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
        r.out.p = NULL;
    }
    if (api) MHD_add_response_header(resp, "OData-Version", "4.0");
    if (api) emu_guard_headers(e->guard, resp);
    if (r.content_type && r.out.n + 1 > 0 && (r.status != 204))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
    char rid[37];
    guid_new(rid);
    MHD_add_response_header(resp, "x-ms-service-request-id", rid);
    for (int i = 0; i < r.n_hdr; i++) {
        MHD_add_response_header(resp, r.hdr_name[i], r.hdr_val[i]);
        free(r.hdr_name[i]);
        free(r.hdr_val[i]);
    }
    if (cc->too_big || cc->framing)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)(r.status ? r.status : 500), resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    conn_ctx *cc = *con_cls;
    if (cc) {
        sb_free(&cc->body);
        free(cc);
    }
    *con_cls = NULL;
}

/* Every connection starts on the short clock; answer() moves it to conn_timeout once a
 * whole request head has arrived. */
static void connection_started(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode toe)
{
    dv_emulator *e = cls;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, e->header_timeout);
}

/* Each connection holds a socket (and a thread): stay under the descriptor limit. */
static unsigned default_max_conns(void)
{
    struct rlimit rl;
    rlim_t n = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = rl.rlim_cur;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        n = 4096 + 128;
    n = n > 128 ? n - 128 : 16;
    return n > 4096 ? 4096 : (unsigned)n;
}

dv_emulator *dv_emulator_start(const dv_emulator_options *opt, char *err, unsigned errlen)
{
    dv_emulator_options o = {0};
    if (opt) o = *opt;
    dv_emulator *e = calloc(1, sizeof *e);
    e->db_path = strdup(o.db ? o.db : ":memory:");
    e->host = strdup(o.host ? o.host : "127.0.0.1");
    e->token = o.token && *o.token ? strdup(o.token) : NULL;
    e->max_body = o.max_body > 0 ? o.max_body : 64L * 1024 * 1024;
    e->retention = o.retention > 0 ? o.retention : 7 * 86400.0;
    e->key_delay = o.key_delay >= 0 ? o.key_delay : 0.6;
    e->conn_timeout = o.conn_timeout ? o.conn_timeout : 30;
    e->header_timeout = o.header_timeout ? o.header_timeout : 5;
    unsigned max_conns = o.max_conns ? o.max_conns : default_max_conns();
    unsigned per_client = o.max_conns_per_client ? o.max_conns_per_client : max_conns / 4;
    if (per_client < 1) per_client = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->fmu, NULL);
    emu_guard_opts go = {
        o.limits,           o.limit_requests, o.limit_execution_ms,
        o.limit_concurrent, o.limit_window,   {o.latency_request_ms, o.latency_per_row_ms},
        o.dop_hint};
    if (!(e->guard = emu_guard_new(&go))) {
        snprintf(err, errlen, "out of memory setting up the service protection limits");
        goto fail;
    }
    if (o.faults) {
        e->faults_enabled = 1;
        if (parse_faults(e, o.faults, err, errlen)) goto fail;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(o.port);
    const char *h = strcmp(e->host, "localhost") == 0 ? "127.0.0.1" : e->host;
    if (inet_pton(AF_INET, h, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "host '%s' is not an IPv4 address", e->host);
        goto fail;
    }
    if (store_open(e, err, errlen)) goto fail;
    /* poll() rather than select(): no FD_SETSIZE ceiling under the connection limit. One
     * client address gets a quarter of the connections, so a flood of half-open connections
     * from one place leaves room for everyone else, and connections that never finish a
     * request head are closed after header_timeout instead of conn_timeout. */
    e->daemon = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION, o.port, NULL, NULL, answer, e,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
        e->conn_timeout, MHD_OPTION_CONNECTION_LIMIT, max_conns, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        per_client, MHD_OPTION_THREAD_STACK_SIZE, (size_t)2 << 20, MHD_OPTION_NOTIFY_CONNECTION,
        connection_started, e, MHD_OPTION_NOTIFY_COMPLETED, completed, e, MHD_OPTION_END);
    if (!e->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%u (address in use?)", e->host, o.port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(e->daemon, MHD_DAEMON_INFO_BIND_PORT);
    e->port = info ? info->port : o.port;
    snprintf(e->url, sizeof e->url, "http://%s:%u", strcmp(h, "0.0.0.0") == 0 ? "127.0.0.1" : h,
             e->port);
    return e;
fail:
    dv_emulator_stop(e);
    return NULL;
}

const char *dv_emulator_url(const dv_emulator *emu)
{
    return emu->url;
}

void dv_emulator_stop(dv_emulator *e)
{
    if (!e) return;
    if (e->daemon) MHD_stop_daemon(e->daemon);
    store_close(e);
    while (e->faults) {
        emu_fault *n = e->faults->next;
        free(e->faults);
        e->faults = n;
    }
    emu_guard_free(e->guard);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->fmu);
    free(e->db_path), free(e->host), free(e->token);
    free(e);
}

void dv_emulator_get_stats(dv_emulator *emu, dv_emulator_stats *s, int reset)
{
    emu_guard_stats(emu->guard, s, reset);
    emu_wq_stats w;
    store_write_stats(emu, &w, reset);
    s->writes = w.writes;
    s->commits = w.commits;
    s->write_wait_ms = w.wait_ms;
    s->write_ms = w.turn_ms;
    s->commit_ms = w.commit_ms;
}

void dv_emulator_advance(dv_emulator *emu, double seconds)
{
    lock_all(emu);
    emu->clock_offset += seconds;
    unlock_all(emu);
}

void dv_emulator_set_retention(dv_emulator *emu, double seconds)
{
    lock_all(emu);
    emu->retention = seconds;
    unlock_all(emu);
}

int dv_emulator_fail_key(dv_emulator *emu, const char *entity, const char *key, char *err,
                         unsigned errlen)
{
    lock_all(emu);
    sqlite3_stmt *st = store_stmt(emu, "UPDATE ekey SET failed = 1 WHERE entity=?1 AND logical=?2");
    int changed = 0;
    if (st) {
        sqlite3_bind_text(st, 1, entity, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_DONE) changed = sqlite3_changes(store_db(emu));
    }
    /* The failed index job, which the key's AsyncJob then names. */
    if (changed && store_begin(emu) == 0) {
        if (mdx_fail_key(emu, entity, key, "The index job for this key failed.", emu_now(emu)) ||
            store_commit(emu))
            store_rollback(emu);
    }
    unlock_all(emu);
    if (!changed) {
        snprintf(err, errlen, "no key '%s' on table '%s'", key, entity);
        return -1;
    }
    return 0;
}

int dv_emulator_hold_writes(dv_emulator *emu, const char *table, char *err, unsigned errlen)
{
    if (emu->per_thread)
        pthread_rwlock_rdlock(&emu->schema);
    else
        pthread_mutex_lock(&emu->mu);
    int file = store_table_file(emu, table);
    unlock_request(emu, 0);
    if (file < 0) {
        snprintf(err, errlen, "no table '%s'", table);
        return -1;
    }
    store_hold_writers(emu, file);
    return file;
}

void dv_emulator_release_writes(dv_emulator *emu, int handle)
{
    store_release_writers(emu, handle);
}
