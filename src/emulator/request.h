/* One HTTP request as the handlers see it, and the answer they build: query arguments,
 * request headers, extra response headers, JSON answers and Dataverse-shaped errors. */
#ifndef DV_EMU_REQUEST_H
#define DV_EMU_REQUEST_H
#include <stddef.h>

#include "emulator.h"
#include "sbuf.h"

struct MHD_Connection;

/* Dataverse error codes the answers carry. */
#define BAD_QUERY "0x80060888"
#define NOT_FOUND "0x80040217"
#define DUP_KEY "0x80060892"
#define DUP_RECORD "0x80040237"

#define EMU_MAX_HEADERS 8

/* A header or query argument of a $batch sub-request, which has no connection of its own. */
typedef struct {
    const char *name, *value;
} emu_kv;

/* One request as the handlers see it, and the answer they build. */
typedef struct {
    dv_emulator *emu;
    struct MHD_Connection *conn;
    const char *method;
    char base[256]; /* "http://host:port/api/data/v9.2/" as the client addressed us */
    const char *body;
    size_t body_len;
    int status;
    sbuf out;
    const char *content_type;
    char *hdr_name[EMU_MAX_HEADERS];
    char *hdr_val[EMU_MAX_HEADERS];
    int n_hdr;
    /* Set for a $batch sub-request (conn is NULL): its own headers and decoded arguments. */
    const emu_kv *sub_hdrs, *sub_args;
    int n_sub_hdrs, n_sub_args;
} emu_req;

const char *emu_arg(emu_req *r, const char *name);
const char *emu_header(emu_req *r, const char *name);
void emu_add_header(emu_req *r, const char *name, const char *value);
/* Sets a Dataverse-shaped error answer; returns -1. */
int emu_error(emu_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 1 when Prefer: odata.include-annotations="…" covers the annotation name. */
int emu_annotation_wanted(emu_req *r, const char *name);
/* Echoes the include-annotations preference in a Preference-Applied header. */
void emu_annotations_applied(emu_req *r);
/* Starts a JSON answer with the given status. */
void emu_json(emu_req *r, int status);
/* Appends every query argument except those named in skip (NULL-terminated) as k=v&... */
void emu_args_except(emu_req *r, sbuf *b, const char *const *skip);

#endif
