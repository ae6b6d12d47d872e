/* Standard base64 (RFC 4648, with padding), for solution files sent inside JSON bodies. */
#ifndef DV_BASE64_H
#define DV_BASE64_H
#include <stddef.h>

/* Returns a malloc'd NUL-terminated string (length in *out_len), or NULL when memory ran out. */
char *dv_base64_encode(const unsigned char *data, size_t len, size_t *out_len);

#endif
