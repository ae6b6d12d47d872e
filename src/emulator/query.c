#include "query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_END, T_IDENT, T_STRING, T_INT, T_REAL, T_GUID, T_DATE, T_LP, T_RP, T_COMMA, T_BAD };

typedef struct {
    const char *src, *p;
    int tok;
    const char *ts; /* token start */
    size_t tn;      /* token length */
    query_filter *q;
    const char *type_name;
    query_resolver resolve;
    void *ud;
    int depth;
} parser;

static int is_hex(int c)
{
    return isxdigit(c);
}

static int match_guid(const char *p)
{
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') return 0;
        } else if (!is_hex((unsigned char)p[i])) {
            return 0;
        }
    }
    return !isalnum((unsigned char)p[36]);
}

/* Length of a date or date-time literal at p (2024-01-31 or 2024-01-31T10:00:00Z...), or 0. */
static size_t match_date(const char *p)
{
    if (!(isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
          isdigit((unsigned char)p[2]) && isdigit((unsigned char)p[3]) && p[4] == '-' &&
          isdigit((unsigned char)p[5]) && isdigit((unsigned char)p[6]) && p[7] == '-' &&
          isdigit((unsigned char)p[8]) && isdigit((unsigned char)p[9])))
        return 0;
    size_t n = 10;
    if (p[n] == 'T') {
        n++;
        while (isdigit((unsigned char)p[n]) || p[n] == ':' || p[n] == '.')
            n++;
        if (p[n] == 'Z')
            n++;
        else if ((p[n] == '+' || p[n] == '-') && isdigit((unsigned char)p[n + 1])) {
            n++;
            while (isdigit((unsigned char)p[n]) || p[n] == ':')
                n++;
        }
    }
    return n;
}

static void next(parser *ps)
{
    const char *p = ps->p;
    while (*p == ' ' || *p == '\t')
        p++;
    ps->ts = p;
    size_t n;
    if (!*p) {
        ps->tok = T_END, ps->tn = 0;
    } else if (*p == '(') {
        ps->tok = T_LP, ps->tn = 1;
    } else if (*p == ')') {
        ps->tok = T_RP, ps->tn = 1;
    } else if (*p == ',') {
        ps->tok = T_COMMA, ps->tn = 1;
    } else if (*p == '\'') {
        const char *s = p + 1;
        for (;;) {
            if (!*s) {
                ps->tok = T_BAD, ps->tn = (size_t)(s - p);
                ps->p = s;
                return;
            }
            if (*s == '\'') {
                if (s[1] == '\'') {
                    s += 2;
                    continue;
                }
                break;
            }
            s++;
        }
        ps->tok = T_STRING, ps->tn = (size_t)(s + 1 - p);
    } else if (match_guid(p)) {
        ps->tok = T_GUID, ps->tn = 36;
    } else if ((n = match_date(p)) > 0) {
        ps->tok = T_DATE, ps->tn = n;
    } else if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
        const char *s = p + 1;
        int real = 0;
        while (isdigit((unsigned char)*s))
            s++;
        if (*s == '.' && isdigit((unsigned char)s[1])) {
            real = 1, s++;
            while (isdigit((unsigned char)*s))
                s++;
        }
        if ((*s == 'e' || *s == 'E') &&
            (isdigit((unsigned char)s[1]) ||
             ((s[1] == '-' || s[1] == '+') && isdigit((unsigned char)s[2])))) {
            real = 1, s += 2;
            while (isdigit((unsigned char)*s))
                s++;
        }
        if (*s == 'm' || *s == 'M' || *s == 'd' || *s == 'D' || *s == 'f' || *s == 'F' ||
            *s == 'L' || *s == 'l')
            s++; /* OData numeric suffixes */
        ps->tok = real ? T_REAL : T_INT, ps->tn = (size_t)(s - p);
    } else if (isalpha((unsigned char)*p) || *p == '_') {
        const char *s = p;
        while (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '/')
            s++;
        ps->tok = T_IDENT, ps->tn = (size_t)(s - p);
    } else {
        ps->tok = T_BAD, ps->tn = 1;
    }
    ps->p = ps->ts + ps->tn;
}

static int syntax(parser *ps)
{
    snprintf(ps->q->err, sizeof ps->q->err, "Syntax error at position %d in '%s'.",
             (int)(ps->ts - ps->src) + 1, ps->src);
    return -1;
}

static int is_word(parser *ps, const char *w)
{
    return ps->tok == T_IDENT && strlen(w) == ps->tn && strncmp(ps->ts, w, ps->tn) == 0;
}

static query_value *add_val(query_filter *q)
{
    if (q->n_vals == q->cap_vals) {
        q->cap_vals = q->cap_vals ? q->cap_vals * 2 : 8;
        q->vals = realloc(q->vals, sizeof *q->vals * (size_t)q->cap_vals);
    }
    query_value *v = &q->vals[q->n_vals++];
    memset(v, 0, sizeof *v);
    return v;
}

static int param_no(query_filter *q)
{
    return q->first_param + q->n_vals - 1;
}

static const char *kind_name(int k)
{
    switch (k) {
    case QK_STRING:
        return "Edm.String";
    case QK_NUMBER:
        return "Edm.Int32";
    case QK_BOOL:
        return "Edm.Boolean";
    case QK_DATE:
        return "Edm.DateTimeOffset";
    default:
        return "Edm.Guid";
    }
}

static int property(parser *ps, char *expr, size_t cap)
{
    if (ps->tok != T_IDENT) return syntax(ps);
    int kind = ps->resolve(ps->ud, ps->ts, ps->tn, expr, cap);
    if (!kind) {
        snprintf(ps->q->err, sizeof ps->q->err,
                 "Could not find a property named '%.*s' on type 'Microsoft.Dynamics.CRM.%s'.",
                 (int)ps->tn, ps->ts, ps->type_name);
        ps->q->unknown = 1;
        return -1;
    }
    next(ps);
    return kind;
}

/* Reads a literal into a new bound value; returns its kind, 'z' for null, or -1. */
static int literal(parser *ps)
{
    query_filter *q = ps->q;
    int kind;
    if (ps->tok == T_STRING) {
        query_value *v = add_val(q);
        v->type = SQLITE_TEXT;
        v->text = malloc(ps->tn);
        size_t o = 0;
        for (size_t i = 1; i + 1 < ps->tn; i++) {
            v->text[o++] = ps->ts[i];
            if (ps->ts[i] == '\'') i++;
        }
        v->text[o] = 0;
        kind = QK_STRING;
    } else if (ps->tok == T_GUID || ps->tok == T_DATE) {
        query_value *v = add_val(q);
        v->type = SQLITE_TEXT;
        v->text = strndup(ps->ts, ps->tn);
        if (ps->tok == T_GUID)
            for (char *c = v->text; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        kind = ps->tok == T_GUID ? QK_GUID : QK_DATE;
    } else if (ps->tok == T_INT || ps->tok == T_REAL) {
        query_value *v = add_val(q);
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(ps->tn < 63 ? ps->tn : 63), ps->ts);
        if (ps->tok == T_INT)
            v->type = SQLITE_INTEGER, v->i = strtoll(tmp, NULL, 10);
        else
            v->type = SQLITE_FLOAT, v->d = strtod(tmp, NULL);
        kind = QK_NUMBER;
    } else if (is_word(ps, "true") || is_word(ps, "false")) {
        query_value *v = add_val(q);
        v->type = SQLITE_INTEGER;
        v->i = is_word(ps, "true");
        kind = QK_BOOL;
    } else if (is_word(ps, "null")) {
        kind = 'z';
    } else {
        return syntax(ps);
    }
    next(ps);
    return kind;
}

static int compatible(int col, int lit)
{
    if (col == lit) return 1;
    if (col == QK_GUID && lit == QK_STRING) return 1;
    if (col == QK_DATE && lit == QK_STRING) return 1;
    if (col == QK_STRING && (lit == QK_GUID || lit == QK_DATE)) return 1;
    return 0;
}

static int expr_or(parser *ps);

static int primary(parser *ps)
{
    sbuf *out = &ps->q->sql;
    if (ps->tok == T_LP) {
        if (++ps->depth > 100) return syntax(ps);
        next(ps);
        sb_putc(out, '(');
        if (expr_or(ps)) return -1;
        if (ps->tok != T_RP) return syntax(ps);
        sb_putc(out, ')');
        ps->depth--;
        next(ps);
        return 0;
    }
    if (ps->tok != T_IDENT) return syntax(ps);
    static const char *funcs[] = {"contains", "startswith", "endswith"};
    for (int f = 0; f < 3; f++) {
        if (!is_word(ps, funcs[f])) continue;
        const char *fs = ps->ts;
        next(ps);
        if (ps->tok != T_LP) return syntax(ps);
        next(ps);
        char expr[256];
        int kind = property(ps, expr, sizeof expr);
        if (kind < 0) return -1;
        if (ps->tok != T_COMMA) return syntax(ps);
        next(ps);
        if (ps->tok != T_STRING) return syntax(ps);
        if (kind != QK_STRING) {
            snprintf(ps->q->err, sizeof ps->q->err,
                     "No function signature for the function with name '%s' matches the "
                     "specified arguments.",
                     funcs[f]);
            return -1;
        }
        if (literal(ps) < 0) return -1;
        query_value *v = &ps->q->vals[ps->q->n_vals - 1];
        /* Escape LIKE wildcards so the value matches literally. */
        sbuf pat = {0};
        if (f != 1) sb_putc(&pat, '%');
        for (const char *c = v->text; *c; c++) {
            if (*c == '%' || *c == '_' || *c == '\\') sb_putc(&pat, '\\');
            sb_putc(&pat, *c);
        }
        if (f != 2) sb_putc(&pat, '%');
        free(v->text);
        v->text = strdup(sb_str(&pat));
        sb_free(&pat);
        if (ps->tok != T_RP) return syntax(ps);
        next(ps);
        (void)fs;
        sb_printf(out, "(%s LIKE ?%d ESCAPE '\\')", expr, param_no(ps->q));
        return 0;
    }
    char expr[256];
    int kind = property(ps, expr, sizeof expr);
    if (kind < 0) return -1;
    static const char *ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    static const char *sqlops[] = {"=", "<>", ">", ">=", "<", "<="};
    static const char *opnames[] = {
        "Equal", "NotEqual", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"};
    int op = -1;
    for (int i = 0; i < 6; i++)
        if (is_word(ps, ops[i])) op = i;
    if (op < 0) return syntax(ps);
    next(ps);
    int lit = literal(ps);
    if (lit < 0) return -1;
    if (lit == 'z') {
        if (op > 1) {
            snprintf(ps->q->err, sizeof ps->q->err, "The operator '%s' cannot be used with null.",
                     ops[op]);
            return -1;
        }
        sb_printf(out, "(%s IS %sNULL)", expr, op == 1 ? "NOT " : "");
        return 0;
    }
    if (!compatible(kind, lit)) {
        snprintf(ps->q->err, sizeof ps->q->err,
                 "A binary operator with incompatible types was detected. Found operand types "
                 "'%s' and '%s' for operator kind '%s'.",
                 kind_name(kind), kind_name(lit), opnames[op]);
        return -1;
    }
    sb_printf(out, "(%s %s ?%d%s)", expr, sqlops[op], param_no(ps->q),
              kind == QK_STRING ? " COLLATE NOCASE" : "");
    return 0;
}

static int expr_not(parser *ps)
{
    if (is_word(ps, "not")) {
        next(ps);
        sb_puts(&ps->q->sql, "NOT ");
        if (++ps->depth > 100) return syntax(ps);
        int rc = expr_not(ps);
        ps->depth--;
        return rc;
    }
    return primary(ps);
}

static int expr_and(parser *ps)
{
    if (expr_not(ps)) return -1;
    while (is_word(ps, "and")) {
        next(ps);
        sb_puts(&ps->q->sql, " AND ");
        if (expr_not(ps)) return -1;
    }
    return 0;
}

static int expr_or(parser *ps)
{
    if (expr_and(ps)) return -1;
    while (is_word(ps, "or")) {
        next(ps);
        sb_puts(&ps->q->sql, " OR ");
        if (expr_and(ps)) return -1;
    }
    return 0;
}

int query_filter_compile(query_filter *q, const char *filter, const char *type_name,
                         query_resolver resolve, void *ud, int first_param)
{
    memset(q, 0, sizeof *q);
    q->first_param = first_param;
    parser ps = {filter, filter, 0, filter, 0, q, type_name, resolve, ud, 0};
    next(&ps);
    sb_putc(&q->sql, '(');
    if (expr_or(&ps)) return -1;
    if (ps.tok != T_END) return syntax(&ps);
    sb_putc(&q->sql, ')');
    return 0;
}

void query_filter_bind(const query_filter *q, sqlite3_stmt *st)
{
    for (int i = 0; i < q->n_vals; i++) {
        const query_value *v = &q->vals[i];
        int idx = q->first_param + i;
        if (v->type == SQLITE_TEXT)
            sqlite3_bind_text(st, idx, v->text, -1, SQLITE_STATIC);
        else if (v->type == SQLITE_INTEGER)
            sqlite3_bind_int64(st, idx, v->i);
        else
            sqlite3_bind_double(st, idx, v->d);
    }
}

void query_filter_free(query_filter *q)
{
    for (int i = 0; i < q->n_vals; i++)
        free(q->vals[i].text);
    free(q->vals);
    sb_free(&q->sql);
    q->vals = NULL;
    q->n_vals = q->cap_vals = 0;
}

int query_orderby_compile(sbuf *out, const char *orderby, const char *type_name,
                          query_resolver resolve, void *ud, char *err, size_t errlen)
{
    const char *p = orderby;
    int first = 1;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0) {
            snprintf(err, errlen, "Syntax error at position %d in '%s'.", (int)(s - orderby) + 1,
                     orderby);
            return -1;
        }
        char expr[256];
        int kind = resolve(ud, s, n, expr, sizeof expr);
        if (!kind) {
            snprintf(err, errlen,
                     "Could not find a property named '%.*s' on type 'Microsoft.Dynamics.CRM.%s'.",
                     (int)n, s, type_name);
            return -1;
        }
        while (*p == ' ')
            p++;
        const char *dir = "ASC";
        if (strncmp(p, "desc", 4) == 0 && !isalnum((unsigned char)p[4]))
            dir = "DESC", p += 4;
        else if (strncmp(p, "asc", 3) == 0 && !isalnum((unsigned char)p[3]))
            p += 3;
        /* Dataverse sorts text case-insensitively (its SQL collation does). */
        sb_printf(out, "%s%s%s %s", first ? "" : ", ", expr,
                  kind == QK_STRING ? " COLLATE NOCASE" : "", dir);
        first = 0;
        while (*p == ' ')
            p++;
        if (!*p) return 0;
        if (*p != ',') {
            snprintf(err, errlen, "Syntax error at position %d in '%s'.", (int)(p - orderby) + 1,
                     orderby);
            return -1;
        }
        p++;
    }
}
