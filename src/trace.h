/* The request/response trace (DVLUA_TRACE=1 or the trace option), written to stderr with
 * every secret redacted: Authorization and cookie headers, and the values of secret fields
 * (client_secret, access_token, refresh_token, ...) in URLs and form or JSON bodies.
 *
 * Offers:
 *   dv_trace_request   the request line, headers and a body preview before a try
 *   dv_trace_response  the status, headers and a body preview after a try
 *   dv_trace_note      a free-form line (retries, waits, token refreshes)
 *   dv_trace_redact_header / dv_trace_redact_text  the redaction rules, for reuse
 */
#ifndef DV_TRACE_H
#define DV_TRACE_H

#include <curl/curl.h>
#include <stddef.h>

#include "http.h"

void dv_trace_request(const dv_http_req *req, const struct curl_slist *headers, int try_no,
                      int max_tries);
void dv_trace_response(const dv_http_req *req, const dv_http_resp *resp);
void dv_trace_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes "Name: value" to out with the value replaced by "[redacted]" (keeping an auth
 * scheme such as "Bearer") when the header carries credentials. */
void dv_trace_redact_header(const char *name, size_t nlen, const char *value, char *out,
                            size_t outsz);

/* Copies at most inlen bytes of text to out (NUL-terminated, at most outsz - 1 bytes) with the
 * values of secret fields replaced by "[redacted]", in form (key=value&) and JSON ("key":"v")
 * notation, and control bytes shown as '.'. */
void dv_trace_redact_text(const char *text, size_t inlen, char *out, size_t outsz);

#endif
