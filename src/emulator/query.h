/* OData $filter and $orderby compiled to SQL. Every literal becomes a bound parameter; the
 * only names in the SQL text are column expressions the caller's resolver supplies. */
#ifndef DV_EMU_QUERY_H
#define DV_EMU_QUERY_H
#include <sqlite3.h>
#include <stddef.h>

#include "sbuf.h"

/* What a property compares as. */
enum { QK_STRING = 's', QK_NUMBER = 'n', QK_BOOL = 'b', QK_DATE = 'd', QK_GUID = 'g' };

/* Resolves a property name: returns its kind (QK_*) and writes the SQL expression that
 * yields its value into expr; returns 0 for an unknown property. */
typedef int (*query_resolver)(void *ud, const char *name, size_t n, char *expr, size_t cap);

typedef struct {
    int type; /* SQLITE_TEXT, SQLITE_INTEGER or SQLITE_FLOAT */
    char *text;
    long long i;
    double d;
} query_value;

typedef struct {
    sbuf sql; /* a boolean SQL expression */
    query_value *vals;
    int n_vals, cap_vals;
    int first_param;
    char err[512]; /* set when compiling failed */
    int unknown;   /* the failure was an unknown property (err names it) */
    int unserved;  /* the failure was a documented feature the emulator does not serve */
} query_filter;

/* Compiles filter; parameters are numbered from first_param. type_name names the type in
 * messages ("account"). Returns 0, or -1 with q->err set. */
int query_filter_compile(query_filter *q, const char *filter, const char *type_name,
                         query_resolver resolve, void *ud, int first_param);
void query_filter_bind(const query_filter *q, sqlite3_stmt *st);
void query_filter_free(query_filter *q);

/* Compiles "$orderby" ("a desc,b") into SQL ("x DESC, y ASC") appended to out. */
int query_orderby_compile(sbuf *out, const char *orderby, const char *type_name,
                          query_resolver resolve, void *ud, char *err, size_t errlen);

#endif
