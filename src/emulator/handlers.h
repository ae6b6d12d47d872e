/* The Web API handlers the router dispatches to. Each fills in r (status, body, headers)
 * and returns 0 (or -1 after emu_error). Called with emu->mu held. */
#ifndef DV_EMU_HANDLERS_H
#define DV_EMU_HANDLERS_H
#include "emu_internal.h"

/* rows.c: `<set>...` paths (collections, single rows, $count, change tracking). */
int h_rows(emu_req *r, const char *path);
/* metadata.c: `EntityDefinitions...` paths, WhoAmI, and ReactivateEntityKey. */
int h_metadata(emu_req *r, const char *path);
int h_whoami(emu_req *r);
int h_reactivate_key(emu_req *r, const char *entity, const char *key);
/* solutions.c: the ImportSolution action and the uninstall of a solution row. */
int h_import_solution(emu_req *r);
/* ImportSolutionAsync: imports at once and records the job as a finished asyncoperation. */
int h_import_solution_async(emu_req *r);
int h_uninstall_solution(emu_req *r, const char *solution_id);
/* oauth.c: the token and device-code endpoints (no bearer needed). */
int h_oauth(emu_req *r, const char *what);

/* rows.c helpers shared with solutions.c: creates a row from a JSON object text. */
int rows_create_json(emu_req *r, emu_entity *t, const char *json, char id_out[37]);

#endif
