/* Column property names. */
#include <stdio.h>

#include "entity.h"

void emu_prop_name(const dv_attribute_def *a, char *out, size_t n)
{
    if (a->type == DV_ATTR_LOOKUP || a->type == DV_ATTR_OWNER)
        snprintf(out, n, "_%s_value", a->logical_name);
    else
        snprintf(out, n, "%s", a->logical_name);
}
