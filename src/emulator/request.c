/* Reading a request and building its answer, over libmicrohttpd's connection values. */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "request.h"

const char *emu_arg(emu_req *r, const char *name)
{
    if (!r->conn) {
        for (int i = 0; i < r->n_sub_args; i++)
            if (strcmp(r->sub_args[i].name, name) == 0) return r->sub_args[i].value;
        return NULL;
    }
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *emu_header(emu_req *r, const char *name)
{
    if (!r->conn) {
        for (int i = 0; i < r->n_sub_hdrs; i++)
            if (strcasecmp(r->sub_hdrs[i].name, name) == 0) return r->sub_hdrs[i].value;
        return NULL;
    }
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

/* The value list of Prefer: odata.include-annotations="…" (len set), or NULL. */
static const char *annotation_list(emu_req *r, size_t *len)
{
    const char *h = r->conn ? emu_header(r, "Prefer") : NULL;
    const char *p = h ? strstr(h, "odata.include-annotations=") : NULL;
    if (!p) return NULL;
    p += strlen("odata.include-annotations=");
    if (*p == '"') {
        const char *end = strchr(++p, '"');
        *len = end ? (size_t)(end - p) : strlen(p);
    } else {
        *len = strcspn(p, ", ");
    }
    return p;
}

int emu_annotation_wanted(emu_req *r, const char *name)
{
    size_t len = 0;
    const char *list = annotation_list(r, &len);
    size_t i = 0;
    while (list && i < len) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        const char *p = list + i;
        size_t n = j - i;
        while (n && *p == ' ')
            p++, n--;
        /* "*", the name itself, or a prefix ending in '*' ("Microsoft.Dynamics.CRM.*",
         * "Microsoft.PowerApps.CDS.ErrorDetails*") */
        if ((n == strlen(name) && memcmp(p, name, n) == 0) ||
            (n >= 1 && p[n - 1] == '*' && strncmp(name, p, n - 1) == 0))
            return 1;
        i = j + 1;
    }
    return 0;
}

void emu_annotations_applied(emu_req *r)
{
    size_t len = 0;
    const char *list = annotation_list(r, &len);
    if (!list) return;
    char v[512];
    snprintf(v, sizeof v, "odata.include-annotations=\"%.*s\"", (int)(len < 400 ? len : 400), list);
    emu_add_header(r, "Preference-Applied", v);
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
    /* "Compose HTTP requests and handle errors": more details when annotations are asked for */
    if (strncmp(code, "0x", 2) == 0 && emu_annotation_wanted(r, "Microsoft.PowerApps.CDS.HelpLink"))
        sb_printf(&r->out,
                  ",\"@Microsoft.PowerApps.CDS.HelpLink\":\"http://go.microsoft.com/fwlink/"
                  "?LinkID=398563&error=Microsoft.Crm.CrmException%%3a%s&client=platform\"",
                  code + 2);
    if (emu_annotation_wanted(r, "Microsoft.PowerApps.CDS.InnerError.Message")) {
        sb_puts(&r->out, ",\"@Microsoft.PowerApps.CDS.InnerError.Message\":");
        sb_json_str(&r->out, msg);
    }
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
    if (!r->conn) {
        for (int i = 0; i < r->n_sub_args; i++)
            args_cb(&c, MHD_GET_ARGUMENT_KIND, r->sub_args[i].name, r->sub_args[i].value);
        return;
    }
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, args_cb, &c);
}
