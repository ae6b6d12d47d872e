/* `dvlua --serve`: the emulator in the foreground, its URL on stdout, until SIGINT/SIGTERM. */
#include "serve.h"

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
            "usage: %s --serve [--listen HOST:PORT] [--db FILE|:memory:] [--token T] "
            "[--faults SPEC] [--retention SECONDS] [--max-body BYTES]\n"
            "       [--limits [requests=N,execution_ms=N,concurrent=N,window=SECONDS]]\n"
            "       [--latency request_ms=N,per_row_ms=N] [--dop-hint N] [--stats FILE]\n",
            prog, why, prog);
    return 2;
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
            "\"lock_wait_ms\":%.1f}\n",
            s.requests, s.throttled, s.peak_concurrent, s.busy_ms, s.lock_wait_ms);
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
            long port = strtol(colon + 1, NULL, 10);
            if (port < 0 || port > 65535) return usage(argv[0], "--listen: port out of range");
            o.port = (unsigned short)port;
        } else if (strcmp(a, "--db") == 0) {
            o.db = v;
        } else if (strcmp(a, "--token") == 0) {
            o.token = v;
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
