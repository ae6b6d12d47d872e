/* libFuzzer target for the $batch multipart/mixed parser (src/emulator/multipart.c), which
 * reads request bodies straight from clients. Input: the first line is the Content-Type
 * header value (its boundary is taken with mp_boundary), the rest the body. Every part found,
 * nested change sets included, is also parsed as an application/http request. Beyond "no
 * crash, leak or undefined behaviour": a failure always says why, and every part's body lies
 * inside the input. Build: make fuzz. Run: make fuzz-short, or see docs/FUZZ.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lo, *hi;

static void check_parts(const mp_part *p, int n)
{
    for (int i = 0; i < n; i++) {
        if (p[i].body_len && (p[i].body < lo || p[i].body + p[i].body_len > hi)) abort();
        if (p[i].is_multipart) {
            check_parts(p[i].parts, p[i].n_parts);
            continue;
        }
        mp_http h;
        char err[256] = "";
        memset(&h, 0, sizeof h);
        if (mp_parse_http(p[i].body, p[i].body_len, &h, err, sizeof err) == 0) {
            if (h.body_len && (h.body < lo || h.body + h.body_len > hi)) abort();
            mp_header_get(h.hdrs, h.n_hdrs, "Content-Type");
            mp_http_free(&h);
        } else if (!err[0]) {
            abort();
        }
        mp_header_get(p[i].hdrs, p[i].n_hdrs, "Content-ID");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    size_t hlen = (size_t)(nl - data);
    char *ctype = malloc(hlen + 1);
    if (!ctype) return 0;
    memcpy(ctype, data, hlen);
    ctype[hlen] = 0;
    char boundary[128];
    if (mp_boundary(ctype, boundary, sizeof boundary) == 0) {
        /* An exact-size heap copy so that ASan sees any read past the end. */
        size_t blen = size - hlen - 1;
        char *body = malloc(blen ? blen : 1);
        if (body) {
            memcpy(body, nl + 1, blen);
            lo = body;
            hi = body + blen;
            mp_doc d;
            char err[256] = "";
            memset(&d, 0, sizeof d);
            if (mp_parse(body, blen, boundary, &d, err, sizeof err) == 0) {
                check_parts(d.parts, d.n_parts);
                mp_free(&d);
            } else if (!err[0]) {
                abort();
            }
            free(body);
        }
    }
    free(ctype);
    return 0;
}
