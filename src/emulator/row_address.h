/* Addressing a row (row_address.c): the part of a path between parentheses, either the
 * row's id or the values of one of the table's alternate keys, resolved to a row id. */
#ifndef DV_EMU_ROW_ADDRESS_H
#define DV_EMU_ROW_ADDRESS_H
#include <sqlite3.h>

#include "entity.h"
#include "request.h"

typedef struct {
    int type; /* SQLITE_TEXT / INTEGER / FLOAT */
    char *text;
    long long i;
    double d;
    char name[128];
} keyval;

typedef struct {
    keyval v[8];
    int n;
} keyvals;

void keyvals_free(keyvals *k);

typedef enum { ADDR_NONE, ADDR_ID, ADDR_KEY } addr_kind;

typedef struct {
    addr_kind kind;
    char id[37];
    int key; /* index into t->def.keys */
    keyvals kv;
    /* The text between the parentheses as the request wrote it: an upsert by key answers
     * OData-EntityId in that form. */
    const char *src;
    int src_len;
} address;

/* Parses the part between parentheses; *end is left after ')'. Returns 0, or -1 after
 * emu_error. */
int parse_address(emu_req *r, const emu_entity *t, const char *p, const char **end, address *a);
/* "k1:v1,k2:v2" for messages. */
void key_values_text(const address *a, sbuf *b);
/* Resolves an address to a row id; 1 found, 0 missing. */
int find_row(emu_req *r, const emu_entity *t, const address *a, char id[37]);
/* The 404 answer for an address that names no row; returns -1. */
int not_found(emu_req *r, const emu_entity *t, const address *a);

#endif
