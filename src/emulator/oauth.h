/* The OAuth 2.0 stand-in (oauth.c): `/<tenant>/oauth2/v2.0/token` (client credentials and
 * device code grants) and `/<tenant>/oauth2/v2.0/devicecode`. No bearer token needed. */
#ifndef DV_EMU_OAUTH_H
#define DV_EMU_OAUTH_H
#include "request.h"

/* what is the path after "/oauth2/": "v2.0/token" or "v2.0/devicecode". Fills in r. */
int h_oauth(emu_req *r, const char *what);

#endif
