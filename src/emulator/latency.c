#include "latency.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* Counts the objects directly inside the root object's "value" array, skipping strings so
 * that braces in text do not count. One pass, no allocation. */
long emu_latency_rows(const char *s, size_t n)
{
    int depth = 0, in_value = 0;
    long rows = 0;
    const char *key = NULL;
    size_t keylen = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < n && s[i] != '"') {
                if (s[i] == '\\') i++;
                i++;
            }
            if (depth == 1) {
                key = s + start;
                keylen = i - start;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == 1 && c == '[' && key && keylen == 5 && memcmp(key, "value", 5) == 0)
                in_value = 1;
            else if (depth == 2 && in_value && c == '{')
                rows++;
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
            if (depth == 1) in_value = 0;
        }
    }
    return rows;
}

double emu_latency_wait(const emu_latency *l, const char *body, size_t len)
{
    double ms = l->request_ms;
    if (l->per_row_ms > 0 && body) ms += l->per_row_ms * (double)emu_latency_rows(body, len);
    if (ms <= 0) return 0;
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
    return ms;
}
