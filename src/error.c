#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dv_error_clear(dv_error *e)
{
    memset(e, 0, sizeof *e);
    e->retry_after = -1;
}

int dv_error_set(dv_error *e, long status, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}
