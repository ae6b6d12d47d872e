/* PostgreSQL's COPY text format: a growing buffer of lines, fields separated by tabs, escaped
 * as the server's COPY FROM reads them (backslash, tab, newline, carriage return; \N for
 * NULL). No libpq and no Lua here: the binding (lua_pg.c) feeds values and sends the buffer. */
#ifndef DV_PG_COPY_TEXT_H
#define DV_PG_COPY_TEXT_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
} pgc_buf;

/* Frees the buffer's memory; the buffer is empty and usable afterwards. */
void pgc_free(pgc_buf *b);

/* Appends n raw bytes; returns -1 when memory runs out. */
int pgc_raw(pgc_buf *b, const char *s, size_t n);

/* Appends s escaped as one field. Returns -1 when memory runs out, -2 when s holds a NUL
 * byte (PostgreSQL text cannot store one). */
int pgc_text(pgc_buf *b, const char *s, size_t n);

/* Appends an integer, a double (the shortest decimal that reads back as the same double;
 * NaN and infinities by PostgreSQL's names), or NULL. Return -1 when memory runs out. */
int pgc_int(pgc_buf *b, long long v);
int pgc_double(pgc_buf *b, double v);
int pgc_null(pgc_buf *b);

#endif
