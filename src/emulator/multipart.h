/* A strict multipart/mixed parser for OData $batch bodies (RFC 2046 as OData 4.0 §11.7
 * uses it): parts with their MIME headers, one level of nested multipart/mixed (change
 * sets), and the application/http request a part carries. Pure functions over bytes: no
 * I/O, no global state. Line breaks may be CRLF or bare LF (documentation examples and some
 * clients use LF). Parts' bodies point into the caller's buffer, which must outlive them. */
#ifndef DV_EMU_MULTIPART_H
#define DV_EMU_MULTIPART_H
#include <stddef.h>

/* Limits that bound the memory a hostile body can make the parser use. */
#define MP_MAX_PARTS 5000  /* parts at one level */
#define MP_MAX_HEADERS 64  /* header lines in one part or one request */
#define MP_MAX_LINE 65536  /* one header or request line (URLs up to 64 KB are allowed) */
#define MP_MAX_BOUNDARY 70 /* RFC 2046 */

typedef struct {
    char *name, *value; /* value trimmed of surrounding blanks */
} mp_header;

typedef struct mp_part {
    mp_header *hdrs;
    int n_hdrs;
    const char *body; /* into the input; without the line break before the next delimiter */
    size_t body_len;
    struct mp_part *parts; /* when the part is itself multipart/mixed (a change set) */
    int n_parts;
    int is_multipart;
} mp_part;

typedef struct {
    mp_part *parts;
    int n_parts;
} mp_doc;

/* Parses body as multipart/mixed with the given boundary (without the leading "--"). Parts
 * whose Content-Type is multipart/mixed are parsed as nested documents; a nested one inside
 * a nested one is an error. Returns 0, or -1 with a message in err (out is then empty). */
int mp_parse(const char *body, size_t len, const char *boundary, mp_doc *out, char *err,
             size_t errlen);
void mp_free(mp_doc *d);

/* The value of header name (case-insensitive), or NULL. */
const char *mp_header_get(const mp_header *h, int n, const char *name);

/* Copies the boundary parameter of a multipart/mixed Content-Type value into out (quotes
 * removed). Returns 0, or -1 when the type is not multipart/mixed or has no usable boundary. */
int mp_boundary(const char *content_type, char *out, size_t n);

/* An application/http part: "METHOD target HTTP/1.1", headers, blank line, body. */
typedef struct {
    char method[16];
    char *target;
    mp_header *hdrs;
    int n_hdrs;
    const char *body; /* into the input */
    size_t body_len;
} mp_http;

int mp_parse_http(const char *body, size_t len, mp_http *out, char *err, size_t errlen);
void mp_http_free(mp_http *h);

#endif
