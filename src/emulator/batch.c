/* $batch as "Execute batch operations using the Web API" documents it. See batch.h. */
#include "batch.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"
#include "store.h"

#define BAD_BATCH "0x80060888" /* the code Dataverse uses for malformed OData requests */

typedef struct {
    char *id;  /* Content-ID */
    char *url; /* the OData-EntityId of the row its request created or addressed */
} ref;

typedef struct {
    ref *v;
    int n;
} refs;

static void refs_free(refs *rs)
{
    for (int i = 0; i < rs->n; i++)
        free(rs->v[i].id), free(rs->v[i].url);
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

static const char *ref_get(const refs *rs, const char *id, size_t n)
{
    for (int i = 0; rs && i < rs->n; i++)
        if (strlen(rs->v[i].id) == n && strncmp(rs->v[i].id, id, n) == 0) return rs->v[i].url;
    return NULL;
}

static void ref_add(refs *rs, const char *id, const char *url)
{
    ref *nv = realloc(rs->v, sizeof *nv * (size_t)(rs->n + 1));
    if (!nv) return;
    rs->v = nv;
    rs->v[rs->n].id = strdup(id);
    rs->v[rs->n].url = strdup(url);
    rs->n++;
}

/* One answered sub-request, kept until the change set it belongs to is settled. */
typedef struct {
    int status;
    char *content_id;
    char *text; /* "HTTP/1.1 …" status line, headers, blank line, body */
} answer;

static void answers_free(answer *a, int n)
{
    for (int i = 0; i < n; i++)
        free(a[i].content_id), free(a[i].text);
    free(a);
}

static size_t id_len(const char *p)
{
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-' || p[n] == '.')
        n++;
    return n;
}

/* Replaces "$id" string values of @odata.bind and @odata.id members with the URLs they refer
 * to. Returns 0, or -1 after an error answer naming the reference. */
static int subst_body(emu_req *r, const refs *rs, const char *b, size_t len, sbuf *out)
{
    size_t i = 0, from = 0;
    while (i + 2 < len) {
        if (b[i] == '"' && b[i + 1] == '$') {
            size_t n = id_len(b + i + 2);
            if (n && i + 2 + n < len && b[i + 2 + n] == '"') {
                /* the member name before ':' must be an @odata.bind or @odata.id */
                size_t k = i;
                while (k > 0 && isspace((unsigned char)b[k - 1]))
                    k--;
                int is_ref = 0;
                if (k > 0 && b[k - 1] == ':') {
                    k--;
                    while (k > 0 && isspace((unsigned char)b[k - 1]))
                        k--;
                    if (k > 0 && b[k - 1] == '"') {
                        size_t e = k - 1, s = e;
                        while (s > 0 && b[s - 1] != '"')
                            s--;
                        size_t kl = e - s;
                        is_ref = (kl >= 11 && memcmp(b + e - 11, "@odata.bind", 11) == 0) ||
                                 (kl == 9 && memcmp(b + s, "@odata.id", 9) == 0);
                    }
                }
                if (is_ref) {
                    const char *url = ref_get(rs, b + i + 2, n);
                    if (!url)
                        return emu_error(r, 400, BAD_BATCH,
                                         "Content-ID Reference: '$%.*s' does not exist in the "
                                         "batch context.",
                                         (int)n, b + i + 2);
                    sb_put(out, b + from, i - from);
                    sb_json_str(out, url);
                    i += n + 3;
                    from = i;
                    continue;
                }
            }
        }
        i++;
    }
    sb_put(out, b + from, len - from);
    return 0;
}

/* The path below the API base that target addresses: absolute, rooted or relative URLs,
 * with a leading $id replaced by its URL. Returns a malloc'd path, or NULL after an error. */
static char *resolve_target(emu_req *r, const refs *rs, const char *target)
{
    sbuf t = {0};
    if (target[0] == '$' && target[1] != '$' && id_len(target + 1) > 0) {
        size_t n = id_len(target + 1);
        const char *url = rs ? ref_get(rs, target + 1, n) : NULL;
        if (!url) {
            emu_error(r, 400, BAD_BATCH,
                      "Content-ID Reference: '$%.*s' does not exist in the batch context.", (int)n,
                      target + 1);
            return NULL;
        }
        sb_puts(&t, url);
        sb_puts(&t, target + 1 + n);
    } else {
        sb_puts(&t, target);
    }
    const char *s = sb_str(&t);
    const char *api = strstr(s, "/api/data/v");
    const char *path = s;
    if (api) {
        const char *slash = strchr(api + 11, '/');
        path = slash ? slash + 1 : api + strlen(api);
    } else if (strstr(s, "://") || s[0] == '/') {
        emu_error(r, 404, BAD_BATCH, "Resource not found for the segment '%s'.", s);
        sb_free(&t);
        return NULL;
    }
    char *out = strdup(path);
    sb_free(&t);
    return out;
}

/* Splits "a=1&b=2" into decoded pairs (strings owned by the array's single buffer). */
static emu_kv *split_args(char *q, int *n_out)
{
    int n = 0, cap = 0;
    emu_kv *v = NULL;
    while (q && *q) {
        char *amp = strchr(q, '&');
        if (amp) *amp = 0;
        if (*q) {
            char *eq = strchr(q, '=');
            if (eq) *eq = 0;
            url_decode(q, 1);
            if (eq) url_decode(eq + 1, 1);
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                emu_kv *nv = realloc(v, sizeof *v * (size_t)cap);
                if (!nv) break;
                v = nv;
            }
            v[n].name = q;
            v[n].value = eq ? eq + 1 : "";
            n++;
        }
        q = amp ? amp + 1 : NULL;
    }
    *n_out = n;
    return v;
}

static void put_status_line(sbuf *b, int status)
{
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    sb_printf(b, "HTTP/1.1 %d %s\r\n", status, reason && *reason ? reason : "Unknown");
}

/* Serializes an answered request as the application/http body of a response part. */
static char *serialize(emu_req *s)
{
    sbuf b = {0};
    int status = s->status ? s->status : 500;
    put_status_line(&b, status);
    if (s->content_type && status != 204) sb_printf(&b, "Content-Type: %s\r\n", s->content_type);
    sb_puts(&b, "OData-Version: 4.0\r\n");
    for (int i = 0; i < s->n_hdr; i++)
        sb_printf(&b, "%s: %s\r\n", s->hdr_name[i], s->hdr_val[i]);
    sb_puts(&b, "\r\n");
    if (status != 204) sb_put(&b, s->out.p ? s->out.p : "", s->out.n);
    sb_str(&b);
    return b.p;
}

static void sub_free(emu_req *s)
{
    sb_free(&s->out);
    for (int i = 0; i < s->n_hdr; i++)
        free(s->hdr_name[i]), free(s->hdr_val[i]);
    s->n_hdr = 0;
}

static const char *sub_header_out(emu_req *s, const char *name)
{
    for (int i = 0; i < s->n_hdr; i++)
        if (strcasecmp(s->hdr_name[i], name) == 0) return s->hdr_val[i];
    return NULL;
}

/* Runs one application/http part. in_cs: inside a change set (GET refused, references
 * resolved from rs). Fills a (status and serialized answer); records a Content-ID's URL. */
static void run_part(emu_req *r, const mp_part *p, int in_cs, refs *rs, batch_dispatch_fn dispatch,
                     void *ud, answer *a)
{
    emu_req sub;
    memset(&sub, 0, sizeof sub);
    sub.emu = r->emu;
    memcpy(sub.base, r->base, sizeof sub.base);
    const char *cid = mp_header_get(p->hdrs, p->n_hdrs, "Content-ID");
    a->content_id = cid ? strdup(cid) : NULL;
    const char *ct = mp_header_get(p->hdrs, p->n_hdrs, "Content-Type");
    mp_http h;
    memset(&h, 0, sizeof h);
    char err[512];
    sbuf body = {0};
    char *path = NULL;
    emu_kv *args = NULL;
    if (!ct || strncasecmp(ct, "application/http", 16) != 0) {
        emu_error(&sub, 400, BAD_BATCH,
                  "A part of the batch must have the Content-Type application/http, not '%s'.",
                  ct ? ct : "(none)");
    } else if (mp_parse_http(p->body, p->body_len, &h, err, sizeof err)) {
        emu_error(&sub, 400, BAD_BATCH, "The batch part could not be read: %s.", err);
    } else if (in_cs && strcmp(h.method, "GET") == 0) {
        emu_error(&sub, 400, BAD_BATCH, "GET requests are not allowed in a change set.");
    } else if (subst_body(&sub, in_cs ? rs : NULL, h.body, h.body_len, &body) == 0 &&
               (path = resolve_target(&sub, in_cs ? rs : NULL, h.target)) != NULL) {
        char *q = strchr(path, '?');
        int n_args = 0;
        if (q) *q++ = 0;
        args = split_args(q, &n_args);
        if (strcmp(path, "$batch") == 0) {
            emu_error(&sub, 400, BAD_BATCH,
                      "A batch request cannot contain another batch request.");
        } else {
            sub.method = h.method;
            sub.body = sb_str(&body);
            sub.body_len = body.n;
            sub.sub_hdrs = (const emu_kv *)h.hdrs;
            sub.n_sub_hdrs = h.n_hdrs;
            sub.sub_args = args;
            sub.n_sub_args = n_args;
            url_decode(path, 0);
            dispatch(&sub, path, ud);
            if (!sub.status) sub.status = 500;
        }
    }
    if (!in_cs) store_rollback(r->emu); /* what a failed request left half done */
    a->status = sub.status;
    if (in_cs && cid && sub.status < 400) {
        const char *loc = sub_header_out(&sub, "OData-EntityId");
        if (!loc) loc = sub_header_out(&sub, "Location");
        if (loc) ref_add(rs, cid, loc);
    }
    a->text = serialize(&sub);
    sub_free(&sub);
    sb_free(&body);
    free(path);
    free(args);
    mp_http_free(&h);
}

static void put_part(sbuf *o, const char *bd, const answer *a)
{
    sb_printf(o, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
              bd);
    if (a->content_id) sb_printf(o, "Content-ID: %s\r\n", a->content_id);
    sb_puts(o, "\r\n");
    sb_puts(o, a->text);
    sb_puts(o, "\r\n");
}

static int count_requests(const mp_doc *d)
{
    int n = 0;
    for (int i = 0; i < d->n_parts; i++)
        n += d->parts[i].is_multipart ? d->parts[i].n_parts : 1;
    return n;
}

int h_batch(emu_req *r, batch_dispatch_fn dispatch, void *ud)
{
    if (strcmp(r->method, "POST") != 0)
        return emu_error(r, 405, BAD_BATCH, "The HTTP method '%s' is not allowed for $batch.",
                         r->method);
    char bd[MP_MAX_BOUNDARY + 1];
    const char *ct = emu_header(r, "Content-Type");
    if (mp_boundary(ct, bd, sizeof bd))
        return emu_error(r, 400, BAD_BATCH,
                         "The batch request must have a Content-Type of multipart/mixed with a "
                         "boundary, not '%s'.",
                         ct ? ct : "(none)");
    mp_doc doc;
    char err[512];
    if (mp_parse(r->body, r->body_len, bd, &doc, err, sizeof err))
        return emu_error(r, 400, BAD_BATCH, "The batch request body could not be read: %s.", err);
    for (int i = 0; i < doc.n_parts; i++)
        if (doc.parts[i].is_multipart && doc.parts[i].n_parts > BATCH_MAX_REQUESTS) {
            mp_free(&doc);
            return emu_error(r, 400, BAD_BATCH,
                             "The current change set contains too many operations. A maximum "
                             "number of '%d' operations are allowed in a change set.",
                             BATCH_MAX_REQUESTS);
        }
    if (count_requests(&doc) > BATCH_MAX_REQUESTS) {
        mp_free(&doc);
        return emu_error(r, 400, BAD_BATCH,
                         "The current batch message contains too many parts. Only batch "
                         "messages with a maximum number of '%d' query operations, including "
                         "changeset operations, are allowed.",
                         BATCH_MAX_REQUESTS);
    }
    const char *prefer = emu_header(r, "Prefer");
    int go_on = prefer && strstr(prefer, "odata.continue-on-error") != NULL;

    char gid[37];
    guid_new(gid);
    char rb[64];
    snprintf(rb, sizeof rb, "batchresponse_%s", gid);
    sbuf o = {0};
    int failed_status = 0;
    for (int i = 0; i < doc.n_parts && !(failed_status && !go_on); i++) {
        const mp_part *p = &doc.parts[i];
        if (!p->is_multipart) {
            answer a = {0};
            run_part(r, p, 0, NULL, dispatch, ud, &a);
            put_part(&o, rb, &a);
            if (a.status >= 400 && !failed_status) failed_status = a.status;
            free(a.content_id), free(a.text);
            continue;
        }
        /* A change set: one transaction, answered in full or by its first error. */
        if (store_hold(r->emu)) {
            mp_free(&doc);
            sb_free(&o);
            return emu_error(r, 503, "0x80040216", "The store is busy.");
        }
        refs rs = {0};
        answer *as = calloc((size_t)p->n_parts + 1, sizeof *as);
        int n = 0, bad = -1;
        for (int j = 0; j < p->n_parts; j++) {
            run_part(r, &p->parts[j], 1, &rs, dispatch, ud, &as[n]);
            if (as[n++].status >= 400) {
                bad = n - 1;
                break;
            }
        }
        refs_free(&rs);
        if (bad < 0 && store_release(r->emu, 1)) {
            /* the commit failed: answered like a failed request of the change set */
            emu_req e;
            memset(&e, 0, sizeof e);
            emu_error(&e, 500, "0x80040216", "The change set could not be committed.");
            free(as[0].text);
            as[0].status = 500;
            as[0].text = serialize(&e);
            sub_free(&e);
            bad = 0;
        } else if (bad >= 0) {
            store_release(r->emu, 0);
        }
        if (bad >= 0) store_reload(r->emu); /* a rolled-back import leaves no table behind */
        if (bad >= 0) {
            put_part(&o, rb, &as[bad]);
            if (!failed_status) failed_status = as[bad].status;
        } else {
            char cid[37], cb[64];
            guid_new(cid);
            snprintf(cb, sizeof cb, "changesetresponse_%s", cid);
            sb_printf(&o, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", rb, cb);
            for (int j = 0; j < n; j++)
                put_part(&o, cb, &as[j]);
            sb_printf(&o, "--%s--\r\n", cb);
        }
        answers_free(as, n);
    }
    sb_printf(&o, "--%s--\r\n", rb);
    mp_free(&doc);
    sb_free(&r->out);
    r->out = o;
    r->status = failed_status && !go_on ? failed_status : 200;
    char ctv[96];
    snprintf(ctv, sizeof ctv, "multipart/mixed; boundary=%s", rb);
    emu_add_header(r, "Content-Type", ctv);
    r->content_type = NULL;
    return 0;
}
