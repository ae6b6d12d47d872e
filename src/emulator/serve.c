/* `dvlua --serve`: the emulator in the foreground, its URL on stdout, until SIGINT/SIGTERM. */
#include "serve.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emulator.h"
#include "limits.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int usage(const char *prog, const char *why)
{
    fprintf(stderr,
            "%s: --serve: %s\n"
            "usage: %s --serve [--listen HOST:PORT] [--db FILE|:memory:] [--token-file FILE] "
            "[--faults SPEC] [--retention SECONDS] [--max-body BYTES]\n"
            "       [--limits [requests=N,execution_ms=N,concurrent=N,window=SECONDS]]\n"
            "       [--latency request_ms=N,per_row_ms=N] [--dop-hint N] [--stats FILE]\n"
            "  the token may also come from the environment: DVLUA_EMULATOR_TOKEN\n",
            prog, why, prog);
    return 2;
}

/* A decimal port number, nothing else: "notaport", "80x" or "" are refused, not read as 0
 * (port 0, given as "0", asks the system for a free port). */
static int parse_port(const char *s, unsigned short *port)
{
    char *end;
    long v;
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5) return -1;
    v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 65535) return -1;
    *port = (unsigned short)v;
    return 0;
}

/* The first line of path, without its line end. The file's content never appears in an error:
 * a token file given by mistake could hold any secret. */
static int read_token_file(const char *path, char *out, size_t outsz, char *why, size_t whysz)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (!f) {
        snprintf(why, whysz, "--token-file %s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(out, (int)outsz, f)) out[0] = 0;
    n = strlen(out);
    int too_long = n == outsz - 1 && out[n - 1] != '\n' && !feof(f);
    fclose(f);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = 0;
    if (too_long) {
        snprintf(why, whysz, "--token-file %s: the token is longer than %zu bytes", path,
                 outsz - 2);
        return -1;
    }
    if (n == 0) {
        snprintf(why, whysz, "--token-file %s: the first line is empty", path);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] <= ' ' || out[i] == 0x7f) {
            snprintf(why, whysz,
                     "--token-file %s: the token contains a space or a control character at "
                     "byte %zu (a bearer token is one word)",
                     path, i + 1);
            return -1;
        }
    return 0;
}

/* --stats FILE: the counters of the whole run as one JSON line, written when it stops, for
 * benchmarks that serve the emulator from its own process. */
static void write_stats(dv_emulator *emu, const char *path, const char *prog)
{
    dv_emulator_stats s;
    dv_emulator_get_stats(emu, &s, 0);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: --serve: cannot write --stats to %s\n", prog, path);
        return;
    }
    fprintf(f,
            "{\"requests\":%ld,\"throttled\":%ld,\"peak_concurrent\":%d,\"busy_ms\":%.1f,"
            "\"lock_wait_ms\":%.1f,\"latency_ms\":%.1f,\"writes\":%ld,\"commits\":%ld,"
            "\"write_wait_ms\":%.1f,\"write_ms\":%.1f,\"commit_ms\":%.1f}\n",
            s.requests, s.throttled, s.peak_concurrent, s.busy_ms, s.lock_wait_ms, s.latency_ms,
            s.writes, s.commits, s.write_wait_ms, s.write_ms, s.commit_ms);
    fclose(f);
}

int dv_serve_main(int argc, char **argv)
{
    dv_emulator_options o;
    memset(&o, 0, sizeof o);
    o.key_delay = -1;
    char host[64] = "127.0.0.1";
    o.host = host;
    o.db = ":memory:";
    static char token[4096];
    const char *env_token = getenv("DVLUA_EMULATOR_TOKEN");
    if (env_token && *env_token) o.token = env_token;
    emu_guard_opts go;
    memset(&go, 0, sizeof go);
    const char *stats_path = NULL;
    char perr[256];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--limits") == 0) {
            /* The value is optional: alone, the flag switches on Dataverse's defaults. */
            go.limits = 1;
            if (v && strncmp(v, "--", 2) != 0) {
                if (emu_guard_parse(v, 0, &go, perr, sizeof perr)) return usage(argv[0], perr);
                i++;
            }
            continue;
        }
        if (!v) return usage(argv[0], "an option is missing its value");
        if (strcmp(a, "--latency") == 0) {
            if (emu_guard_parse(v, 1, &go, perr, sizeof perr)) return usage(argv[0], perr);
        } else if (strcmp(a, "--dop-hint") == 0) {
            long d = strtol(v, NULL, 10);
            if (d < 1 || d > 10000) return usage(argv[0], "--dop-hint wants a number from 1");
            o.dop_hint = (int)d;
        } else if (strcmp(a, "--listen") == 0) {
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof host)
                return usage(argv[0], "--listen wants HOST:PORT");
            snprintf(host, sizeof host, "%.*s", (int)(colon - v), v);
            if (parse_port(colon + 1, &o.port))
                return usage(argv[0], "--listen: the port must be a number from 0 to 65535 "
                                      "(0: any free port)");
        } else if (strcmp(a, "--db") == 0) {
            o.db = v;
        } else if (strcmp(a, "--token") == 0) {
            /* Kept for old scripts; anyone on the machine can read it with ps. */
            fprintf(stderr,
                    "%s: --serve: warning: --token shows the token to every user of this "
                    "machine (ps); use --token-file FILE or DVLUA_EMULATOR_TOKEN instead\n",
                    argv[0]);
            o.token = v;
        } else if (strcmp(a, "--token-file") == 0) {
            char why[512];
            if (read_token_file(v, token, sizeof token, why, sizeof why)) {
                fprintf(stderr, "%s: --serve: %s\n", argv[0], why);
                return 2;
            }
            o.token = token;
        } else if (strcmp(a, "--faults") == 0) {
            o.faults = v;
        } else if (strcmp(a, "--retention") == 0) {
            o.retention = atof(v);
        } else if (strcmp(a, "--stats") == 0) {
            stats_path = v;
        } else if (strcmp(a, "--max-body") == 0) {
            o.max_body = atol(v);
        } else {
            return usage(argv[0], "unknown option");
        }
        i++;
    }
    o.limits = go.limits;
    o.limit_requests = go.requests;
    o.limit_execution_ms = go.execution_ms;
    o.limit_concurrent = go.concurrent;
    o.limit_window = go.window_s;
    o.latency_request_ms = go.latency.request_ms;
    o.latency_per_row_ms = go.latency.per_row_ms;
    char err[512];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    dv_emulator *emu = dv_emulator_start(&o, err, sizeof err);
    if (!emu) {
        fprintf(stderr, "%s: --serve: %s\n", argv[0], err);
        return 1;
    }
    printf("%s\n", dv_emulator_url(emu));
    fflush(stdout);
    while (!stop_requested)
        pause();
    if (stats_path) write_stats(emu, stats_path, argv[0]);
    dv_emulator_stop(emu);
    return 0;
}
