/* Solution components and their layers (components.c): which solution ships which table,
 * column, alternate key and relationship, with the definition each one ships.
 *
 * Dataverse layers them: the system (what the organization had before any solution touched
 * the component) at the bottom, then each managed solution in the order it was installed,
 * then the unmanaged (Active) layer on top. What a component looks like is the top layer's
 * definition; uninstalling a managed solution removes its layer, so a component another layer
 * still has stays (with the definition of the layer now on top) and one no layer has any more
 * is deleted with its data. Called with emu->mu held, inside the caller's transaction. */
#ifndef DV_EMU_COMPONENTS_H
#define DV_EMU_COMPONENTS_H
#include <stddef.h>

#include "emu_internal.h"
#include "solution_def.h"

/* Adds a solution's layer: creates the tables it defines, adds its columns, keys and
 * relationships to tables that exist, and applies the definitions of the top layers. Fails
 * (err set, nothing applied once the caller rolls back) with COMP_MISSING on a table it
 * neither defines nor finds, and with -1 on a new table without a primary name or a column
 * whose type differs from the one the table has. The entity cache is reloaded. */
int comp_import(dv_emulator *e, const dv_solution_def *def, const char *solution_id, double now,
                char *err, size_t errlen);
/* comp_import's answer when the solution needs a table it neither defines nor finds. */
#define COMP_MISSING -2

/* Removes a managed solution's layer and deletes what no layer holds any more. */
int comp_uninstall(dv_emulator *e, const char *solution_id, char *err, size_t errlen);

/* Calls cb for each one-to-many relationship that solutions added. */
typedef void (*comp_rel_cb)(void *ud, const char *name, const char *referencing,
                            const char *attribute, const char *referenced);
void comp_relationships(dv_emulator *e, comp_rel_cb cb, void *ud);

#endif
