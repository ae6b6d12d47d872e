/* The tables a fresh organization has (account, contact, systemuser, businessunit,
 * organization, solution), described with the same types an imported solution uses. */
#ifndef DV_EMU_BUILTIN_H
#define DV_EMU_BUILTIN_H
#include "solution_def.h"

/* Returns the built-in tables; the array and its contents are static. */
const dv_entity_def *builtin_entities(int *n);

#endif
