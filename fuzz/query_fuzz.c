/* libFuzzer target for the OData $filter and $orderby compiler (src/emulator/query.c), which
 * reads query strings straight from requests. Input: the first line is a $filter, the rest an
 * $orderby. Beyond "no crash, no leak, no undefined behaviour" it checks that a failure always
 * says why and that a success yields SQL SQLite accepts (every literal a bound parameter, so no
 * input can inject SQL). Build: make fuzz. Run: make fuzz-short, or see docs/FUZZ.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A table with one column of every kind the resolver knows. */
static int resolve(void *ud, const char *name, size_t n, char *expr, size_t cap)
{
    static const struct {
        const char *name;
        int kind;
    } cols[] = {{"name", QK_STRING},    {"revenue", QK_NUMBER}, {"donotemail", QK_BOOL},
                {"createdon", QK_DATE}, {"accountid", QK_GUID}, {"_parentid_value", QK_GUID}};
    (void)ud;
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        if (strlen(cols[i].name) == n && memcmp(cols[i].name, name, n) == 0) {
            snprintf(expr, cap, "c%zu", i);
            return cols[i].kind;
        }
    return 0;
}

static sqlite3 *db;

static void check_sql(const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "compiled SQL refused by SQLite: %s\n%s\n", sqlite3_errmsg(db), sql);
        abort();
    }
    sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) {
        sqlite3_open(":memory:", &db);
        sqlite3_exec(db, "CREATE TABLE t(c0 TEXT, c1 REAL, c2 INTEGER, c3 TEXT, c4 TEXT, c5 TEXT)",
                     NULL, NULL, NULL);
    }
    char *in = malloc(size + 1);
    if (!in) return 0;
    memcpy(in, data, size);
    in[size] = 0;
    char *nl = memchr(in, '\n', size);
    const char *orderby = NULL;
    if (nl) {
        *nl = 0;
        orderby = nl + 1;
    }

    query_filter q;
    memset(&q, 0, sizeof q);
    if (query_filter_compile(&q, in, "account", resolve, NULL, 1) == 0) {
        sbuf sql = {0};
        sb_puts(&sql, "SELECT 1 FROM t WHERE ");
        sb_put(&sql, sb_str(&q.sql), q.sql.n);
        check_sql(sb_str(&sql));
        sb_free(&sql);
    } else if (!q.err[0]) {
        abort(); /* every failure must say why */
    }
    query_filter_free(&q);

    if (orderby) {
        sbuf ob = {0};
        char err[512] = "";
        if (query_orderby_compile(&ob, orderby, "account", resolve, NULL, err, sizeof err) == 0) {
            sbuf sql = {0};
            sb_puts(&sql, "SELECT 1 FROM t ORDER BY ");
            if (ob.n)
                sb_put(&sql, sb_str(&ob), ob.n);
            else
                sb_puts(&sql, "1");
            check_sql(sb_str(&sql));
            sb_free(&sql);
        } else if (!err[0]) {
            abort();
        }
        sb_free(&ob);
    }
    free(in);
    return 0;
}
