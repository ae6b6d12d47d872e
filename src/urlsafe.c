#include "urlsafe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 127.x.y.z written as a dotted quad of decimal numbers, nothing else. */
static int is_ipv4_loopback(const char *h, size_t n)
{
    char buf[16];
    unsigned a, b, c, d;
    char extra;
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, h, n);
    buf[n] = 0;
    if (strspn(buf, "0123456789.") != n) return 0;
    if (sscanf(buf, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4) return 0;
    return a == 127 && b < 256 && c < 256 && d < 256;
}

static int is_loopback(const char *h, size_t n)
{
    if (n == 9 && strncasecmp(h, "localhost", 9) == 0) return 1;
    if (n == 10 && strncasecmp(h, "localhost.", 10) == 0) return 1;
    if ((n == 5 && memcmp(h, "[::1]", 5) == 0) || (n == 3 && memcmp(h, "::1", 3) == 0)) return 1;
    return is_ipv4_loopback(h, n);
}

int dv_url_cleartext_remote(const char *url, char *host, size_t hostsz)
{
    const char *h, *end, *at, *colon;
    size_t n;
    if (host && hostsz) host[0] = 0;
    if (!url || strncasecmp(url, "http://", 7) != 0) return 0;
    h = url + 7;
    end = h + strcspn(h, "/?#");
    /* user info: "http://127.0.0.1@example.com" goes to example.com */
    while ((at = memchr(h, '@', (size_t)(end - h))) != NULL)
        h = at + 1;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        n = close ? (size_t)(close - h) + 1 : (size_t)(end - h);
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        n = colon ? (size_t)(colon - h) : (size_t)(end - h);
    }
    if (host && hostsz) snprintf(host, hostsz, "%.*s", (int)n, h);
    return !is_loopback(h, n);
}
