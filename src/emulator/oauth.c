/* A stand-in for the Microsoft Entra ID token endpoints, so a client's OAuth flows can run
 * end to end against the emulator: client credentials and a device code that is approved
 * at once. Tokens are the configured token when there is one, else random. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"
#include "handlers.h"

/* The value of name in a form-encoded body (decoded, malloc'd), or NULL. */
static char *form_value(const char *body, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char *v = strndup(p + nl + 1, (size_t)(stop - p - (ptrdiff_t)nl - 1));
            url_decode(v, 1);
            return v;
        }
        p = stop + 1;
    }
    return NULL;
}

static int oauth_error(emu_req *r, const char *error, const char *desc)
{
    r->status = 400;
    r->content_type = "application/json; charset=utf-8";
    sb_puts(&r->out, "{\"error\":");
    sb_json_str(&r->out, error);
    sb_puts(&r->out, ",\"error_description\":");
    sb_json_str(&r->out, desc);
    sb_puts(&r->out, "}");
    return -1;
}

static int issue(emu_req *r)
{
    char tok[48];
    if (!r->emu->token) {
        char g[37];
        guid_new(g);
        snprintf(tok, sizeof tok, "emu-%s", g);
    }
    r->status = 200;
    r->content_type = "application/json; charset=utf-8";
    sb_puts(&r->out, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                     "\"access_token\":");
    sb_json_str(&r->out, r->emu->token ? r->emu->token : tok);
    sb_putc(&r->out, '}');
    return 0;
}

int h_oauth(emu_req *r, const char *what)
{
    if (strcmp(r->method, "POST") != 0)
        return oauth_error(r, "invalid_request",
                           "AADSTS900561: The endpoint only accepts POST "
                           "requests.");
    char *grant = form_value(r->body, r->body_len, "grant_type");
    char *client = form_value(r->body, r->body_len, "client_id");
    char *secret = form_value(r->body, r->body_len, "client_secret");
    char *device = form_value(r->body, r->body_len, "device_code");
    int rc;
    if (strcmp(what, "v2.0/devicecode") == 0) {
        if (!client) {
            rc = oauth_error(r, "invalid_request",
                             "AADSTS900144: The request body must contain "
                             "the following parameter: 'client_id'.");
        } else {
            char g[37];
            guid_new(g);
            r->status = 200;
            r->content_type = "application/json; charset=utf-8";
            sb_printf(&r->out,
                      "{\"user_code\":\"EMULATOR\",\"device_code\":\"emu-device-%s\","
                      "\"verification_uri\":\"%s/devicelogin\",\"expires_in\":900,\"interval\":1,"
                      "\"message\":\"To sign in, use a web browser to open the page "
                      "%s/devicelogin and enter the code EMULATOR to authenticate.\"}",
                      g, r->emu->url, r->emu->url);
            rc = 0;
        }
    } else if (strcmp(what, "v2.0/token") != 0) {
        rc = oauth_error(r, "invalid_request", "Unknown OAuth endpoint.");
    } else if (!grant) {
        rc = oauth_error(r, "invalid_request",
                         "AADSTS900144: The request body must contain the "
                         "following parameter: 'grant_type'.");
    } else if (strcmp(grant, "client_credentials") == 0) {
        if (!client)
            rc = oauth_error(r, "invalid_request",
                             "AADSTS900144: The request body must contain "
                             "the following parameter: 'client_id'.");
        else if (!secret || !*secret)
            rc = oauth_error(r, "invalid_client",
                             "AADSTS7000216: 'client_assertion', "
                             "'client_secret' or 'request' is required for "
                             "the 'client_credentials' grant type.");
        else
            rc = issue(r);
    } else if (strcmp(grant, "urn:ietf:params:oauth:grant-type:device_code") == 0) {
        if (!device || strncmp(device, "emu-device-", 11) != 0)
            rc = oauth_error(r, "invalid_grant",
                             "AADSTS70000: The provided device code is not "
                             "valid.");
        else
            rc = issue(r);
    } else {
        rc = oauth_error(r, "unsupported_grant_type",
                         "AADSTS70003: The app requested an "
                         "unsupported grant type.");
    }
    free(grant), free(client), free(secret), free(device);
    return rc;
}
