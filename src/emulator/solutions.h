/* Solutions over the Web API (solutions.c): ImportSolution, ImportSolutionAsync, and the
 * uninstall of a solution when its row is deleted. Each handler fills in r and returns 0,
 * or -1 after emu_error; called with emu->mu held. */
#ifndef DV_EMU_SOLUTIONS_H
#define DV_EMU_SOLUTIONS_H
#include "entity.h"
#include "request.h"

/* POST ImportSolution: creates the solution's tables, columns and keys in one transaction. */
int h_import_solution(emu_req *r);
/* POST ImportSolutionAsync: imports at once and records the job as a finished asyncoperation. */
int h_import_solution_async(emu_req *r);
/* DELETE solutions(<id>): a managed solution goes with its tables and rows. */
int h_uninstall_solution(emu_req *r, const char *solution_id);

#endif
