/* The router (router.c): a Web API path and method to the handler that answers it. */
#ifndef DV_EMU_ROUTER_H
#define DV_EMU_ROUTER_H
#include "request.h"

/* Answers r for rest, the path after the API base ("accounts(…)", "WhoAmI", ""). Fills in
 * r and returns 0, or -1 after emu_error. Called with emu->mu held. */
int router_route(emu_req *r, const char *rest);

#endif
