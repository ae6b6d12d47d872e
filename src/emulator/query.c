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
    if (ps->tok == T_BAD && *ps->ts == '\'') {
        /* the wording of "Filter rows" (Manage single quotes) */
        snprintf(ps->q->err, sizeof ps->q->err,
                 "There is an unterminated literal at position %d in '%s'.",
                 (int)(ps->ts - ps->src) + 1, ps->src);
        return -1;
    }
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

#define CRM_NS "Microsoft.Dynamics.CRM."
#define MAX_FN_VALUES 64

/* One parameter value of a query function: an OData string ('a''b'), a JSON string
 * ("a\"b", which may hold single quotes) or a bare number; returns its end or NULL. */
static const char *fn_scalar(const char *p, sbuf *out)
{
    while (*p == ' ')
        p++;
    if (*p == '\'' || *p == '"') {
        char q = *p++;
        for (;; p++) {
            if (!*p) return NULL;
            if (q == '"' && *p == '\\' && p[1]) {
                sb_putc(out, *++p);
                continue;
            }
            if (*p == q) {
                if (q == '\'' && p[1] == '\'') {
                    sb_putc(out, *p++);
                    continue;
                }
                return p + 1;
            }
            sb_putc(out, *p);
        }
    }
    const char *s = p;
    while (*p && *p != ',' && *p != ')' && *p != ']' && *p != ' ')
        p++;
    if (p == s) return NULL;
    sb_printf(out, "%.*s", (int)(p - s), s);
    return p;
}

/* Binds a function's value text as the property's kind; returns 0 or -1. */
static int fn_value(parser *ps, int kind, const char *text)
{
    query_value *v = add_val(ps->q);
    if (kind == QK_NUMBER || kind == QK_BOOL) {
        char *end;
        if (kind == QK_BOOL && (!strcmp(text, "true") || !strcmp(text, "false"))) {
            v->type = SQLITE_INTEGER, v->i = text[0] == 't';
            return 0;
        }
        double d = strtod(text, &end);
        if (end == text || *end) {
            snprintf(ps->q->err, sizeof ps->q->err, "The value '%s' is not a valid %s.", text,
                     kind_name(kind));
            return -1;
        }
        if (strchr(text, '.') || strchr(text, 'e') || strchr(text, 'E'))
            v->type = SQLITE_FLOAT, v->d = d;
        else
            v->type = SQLITE_INTEGER, v->i = strtoll(text, NULL, 10);
        return 0;
    }
    v->type = SQLITE_TEXT;
    v->text = strdup(text);
    if (kind == QK_GUID)
        for (char *c = v->text; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    return 0;
}

/* Microsoft.Dynamics.CRM.<Function>(PropertyName='x',PropertyValues=[…]) — the query
 * functions of "Filter rows" the emulator can answer without a calendar or a hierarchy:
 * In, NotIn, Between, NotBetween. Any other is refused as not served. */
static int crm_function(parser *ps)
{
    const char *fn = ps->ts + strlen(CRM_NS);
    int fnlen = (int)(ps->tn - strlen(CRM_NS));
    static const char *served[] = {"In", "NotIn", "Between", "NotBetween"};
    int which = -1;
    for (int i = 0; i < 4; i++)
        if ((int)strlen(served[i]) == fnlen && strncmp(fn, served[i], (size_t)fnlen) == 0)
            which = i;
    if (which < 0) {
        snprintf(ps->q->err, sizeof ps->q->err,
                 "The query function '" CRM_NS "%.*s' is not served by the dvlua emulator "
                 "(served: In, NotIn, Between, NotBetween).",
                 fnlen, fn);
        ps->q->unserved = 1;
        return -1;
    }
    next(ps);
    if (ps->tok != T_LP) return syntax(ps);
    const char *p = ps->ts + 1;
    sbuf name = {0}, vals[MAX_FN_VALUES];
    int nv = 0, rc = -1;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *k = p;
        while (isalnum((unsigned char)*p))
            p++;
        size_t kl = (size_t)(p - k);
        if (*p++ != '=' || !kl) goto bad;
        while (*p == ' ')
            p++;
        if (kl == 12 && strncmp(k, "PropertyName", 12) == 0) {
            name.n = 0;
            if (!(p = fn_scalar(p, &name))) goto bad;
        } else if (*p == '[') {
            p++;
            for (;;) {
                while (*p == ' ')
                    p++;
                if (*p == ']' && nv == 0) break;
                if (nv == MAX_FN_VALUES) goto bad;
                memset(&vals[nv], 0, sizeof vals[nv]);
                if (!(p = fn_scalar(p, &vals[nv++]))) goto bad;
                while (*p == ' ')
                    p++;
                if (*p == ',') {
                    p++;
                    continue;
                }
                break;
            }
            if (*p++ != ']') goto bad;
        } else {
            if (nv == MAX_FN_VALUES) goto bad;
            memset(&vals[nv], 0, sizeof vals[nv]);
            if (!(p = fn_scalar(p, &vals[nv++]))) goto bad;
        }
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ')') break;
        goto bad;
    }
    ps->p = p + 1;
    next(ps);
    char expr[512];
    int kind = ps->resolve(ps->ud, sb_str(&name), name.n, expr, sizeof expr);
    if (!kind) {
        snprintf(ps->q->err, sizeof ps->q->err,
                 "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.",
                 sb_str(&name), ps->type_name);
        ps->q->unknown = 1;
        goto out;
    }
    if (which >= 2 ? nv != 2 : nv < 1) {
        snprintf(ps->q->err, sizeof ps->q->err,
                 "The query function '" CRM_NS "%s' takes %s in PropertyValues.", served[which],
                 which >= 2 ? "exactly two values" : "at least one value");
        goto out;
    }
    const char *nocase = kind == QK_STRING ? " COLLATE NOCASE" : "";
    sbuf *out = &ps->q->sql;
    if (which < 2) {
        sb_printf(out, "(%s%s %sIN (", expr, nocase, which ? "NOT " : "");
        for (int i = 0; i < nv; i++) {
            if (fn_value(ps, kind, sb_str(&vals[i]))) goto out;
            sb_printf(out, "%s?%d", i ? "," : "", param_no(ps->q));
        }
        sb_puts(out, "))");
    } else {
        if (fn_value(ps, kind, sb_str(&vals[0]))) goto out;
        int lo = param_no(ps->q);
        if (fn_value(ps, kind, sb_str(&vals[1]))) goto out;
        sb_printf(out, "(%s%s %sBETWEEN ?%d AND ?%d)", expr, nocase, which == 3 ? "NOT " : "", lo,
                  param_no(ps->q));
    }
    rc = 0;
    goto out;
bad:
    snprintf(ps->q->err, sizeof ps->q->err,
             "Syntax error in the parameters of '" CRM_NS "%s' at position %d in '%s'.",
             served[which], (int)(p - ps->src) + 1, ps->src);
out:
    sb_free(&name);
    for (int i = 0; i < nv; i++)
        sb_free(&vals[i]);
    return rc;
}

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
    if (ps->tn > strlen(CRM_NS) && strncmp(ps->ts, CRM_NS, strlen(CRM_NS)) == 0)
        return crm_function(ps);
    static const char *funcs[] = {"contains", "startswith", "endswith"};
    for (int f = 0; f < 3; f++) {
        if (!is_word(ps, funcs[f])) continue;
        const char *fs = ps->ts;
        next(ps);
        if (ps->tok != T_LP) return syntax(ps);
        next(ps);
        char expr[512];
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
    char expr[512];
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
    if (ps->tok == T_IDENT && !is_word(ps, "null") && !is_word(ps, "true") &&
        !is_word(ps, "false")) {
        /* column comparison ("Filter rows": firstname eq lastname) */
        char rhs[512];
        int k2 = property(ps, rhs, sizeof rhs);
        if (k2 < 0) return -1;
        if (k2 != kind) {
            snprintf(ps->q->err, sizeof ps->q->err,
                     "A binary operator with incompatible types was detected. Found operand "
                     "types '%s' and '%s' for operator kind '%s'.",
                     kind_name(kind), kind_name(k2), opnames[op]);
            return -1;
        }
        sb_printf(out, "(%s %s %s%s)", expr, sqlops[op], rhs,
                  kind == QK_STRING ? " COLLATE NOCASE" : "");
        return 0;
    }
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
        if (ps->tok == T_IDENT && ps->tn > strlen(CRM_NS) &&
            strncmp(ps->ts, CRM_NS, strlen(CRM_NS)) == 0) {
            /* "Use Web API functions", Limitations of query functions */
            snprintf(ps->q->err, sizeof ps->q->err,
                     "Not operator along with the Custom Named Condition operators is not "
                     "allowed");
            return -1;
        }
        sb_puts(&ps->q->sql, "NOT ");
        if (++ps->depth > 100) return syntax(ps);
        int rc = expr_not(ps);
        ps->depth--;
        return rc;
    }
    return primary(ps);
}

/* Operands of the level below (operand) joined by the operator word, as sql. */
static int expr_chain(parser *ps, int (*operand)(parser *), const char *word, const char *sql)
{
    if (operand(ps)) return -1;
    while (is_word(ps, word)) {
        next(ps);
        sb_puts(&ps->q->sql, sql);
        if (operand(ps)) return -1;
    }
    return 0;
}

static int expr_and(parser *ps)
{
    return expr_chain(ps, expr_not, "and", " AND ");
}

static int expr_or(parser *ps)
{
    return expr_chain(ps, expr_and, "or", " OR ");
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
        char expr[512];
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
