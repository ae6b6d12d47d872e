/* The request rules every Web API path shares (options.c): system query options the
 * emulator does not know or does not serve are refused rather than ignored, and
 * documented actions and functions it does not serve answer 501 naming the feature.
 * Both return 0 when the request may go on, or -1 after emu_error. */
#ifndef DV_EMU_OPTIONS_H
#define DV_EMU_OPTIONS_H
#include "emu_internal.h"
#include "request.h"

/* Refuses unknown or unserved query options and unserved $filter functions. */
int emu_check_query_options(emu_req *r);

/* 1 (with the answer in r) when path names a documented action or function the emulator
 * does not serve; 0 otherwise. */
int emu_unserved_operation(emu_req *r, const char *path);

/* Answers 405 with an Allow header naming the methods what takes; returns -1. */
int emu_not_allowed(emu_req *r, const char *what, const char *allowed);

/* The names emu_unserved_operation refuses, NULL-terminated (for documentation). */
extern const char *const emu_unserved_names[];

#endif
