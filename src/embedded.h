/* Lua helpers compiled into the binary (generated from bindings/dataverse/ by tools/bin2c). */
#ifndef DV_EMBEDDED_H
#define DV_EMBEDDED_H
#include <stddef.h>

struct dv_embedded {
    const char *module; /* "dataverse.x" */
    const char *chunk;  /* "@dataverse/x.lua" */
    const char *source;
    size_t len;
};

/* Terminated by an entry whose module is NULL. */
extern const struct dv_embedded dv_embedded_lua[];

#endif
