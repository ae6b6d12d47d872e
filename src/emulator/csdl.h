/* The service's CSDL document (csdl.c): GET $metadata. Called with emu->mu held. */
#ifndef DV_EMU_CSDL_H
#define DV_EMU_CSDL_H
#include "request.h"

/* Answers the OData CSDL (XML) of the organization as it is now: one entity type per table
 * with its key, alternate keys, properties and navigation properties, the entity sets, and
 * the functions and actions the emulator serves. */
int h_csdl(emu_req *r);

#endif
