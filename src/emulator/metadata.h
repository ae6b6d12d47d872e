/* Table definitions over the Web API (metadata.c): EntityDefinitions with their Keys,
 * Attributes and relationships, RelationshipDefinitions, GlobalOptionSetDefinitions, the
 * ReactivateEntityKey action, and WhoAmI. Each handler fills in r and returns 0, or -1 after
 * emu_error; called with emu->mu held. */
#ifndef DV_EMU_METADATA_H
#define DV_EMU_METADATA_H
#include "entity.h"
#include "request.h"

/* `EntityDefinitions…` paths. */
int h_metadata(emu_req *r, const char *path);
/* `RelationshipDefinitions…` paths. */
int h_relationship_defs(emu_req *r, const char *path);
/* `GlobalOptionSetDefinitions…` paths. */
int h_optionset_defs(emu_req *r, const char *path);
/* `WhoAmI` / `WhoAmI()`. */
int h_whoami(emu_req *r);
/* ReactivateEntityKey: bound (entity and key given) or unbound (both NULL: read from the
 * JSON body's EntityLogicalName and EntityKeyLogicalName). */
int h_reactivate_key(emu_req *r, const char *entity, const char *key);

#endif
