/* Stub: the implementation follows. */
#include "http.h"
#include "auth.h"

#include <stdlib.h>
#include <string.h>

void dv_http_options_init(dv_http_options *o)
{
    memset(o, 0, sizeof *o);
}

dv_http *dv_http_new(const dv_http_options *o, dv_error *err)
{
    (void)o;
    dv_error_set(err, 0, "transport", "HTTP layer not built yet");
    return NULL;
}

void dv_http_free(dv_http *h)
{
    (void)h;
}

void dv_http_set_auth(dv_http *h, dv_auth *a)
{
    (void)h;
    dv_auth_free(a);
}

dv_auth *dv_http_auth(dv_http *h)
{
    (void)h;
    return NULL;
}

int dv_http_request(dv_http *h, const dv_http_req *req, dv_http_resp *resp, dv_error *err)
{
    (void)h;
    (void)req;
    memset(resp, 0, sizeof *resp);
    return dv_error_set(err, 0, "transport", "HTTP layer not built yet");
}

const char *dv_http_resp_header(const dv_http_resp *resp, const char *name)
{
    (void)resp;
    (void)name;
    return NULL;
}

void dv_http_resp_free(dv_http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
}

int dv_http_error_from_response(const dv_http_resp *resp, const char *method, const char *url,
                                dv_error *err)
{
    (void)method;
    (void)url;
    return dv_error_set(err, resp->status, "http", "HTTP %ld", resp->status);
}
