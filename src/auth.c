/* Stub: the implementation follows. */
#include "auth.h"

#include <string.h>

void dv_auth_options_init(dv_auth_options *o)
{
    memset(o, 0, sizeof *o);
}

dv_auth *dv_auth_new(const dv_auth_options *o, dv_error *err)
{
    (void)o;
    dv_error_set(err, 0, "config", "auth not built yet");
    return NULL;
}

dv_auth *dv_auth_from_env(const char *dataverse_url, dv_error *err)
{
    (void)dataverse_url;
    dv_error_clear(err);
    return NULL;
}

int dv_auth_scope_for_url(const char *url, char *out, size_t outsz)
{
    (void)url;
    (void)out;
    (void)outsz;
    return -1;
}

const char *dv_auth_token(dv_auth *a, dv_http *h, int force, dv_error *err)
{
    (void)a;
    (void)h;
    (void)force;
    dv_error_set(err, 0, "auth", "auth not built yet");
    return NULL;
}

void dv_auth_invalidate(dv_auth *a)
{
    (void)a;
}

int dv_auth_can_refresh(const dv_auth *a)
{
    (void)a;
    return 0;
}

long dv_auth_fetch_count(const dv_auth *a)
{
    (void)a;
    return 0;
}

void dv_auth_describe(const dv_auth *a, char *out, size_t outsz)
{
    (void)a;
    if (outsz) out[0] = 0;
}

void dv_auth_free(dv_auth *a)
{
    (void)a;
}
