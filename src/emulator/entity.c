/* Column property names. */
#include <string.h>

#include "entity.h"

/* Called for every column of every row written or read: plain copies, no printf. */
void emu_prop_name(const dv_attribute_def *a, char *out, size_t n)
{
    if (n == 0) return;
    int lookup = a->type == DV_ATTR_LOOKUP || a->type == DV_ATTR_OWNER;
    size_t len = strlen(a->logical_name), at = 0;
    if (lookup && at + 1 < n) out[at++] = '_';
    size_t take = len < n - 1 - at ? len : n - 1 - at;
    memcpy(out + at, a->logical_name, take);
    at += take;
    if (lookup) {
        size_t sl = n - 1 - at < 6 ? n - 1 - at : 6;
        memcpy(out + at, "_value", sl);
        at += sl;
    }
    out[at] = 0;
}

int emu_prop_is(const dv_attribute_def *a, const char *prop, size_t n)
{
    const char *ln = a->logical_name;
    size_t len = strlen(ln);
    if (a->type != DV_ATTR_LOOKUP && a->type != DV_ATTR_OWNER)
        return len == n && memcmp(ln, prop, n) == 0;
    return n == len + 7 && prop[0] == '_' && memcmp(prop + 1, ln, len) == 0 &&
           memcmp(prop + 1 + len, "_value", 6) == 0;
}
