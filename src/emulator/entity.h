/* A table as the emulator serves it, the name its columns go by on the wire, and the
 * organization's fixed identities. */
#ifndef DV_EMU_ENTITY_H
#define DV_EMU_ENTITY_H
#include <stddef.h>

#include "solution_def.h"

/* The organization's fixed identities: WhoAmI answers these on every start. */
#define EMU_USER_ID "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d01"
#define EMU_BU_ID "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d02"
#define EMU_ORG_ID "3b9a6f0e-5a1c-4f8e-9e7d-0c1a2b3c4d03"

/* A table as served: its definition plus the identity the metadata answers carry. */
typedef struct {
    dv_entity_def def;
    char metadata_id[37];
    char solution_id[37]; /* "" for the built-in tables */
    int file;             /* the slot of the file its rows are in (dbset.h) */
} emu_entity;

/* The property name a column is read and filtered by (`_x_value` for lookups). */
void emu_prop_name(const dv_attribute_def *a, char *out, size_t n);
/* 1 when prop (n bytes) is a's property name. */
int emu_prop_is(const dv_attribute_def *a, const char *prop, size_t n);

#endif
