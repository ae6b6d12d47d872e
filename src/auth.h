/* Token providers for Microsoft Entra ID: a static bearer token, OAuth 2.0 client
 * credentials, and the device code flow. Tokens are cached in memory and refreshed
 * before they expire. No secret is ever printed, traced or put in an error message.
 *
 * Offers:
 *   dv_auth_options_init   defaults
 *   dv_auth_new            a provider of the kind the options name
 *   dv_auth_from_env       a provider from DATAVERSE_TOKEN or AZURE_* variables
 *   dv_auth_scope_for_url  "<origin of url>/.default"
 *   dv_auth_token          the current token, fetched or refreshed when needed
 *   dv_auth_invalidate     forget the cached token (after a 401)
 *   dv_auth_describe       a secret-free description for __tostring and traces
 *   dv_auth_free
 *
 * A provider is used through the dv_http it is attached to (dv_http_set_auth); its token
 * requests travel over that same connection object, without Authorization. */
#ifndef DV_AUTH_H
#define DV_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef struct dv_auth dv_auth;
typedef struct dv_http dv_http; /* src/http.h */

typedef enum dv_auth_kind {
    DV_AUTH_STATIC = 1,         /* token given by the caller (DATAVERSE_TOKEN) */
    DV_AUTH_CLIENT_CREDENTIALS, /* tenant_id, client_id, client_secret, scope */
    DV_AUTH_DEVICE_CODE,        /* tenant_id (default "organizations"), client_id, scope */
} dv_auth_kind;

#define DV_AUTH_DEFAULT_AUTHORITY "https://login.microsoftonline.com"

/* Strings are copied by dv_auth_new; NULL means "not given". */
typedef struct dv_auth_options {
    dv_auth_kind kind;
    const char *token;          /* DV_AUTH_STATIC */
    const char *tenant_id;      /* directory id or name */
    const char *client_id;      /* application id; the device code flow has a default */
    const char *client_secret;  /* DV_AUTH_CLIENT_CREDENTIALS */
    const char *scope;          /* e.g. "https://org.crm.dynamics.com/.default" */
    const char *authority_host; /* NULL: env AZURE_AUTHORITY_HOST, else DV_AUTH_DEFAULT_AUTHORITY */
    FILE *prompt;               /* device code: where the sign-in message goes; NULL: stderr */
    long refresh_margin_s;      /* refresh this long before expiry; 0: 300 */
    int allow_insecure_http;    /* 1: an http:// authority host that is not loopback is fine */
} dv_auth_options;

/* Zeroes o (all defaults). */
void dv_auth_options_init(dv_auth_options *o);

/* Creates a provider. Returns NULL and fills err (code "config", message naming the missing
 * or bad option, never its value) when the options are incomplete, or (code "insecure") when
 * the authority host is plain http:// to a host that is not loopback and
 * allow_insecure_http is not set. */
dv_auth *dv_auth_new(const dv_auth_options *o, dv_error *err);

/* Builds a provider from the environment: DATAVERSE_TOKEN gives a static token; otherwise
 * AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET give client credentials with scope
 * dv_auth_scope_for_url(dataverse_url) and authority AZURE_AUTHORITY_HOST. Returns NULL with
 * err->code empty when nothing is configured, NULL with err filled ("config") when the
 * configuration is partial. allow_insecure_http as in dv_auth_options. */
dv_auth *dv_auth_from_env(const char *dataverse_url, int allow_insecure_http, dv_error *err);

/* Writes "<scheme>://<host[:port]>/.default" for url into out. Returns 0, or -1 when url
 * has no scheme and host or out is too small. */
int dv_auth_scope_for_url(const char *url, char *out, size_t outsz);

/* Returns the current access token (owned by a, valid until the next call on a), fetching one
 * through h when none is cached, force is set, or the cached one is within the refresh margin
 * of expiry. Returns NULL and fills err (code "auth", or the status and the identity
 * platform's error code such as "invalid_client") on failure. */
const char *dv_auth_token(dv_auth *a, dv_http *h, int force, dv_error *err);

/* Forgets the cached token so the next dv_auth_token fetches a new one. */
void dv_auth_invalidate(dv_auth *a);

/* 1 when the provider can obtain a new token (a static token cannot). */
int dv_auth_can_refresh(const dv_auth *a);

/* How many tokens this provider has fetched so far (for tests and traces). */
long dv_auth_fetch_count(const dv_auth *a);

/* A description without secrets, e.g. "client credentials (tenant contoso, client 1234…)". */
void dv_auth_describe(const dv_auth *a, char *out, size_t outsz);

/* Frees a, wiping the secrets it held. NULL is fine. */
void dv_auth_free(dv_auth *a);

#endif
