/* Answering rows (row_select.c): Prefer header preferences, the $select/$expand selection,
 * context URLs, emitting one row from a statement, page sizes and next links. */
#ifndef DV_EMU_ROW_SELECT_H
#define DV_EMU_ROW_SELECT_H
#include <sqlite3.h>

#include "entity.h"
#include "request.h"

#define MAX_PAGE 5000

/* Prefer header preferences this emulator honours. */
typedef struct {
    int track_changes, return_repr, maxpagesize;
} prefs;

prefs parse_prefer(emu_req *r);

typedef struct selection selection;

/* A single-valued navigation expanded inline: the lookup and the target's columns. */
typedef struct {
    const dv_attribute_def *a;
    const emu_entity *target;
    selection *sel;
} expansion;

struct selection {
    const dv_attribute_def **a;
    int n;
    int explicit_select;
    expansion *x;
    int nx;
    /* Built once per request by selection_prepare, indexed by column position: */
    const emu_entity *t;
    unsigned char *want; /* 1 when the column goes out */
    char **prop;         /* the property name */
    size_t *prop_len;
    char **prefix; /* ,"<prop>": */
    size_t *prefix_len;
    int *xcol;           /* for each expansion, the position of its lookup column */
    unsigned char *seen; /* scratch: columns met in the current row */
    const char **xval;   /* scratch: each expansion's id in the current row */
    size_t *xval_len;
    unsigned annotate; /* EMU_ANN_* the Prefer header's odata.include-annotations asks for */
};

/* Annotations emit_row can add after a column's value. */
enum { EMU_ANN_LOOKUP = 1, EMU_ANN_FORMATTED = 2 };

void selection_free(selection *s);
/* Reads $select and $expand for t into s (free it with selection_free even on failure).
 * Returns 0, or -1 after emu_error. */
int parse_select(emu_req *r, const emu_entity *t, selection *s);
/* "<base>$metadata#<set>" plus "(a,b,nav(c))" when $select or $expand was given. */
void context_url(emu_req *r, const emu_entity *t, const selection *s, sbuf *b);
/* The select list after "ver, id": the stored row, whose members emit_row copies out. */
void select_sql(const selection *s, sbuf *b);
/* Writes one row from a statement whose columns (from col) are ver, id and the stored JSON. */
void emit_row(dv_emulator *e, sbuf *out, sqlite3_stmt *st, int col, const emu_entity *t,
              const selection *s);

/* The next link for a page: the request's arguments (all, or only $select) plus token. */
void next_link(emu_req *r, const emu_entity *t, const char *token, int keep_args, sbuf *out);
/* The page size the Prefer header asks for, capped at MAX_PAGE (and says it applied it). */
int page_size(emu_req *r, prefs *p);

#endif
