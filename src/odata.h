/* OData URL pieces for the Dataverse Web API: a growable byte buffer, percent-encoding,
 * literal quoting ('O''Brien'), key segments and query strings. Pure functions: no I/O. */
#ifndef DV_ODATA_H
#define DV_ODATA_H
#include <stddef.h>

typedef struct dv_buf {
    char *p; /* always NUL-terminated once anything was written */
    size_t len, cap;
} dv_buf;

/* Each returns 0, or -1 when memory ran out (the buffer keeps what it had). */
int dv_buf_put(dv_buf *b, const void *s, size_t n);
int dv_buf_puts(dv_buf *b, const char *s);
int dv_buf_putc(dv_buf *b, char c);
void dv_buf_free(dv_buf *b);

/* Where a percent-encoded piece goes: each allows a different set of characters through. */
typedef enum {
    DV_PCT_PATH,  /* a key segment: sub-delims such as ' ( ) , = stay as they are */
    DV_PCT_QUERY, /* a query option value: & = + # % and spaces are encoded */
} dv_pct_where;

int dv_odata_pct_encode(dv_buf *b, const char *s, size_t n, dv_pct_where where);

/* An OData string literal: the value between single quotes, each quote doubled. */
int dv_odata_string_literal(dv_buf *b, const char *s, size_t n);

/* 1 when s is a GUID in the 8-4-4-4-12 hex form, braces not accepted. */
int dv_odata_is_guid(const char *s, size_t n);

/* One alternate-key column. */
typedef enum { DV_KEY_STRING, DV_KEY_INTEGER, DV_KEY_NUMBER, DV_KEY_BOOLEAN } dv_key_kind;
typedef struct {
    const char *name;
    const char *value; /* textual form of the value (numbers already formatted) */
    size_t value_len;
    dv_key_kind kind;
} dv_key_part;

/* Writes "name='v',name2=2" (parts sorted by name, so a key always gives the same URL),
 * percent-encoded for a path. Column names must be plain identifiers. Returns 0, or -1 with
 * a message in err. parts is reordered in place. */
int dv_odata_key(dv_buf *b, dv_key_part *parts, size_t n, char *err, size_t errlen);

/* 1 when s is a plain OData identifier (letters, digits, '_', not starting with a digit). */
int dv_odata_is_identifier(const char *s, size_t n);

/* Appends "?name=value" or "&name=value" (value percent-encoded for a query), keeping track
 * of whether the query has started in *started. */
int dv_odata_query_param(dv_buf *b, int *started, const char *name, const char *value, size_t n);

/* Finds name's value in url's query string and appends it percent-decoded ('+' kept as is).
 * Returns 1 when found, 0 when absent, -1 when memory ran out. */
int dv_odata_query_value(const char *url, const char *name, dv_buf *out);

#endif
