#include "lua_pg.h"

#include <lauxlib.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy_text.h"

#define CONN_MT "dataverse_pg.connection"
#define ERROR_MT "dataverse_pg.error"

/* Type OIDs fixed by PostgreSQL's catalog (pg_type.dat); the header that names them is the
 * server's, not libpq's. */
enum {
    BOOL_OID = 16,
    INT8_OID = 20,
    INT2_OID = 21,
    INT4_OID = 23,
    FLOAT4_OID = 700,
    FLOAT8_OID = 701
};

/* COPY data goes to libpq in chunks of about this size. */
#define COPY_CHUNK (256 * 1024)

typedef struct {
    PGconn *conn;
    pgc_buf buf; /* COPY data, kept between calls */
} pg_box;

/* ---- errors ---- */

static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "PostgreSQL error");
    return 1;
}

/* Raises {message=, sqlstate=} (row and column when not 0). The message loses libpq's
 * trailing newline and its "ERROR:  " prefix. */
static int raise_error(lua_State *L, const char *msg, const char *sqlstate, int row, int col)
{
    if (!msg || !*msg) msg = "unknown error";
    if (strncmp(msg, "ERROR:  ", 8) == 0) msg += 8;
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, msg, n);
    lua_setfield(L, -2, "message");
    if (sqlstate && *sqlstate) {
        lua_pushstring(L, sqlstate);
        lua_setfield(L, -2, "sqlstate");
    }
    if (row > 0) {
        lua_pushinteger(L, row);
        lua_setfield(L, -2, "row");
        lua_pushinteger(L, col);
        lua_setfield(L, -2, "column");
    }
    luaL_setmetatable(L, ERROR_MT);
    return lua_error(L);
}

/* Raises the error of a result (or of the connection when there is no result), freeing it. */
static int raise_result(lua_State *L, PGconn *c, PGresult *res)
{
    char msg[1024], state[8] = "";
    const char *m = res ? PQresultErrorMessage(res) : "";
    if (!m || !*m) m = PQerrorMessage(c);
    snprintf(msg, sizeof msg, "%s", m);
    if (res) {
        const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (s) snprintf(state, sizeof state, "%s", s);
        PQclear(res);
    }
    return raise_error(L, msg, state, 0, 0);
}

static pg_box *check_open(lua_State *L)
{
    pg_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (!b->conn) luaL_argerror(L, 1, "the PostgreSQL connection is closed");
    return b;
}

/* ---- connect, close ---- */

static int l_connect(lua_State *L)
{
    const char *info = luaL_optstring(L, 1, "");
    pg_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, CONN_MT);
    b->conn = PQconnectdb(info);
    if (!b->conn) return raise_error(L, "out of memory", NULL, 0, 0);
    if (PQstatus(b->conn) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(b->conn));
        PQfinish(b->conn);
        b->conn = NULL;
        return raise_error(L, msg, NULL, 0, 0);
    }
    /* COPY text and results are UTF-8, as the JSON they come from. */
    if (PQsetClientEncoding(b->conn, "UTF8") != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(b->conn));
        PQfinish(b->conn);
        b->conn = NULL;
        return raise_error(L, msg, NULL, 0, 0);
    }
    return 1;
}

static int l_close(lua_State *L)
{
    pg_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (b->conn) {
        PQfinish(b->conn);
        b->conn = NULL;
    }
    pgc_free(&b->buf);
    return 0;
}

static int l_tostring(lua_State *L)
{
    pg_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (!b->conn) {
        lua_pushliteral(L, "dataverse_pg connection (closed)");
        return 1;
    }
    /* Database and host only: nothing of the credentials. */
    const char *db = PQdb(b->conn), *host = PQhost(b->conn);
    lua_pushfstring(L, "dataverse_pg connection (%s on %s)", db ? db : "?", host ? host : "?");
    return 1;
}

static int l_status(lua_State *L)
{
    pg_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (!b->conn) {
        lua_pushliteral(L, "closed");
        return 1;
    }
    if (PQstatus(b->conn) != CONNECTION_OK) {
        lua_pushliteral(L, "broken");
        return 1;
    }
    switch (PQtransactionStatus(b->conn)) {
    case PQTRANS_IDLE:
        lua_pushliteral(L, "idle");
        break;
    case PQTRANS_INTRANS:
        lua_pushliteral(L, "transaction");
        break;
    case PQTRANS_INERROR:
        lua_pushliteral(L, "failed transaction");
        break;
    case PQTRANS_ACTIVE:
        lua_pushliteral(L, "busy");
        break;
    default:
        lua_pushliteral(L, "unknown");
    }
    return 1;
}

/* ---- statements ---- */

/* Text of the parameter at index i for PQexecParams (NULL for nil). Formatted numbers are
 * pushed on the stack, which keeps them alive until the call returns. */
static const char *param_text(lua_State *L, int i)
{
    char tmp[40];
    switch (lua_type(L, i)) {
    case LUA_TNIL:
        return NULL;
    case LUA_TBOOLEAN:
        return lua_toboolean(L, i) ? "true" : "false";
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        if (strlen(s) != len) luaL_argerror(L, i, "a text value cannot hold a NUL byte");
        return s;
    }
    case LUA_TNUMBER: {
        pgc_buf b = {tmp, 0, sizeof tmp};
        if (lua_isinteger(L, i))
            pgc_int(&b, (long long)lua_tointeger(L, i));
        else
            pgc_double(&b, lua_tonumber(L, i));
        lua_pushlstring(L, b.data, b.len);
        return lua_tostring(L, -1);
    }
    default:
        luaL_argerror(L, i, lua_pushfstring(L, "a %s cannot be a parameter", luaL_typename(L, i)));
        return NULL;
    }
}

/* Runs the statement at index 2 with the parameters after it; returns its result, or raises. */
static PGresult *run(lua_State *L, pg_box *b)
{
    const char *sql = luaL_checkstring(L, 2);
    int top = lua_gettop(L), n = top - 2;
    const char *stack[32];
    const char **vals = stack;
    if (n > (int)(sizeof stack / sizeof stack[0]))
        vals = lua_newuserdatauv(L, sizeof *vals * (size_t)n, 0);
    luaL_checkstack(L, n + 4, "too many parameters");
    for (int i = 0; i < n; i++)
        vals[i] = param_text(L, 3 + i);
    PGresult *res = PQexecParams(b->conn, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) raise_result(L, b->conn, res);
    return res;
}

static int l_exec(lua_State *L)
{
    pg_box *b = check_open(L);
    PGresult *res = run(L, b);
    const char *n = PQcmdTuples(res);
    lua_Integer count = (n && *n) ? (lua_Integer)strtoll(n, NULL, 10) : 0;
    PQclear(res);
    lua_pushinteger(L, count);
    return 1;
}

static void push_value(lua_State *L, PGresult *res, int r, int c)
{
    const char *v = PQgetvalue(res, r, c);
    size_t len = (size_t)PQgetlength(res, r, c);
    switch (PQftype(res, c)) {
    case BOOL_OID:
        lua_pushboolean(L, v[0] == 't');
        return;
    case INT2_OID:
    case INT4_OID:
    case INT8_OID:
    case FLOAT4_OID:
    case FLOAT8_OID:
        if (lua_stringtonumber(L, v) != 0) return;
        break;
    default:
        break;
    }
    lua_pushlstring(L, v, len);
}

static int l_query(lua_State *L)
{
    pg_box *b = check_open(L);
    PGresult *res = run(L, b);
    int rows = PQntuples(res), cols = PQnfields(res);
    lua_createtable(L, rows, 0);
    for (int r = 0; r < rows; r++) {
        lua_createtable(L, 0, cols);
        for (int c = 0; c < cols; c++) {
            if (PQgetisnull(res, r, c)) continue;
            push_value(L, res, r, c);
            lua_setfield(L, -2, PQfname(res, c));
        }
        lua_rawseti(L, -2, r + 1);
    }
    PQclear(res);
    return 1;
}

/* ---- COPY ---- */

/* Appends one field; returns NULL or what was wrong with the value. */
static const char *copy_field(lua_State *L, pgc_buf *buf, int idx)
{
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        rc = pgc_null(buf);
        break;
    case LUA_TBOOLEAN:
        rc = pgc_raw(buf, lua_toboolean(L, idx) ? "t" : "f", 1);
        break;
    case LUA_TNUMBER:
        rc = lua_isinteger(L, idx) ? pgc_int(buf, (long long)lua_tointeger(L, idx))
                                   : pgc_double(buf, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        rc = pgc_text(buf, s, len);
        if (rc == -2) return "a text value cannot hold a NUL byte";
        break;
    }
    default:
        return "only strings, numbers, booleans and nil can be written";
    }
    return rc ? "out of memory" : NULL;
}

static int send_chunk(pg_box *b)
{
    if (b->buf.len == 0) return 0;
    int rc = PQputCopyData(b->conn, b->buf.data, (int)b->buf.len);
    b->buf.len = 0;
    return rc == 1 ? 0 : -1;
}

/* c:copy(sql, rows, ncol [, first, last]): sql a COPY … FROM STDIN (text format; statements
 * without parameters may precede it in the same text, as in "SAVEPOINT p; COPY …"), rows an
 * array of arrays of ncol values (nil allowed). Returns the number of rows copied. A bad
 * value ends the COPY with nothing written and raises naming its row and column. */
static int l_copy(lua_State *L)
{
    pg_box *b = check_open(L);
    const char *sql = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer ncol = luaL_checkinteger(L, 4);
    lua_Integer first = luaL_optinteger(L, 5, 1);
    lua_Integer last = luaL_optinteger(L, 6, (lua_Integer)lua_rawlen(L, 3));
    luaL_argcheck(L, ncol > 0 && ncol < 1600, 4, "the number of columns must be 1 to 1599");

    PGresult *res = PQexec(b->conn, sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            return luaL_argerror(L, 2, "not a COPY … FROM STDIN statement");
        }
        return raise_result(L, b->conn, res);
    }
    PQclear(res);

    const char *bad = NULL;
    int bad_row = 0, bad_col = 0, io_failed = 0;
    b->buf.len = 0;
    for (lua_Integer r = first; r <= last && !bad && !io_failed; r++) {
        if (lua_rawgeti(L, 3, r) != LUA_TTABLE) {
            bad = "a row must be a table";
            bad_row = (int)r;
            lua_pop(L, 1);
            break;
        }
        for (lua_Integer c = 1; c <= ncol; c++) {
            if (c > 1 && pgc_raw(&b->buf, "\t", 1)) bad = "out of memory";
            lua_rawgeti(L, -1, c);
            if (!bad) bad = copy_field(L, &b->buf, -1);
            lua_pop(L, 1);
            if (bad) {
                bad_row = (int)r;
                bad_col = (int)c;
                break;
            }
        }
        lua_pop(L, 1);
        if (!bad && pgc_raw(&b->buf, "\n", 1)) bad = "out of memory";
        if (!bad && b->buf.len >= COPY_CHUNK && send_chunk(b)) io_failed = 1;
    }
    if (!bad && !io_failed && send_chunk(b)) io_failed = 1;
    /* A refused COPY keeps nothing of what was sent. */
    PQputCopyEnd(b->conn, bad ? bad : NULL);
    if (b->buf.cap > 4 * COPY_CHUNK) pgc_free(&b->buf);
    b->buf.len = 0;
    res = PQgetResult(b->conn);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    /* Drains whatever follows, so the connection is ready for the next statement. */
    PGresult *more;
    while ((more = PQgetResult(b->conn)) != NULL)
        PQclear(more);
    if (bad) {
        if (res) PQclear(res);
        return raise_error(L, bad, "22000", bad_row, bad_col);
    }
    if (st != PGRES_COMMAND_OK) return raise_result(L, b->conn, res);
    const char *n = PQcmdTuples(res);
    lua_pushinteger(L, (n && *n) ? (lua_Integer)strtoll(n, NULL, 10) : 0);
    PQclear(res);
    return 1;
}

int luaopen_dataverse_pg(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"exec", l_exec},     {"query", l_query}, {"copy", l_copy},
        {"status", l_status}, {"close", l_close}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_close},
        {"__close", l_close},
        {"__tostring", l_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {{"connect", l_connect}, {NULL, NULL}};
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, CONN_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushliteral(L, "libpq");
    lua_setfield(L, -2, "driver");
    return 1;
}
