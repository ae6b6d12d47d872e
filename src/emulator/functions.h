/* Unbound Web API functions the emulator answers (GET Name(params)):
 *   RetrieveTotalRecordCount(EntityNames=['account',…])  row counts per table
 *
 * Offers:
 *   emu_is_function   1 when the path names one of these functions
 *   h_function        answer it (caller holds emu->mu) */
#ifndef DV_EMU_FUNCTIONS_H
#define DV_EMU_FUNCTIONS_H

#include "request.h"

int emu_is_function(const char *path);
int h_function(emu_req *r, const char *path);

#endif
