/* Bulk operation messages (bulk.c): CreateMultiple, UpdateMultiple and UpsertMultiple bound
 * to an entity set, as "Use bulk operation messages" documents them for standard tables:
 * every Target carries @odata.type, the call is one transaction (any failure rolls it all
 * back) and each row gets its own version for change tracking. DeleteMultiple is offered by
 * Dataverse for elastic tables only; the emulator serves standard tables, so it is refused
 * like any action the table does not have. */
#ifndef DV_EMU_BULK_H
#define DV_EMU_BULK_H
#include "emu_internal.h"
#include "request.h"

/* Answers POST <set>/Microsoft.Dynamics.CRM.<action>; set is set_len bytes of path, action
 * the text after the namespace. Returns 0, or -1 after emu_error. Called with emu->mu held. */
int h_bulk(emu_req *r, const char *set, size_t set_len, const char *action);

#endif
