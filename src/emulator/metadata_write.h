/* Writing table definitions over the Web API (metadata_write.c): tables (POST
 * EntityDefinitions, PUT and DELETE EntityDefinitions(…)), columns (POST …/Attributes with
 * an @odata.type, PUT and DELETE …/Attributes(…)), alternate keys (POST and DELETE
 * …/Keys(…)) and one-to-many relationships with their lookup column (POST and DELETE
 * RelationshipDefinitions) and global choices (GlobalOptionSetDefinitions). Each honours
 * MSCRM.SolutionUniqueName and commits whole or not at all. Handlers fill in r and return 0, or -1
 * after emu_error; emu->mu is held. */
#ifndef DV_EMU_METADATA_WRITE_H
#define DV_EMU_METADATA_WRITE_H
#include "emu_internal.h"
#include "request.h"

int mw_create_entity(emu_req *r);
int mw_update_entity(emu_req *r, emu_entity *t);
int mw_delete_entity(emu_req *r, emu_entity *t);
int mw_create_attr(emu_req *r, emu_entity *t);
int mw_update_attr(emu_req *r, emu_entity *t, int idx);
int mw_delete_attr(emu_req *r, emu_entity *t, int idx);
int mw_create_key(emu_req *r, emu_entity *t);
int mw_delete_key(emu_req *r, emu_entity *t, int idx);
int mw_create_rel(emu_req *r);
/* t and idx: the referencing table and its lookup column. */
int mw_delete_rel(emu_req *r, emu_entity *t, int idx);

/* Global choices: POST GlobalOptionSetDefinitions, DELETE …(<id>) when no column uses it. */
int mw_create_optionset(emu_req *r);
int mw_delete_optionset(emu_req *r, const char *name);

#endif
