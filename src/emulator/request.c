/* Reading a request and building its answer, over libmicrohttpd's connection values. */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

const char *emu_arg(emu_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *emu_header(emu_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void emu_add_header(emu_req *r, const char *name, const char *value)
{
    if (r->n_hdr == EMU_MAX_HEADERS) return;
    r->hdr_name[r->n_hdr] = strdup(name);
    r->hdr_val[r->n_hdr++] = strdup(value);
}

void emu_json(emu_req *r, int status)
{
    r->status = status;
    r->content_type = "application/json; odata.metadata=minimal";
}

int emu_error(emu_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->out.n = 0;
    emu_json(r, status);
    sb_puts(&r->out, "{\"error\":{\"code\":");
    sb_json_str(&r->out, code);
    sb_puts(&r->out, ",\"message\":");
    sb_json_str(&r->out, msg);
    sb_puts(&r->out, "}}");
    return -1;
}

typedef struct {
    sbuf *b;
    const char *const *skip;
    int first;
} args_ctx;

static enum MHD_Result args_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    args_ctx *c = cls;
    for (const char *const *s = c->skip; s && *s; s++)
        if (strcmp(*s, key) == 0) return MHD_YES;
    if (!c->first) sb_putc(c->b, '&');
    c->first = 0;
    sb_url_enc(c->b, key);
    if (value) {
        sb_putc(c->b, '=');
        sb_url_enc(c->b, value);
    }
    return MHD_YES;
}

void emu_args_except(emu_req *r, sbuf *b, const char *const *skip)
{
    args_ctx c = {b, skip, 1};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, args_cb, &c);
}
