/* Which URLs a secret may travel to: https:// anywhere, plain http:// only to this machine.
 *
 * Offers:
 *   dv_url_cleartext_remote  1 when url is http:// to a host that is not a loopback address
 *
 * Loopback means localhost, 127.0.0.0/8 and ::1 (the built-in emulator listens there). */
#ifndef DV_URLSAFE_H
#define DV_URLSAFE_H

#include <stddef.h>

/* Returns 1 when url uses plain http:// (any case) and its host is not a loopback address,
 * 0 otherwise (https://, loopback, or no scheme at all). When host is not NULL the URL's host
 * (without user info or port) is copied into it, truncated to hostsz - 1 bytes. */
int dv_url_cleartext_remote(const char *url, char *host, size_t hostsz);

#endif
