/* The error every C layer reports: what the Lua error table is built from. */
#ifndef DV_ERROR_H
#define DV_ERROR_H

typedef struct dv_error {
    long status;   /* HTTP status; 0 when no response was received */
    char code[32]; /* Dataverse code ("0x80040217") or a dvlua one ("transport", "json", ...) */
    char message[1024];  /* human-readable, never containing a secret */
    double retry_after;  /* seconds from Retry-After; negative when absent */
    char request_id[64]; /* server request id header, when the server sent one */
} dv_error;

/* Resets e to "no error". */
void dv_error_clear(dv_error *e);

/* Fills status, code and a printf-style message; returns -1 so callers can `return
 * dv_error_set(…)`. */
int dv_error_set(dv_error *e, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
