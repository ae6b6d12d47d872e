/* libFuzzer target for the emulator's request router and handlers, with bodies: the emulator
 * runs in this process (in memory, the ChangeTrackingSample solution imported so alternate keys
 * exist), and each input becomes one HTTP request sent to it over loopback.
 *
 * Input: "METHOD PATH\n" then headers "Name: value\n" up to an empty line, then the body. PATH
 * is below /api/data/v9.2/ (query string included, sent as written). Content-Length and
 * Authorization are added here, so every request reaches the router.
 *
 * Checked on every answer, beyond "no crash, no leak, no undefined behaviour": no 500 (a request
 * that reaches no handler's error path is a bug), and every status >= 400 carries a
 * Dataverse-shaped body ({"error":{"code":…,"message":…}}), as every refusal must.
 * Build: make fuzz. Run: make fuzz-short, or see docs/FUZZ.md. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "emulator/emulator.h"
#include "solution_zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static dv_emulator *emu;
static int port;
static long last_ms;
static char last_request[8192]; /* the head of the last request, for failure reports */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static int conn_fd = -1; /* one keep-alive connection, opened again when the server closes it */

static int open_conn(void)
{
    struct sockaddr_in a;
    struct timeval tv = {15, 0};
    for (int tries = 0; tries < 50; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
        perror("http_fuzz: connect");
        close(fd);
        usleep(100000);
    }
    abort();
}

static const char *find_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') return p + 3 + n;
    return NULL;
}

/* Sends one request and reads one answer (head, then Content-Length bytes of body). Returns
 * the status, or 0 when no answer arrived; *resp holds status line, headers and body. */
static int exchange_once(const buf *req, buf *resp, int *nothing)
{
    *nothing = 1;
    resp->n = 0;
    if (conn_fd < 0) conn_fd = open_conn();
    for (size_t off = 0; off < req->n;) {
        ssize_t w = send(conn_fd, req->p + off, req->n - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may answer (413, 400) before reading everything */
        off += (size_t)w;
    }
    char tmp[65536];
    ssize_t r;
    size_t head_end = 0, want = 0;
    for (;;) {
        if (head_end && resp->n >= head_end + want) break;
        r = recv(conn_fd, tmp, sizeof tmp, 0);
        if (r <= 0) break;
        *nothing = 0;
        put(resp, tmp, (size_t)r);
        if (!head_end) {
            char *e = strstr(resp->p, "\r\n\r\n");
            if (e) {
                head_end = (size_t)(e - resp->p) + 4;
                char save = resp->p[head_end];
                resp->p[head_end] = 0;
                const char *cl = find_header(resp->p, "Content-Length");
                want = cl ? strtoul(cl, NULL, 10) : 0;
                resp->p[head_end] = save;
            }
        }
    }
    int complete = head_end && resp->n >= head_end + want;
    int closing =
        !complete || (head_end && find_header(resp->p, "Connection") &&
                      strncasecmp(find_header(resp->p, "Connection") + 1, "close", 5) == 0);
    if (closing) {
        close(conn_fd);
        conn_fd = -1;
    }
    if (!complete || memcmp(resp->p, "HTTP/1.", 7) != 0) return 0;
    return atoi(resp->p + 9);
}

/* A kept-alive connection the server closed meanwhile gets one fresh try. */
static int exchange(const buf *req, buf *resp)
{
    int nothing;
    int st = exchange_once(req, resp, &nothing);
    if (st == 0 && nothing) st = exchange_once(req, resp, &nothing);
    return st;
}

static int request(const char *method, const char *path, const char *extra_headers,
                   const char *body, size_t body_len, buf *resp)
{
    buf req = {0};
    char line[128];
    puts_(&req, method);
    puts_(&req, " /api/data/v9.2/");
    puts_(&req, path);
    puts_(&req, " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Authorization: Bearer fuzz\r\nAccept: application/json\r\n");
    puts_(&req, extra_headers);
    snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", body_len);
    puts_(&req, line);
    put(&req, body, body_len);
    snprintf(last_request, sizeof last_request, "%.*s", (int)(req.n < 8000 ? req.n : 8000), req.p);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = exchange(&req, resp);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    last_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    free(req.p);
    return status;
}

static void setup(void)
{
    char err[512];
    dv_emulator_options o;
    memset(&o, 0, sizeof o);
    o.db = ":memory:";
    o.key_delay = 0;
    o.max_body = 1 << 20;
    signal(SIGPIPE, SIG_IGN);
    emu = dv_emulator_start(&o, err, sizeof err);
    if (!emu) {
        fprintf(stderr, "http_fuzz: cannot start the emulator: %s\n", err);
        exit(1);
    }
    port = atoi(strrchr(dv_emulator_url(emu), ':') + 1);

    void *zip;
    size_t zlen, blen;
    if (dv_solution_zip_pack_dir("scripts/solutions/ChangeTrackingSample", &zip, &zlen, err,
                                 sizeof err)) {
        fprintf(stderr, "http_fuzz: run from the repository root (%s)\n", err);
        exit(1);
    }
    char *b64 = dv_base64_encode(zip, zlen, &blen);
    free(zip);
    buf body = {0}, resp = {0};
    puts_(&body, "{\"OverwriteUnmanagedCustomizations\":false,\"PublishWorkflows\":false,"
                 "\"ImportJobId\":\"6f1a1f7e-2d6c-4c87-9e61-1a2b3c4d5e6f\","
                 "\"CustomizationFile\":\"");
    puts_(&body, b64);
    puts_(&body, "\"}");
    free(b64);
    int st = request("POST", "ImportSolution", "Content-Type: application/json\r\n", body.p, body.n,
                     &resp);
    if (st != 204 && st != 200) {
        fprintf(stderr, "http_fuzz: ImportSolution answered %d\n%s\n", st, resp.p);
        exit(1);
    }
    static const char *const rows[][2] = {
        {"contacts", "{\"firstname\":\"Ada\",\"lastname\":\"Lovelace\",\"emailaddress1\":\"a@x\"}"},
        {"accounts", "{\"name\":\"Contoso\",\"revenue\":1000}"},
        {"sample_books", "{\"sample_name\":\"Dune\",\"sample_bookcode\":\"B1\"}"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        request("POST", rows[i][0], "Content-Type: application/json\r\n", rows[i][1],
                strlen(rows[i][1]), &resp);
    free(body.p);
    free(resp.p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

/* Every refusal carries {"error":{"code":"…","message":"…"}}; OAuth endpoints aside. */
static void check_answer(int status, const buf *resp, const char *what)
{
    if (status == 0) {
        fprintf(stderr,
                "http_fuzz: no answer after %ld ms to %s\n--- request:\n%s\n--- answer:\n%.*s\n",
                last_ms, what, last_request, (int)resp->n, resp->p ? resp->p : "");
        abort();
    }
    if (status == 500) {
        fprintf(stderr, "http_fuzz: 500 for %s\n%s\n", what, resp->p);
        abort();
    }
    if (status >= 400) {
        const char *body = strstr(resp->p, "\r\n\r\n");
        if (!body || !strstr(body, "\"error\"") || !strstr(body, "\"code\"") ||
            !strstr(body, "\"message\"")) {
            fprintf(stderr, "http_fuzz: %d without a Dataverse error body for %s\n%s\n", status,
                    what, resp->p);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static buf resp;
    const char *p = (const char *)data, *end = p + size;
    const char *nl = memchr(p, '\n', size);
    if (!nl) return 0;
    char method[16], path[4096];
    const char *sp = memchr(p, ' ', (size_t)(nl - p));
    if (!sp || sp - p >= (long)sizeof method || nl - sp - 1 >= (long)sizeof path) return 0;
    memcpy(method, p, (size_t)(sp - p));
    method[sp - p] = 0;
    memcpy(path, sp + 1, (size_t)(nl - sp - 1));
    path[nl - sp - 1] = 0;
    /* The request line must stay one request line: no spaces, controls or bytes >= 0x80 that
     * libmicrohttpd would refuse before any handler runs (that path is not what this target
     * is for). */
    for (const char *m = method; *m; m++)
        if (*m < 'A' || *m > 'Z') return 0;
    for (const unsigned char *q = (const unsigned char *)path; *q; q++)
        if (*q <= ' ' || *q >= 0x7f) return 0;
    if (!method[0]) return 0;

    buf headers = {0};
    puts_(&headers, "");
    p = nl + 1;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        if (e == p) {
            p++;
            break;
        }
        const char *colon = memchr(p, ':', (size_t)(e - p));
        int ok = colon && colon > p;
        for (const unsigned char *q = (const unsigned char *)p; ok && q < (const unsigned char *)e;
             q++)
            if ((*q < ' ' && *q != '\t') || *q == 0x7f) ok = 0;
        if (ok && !(colon - p == 14 && strncasecmp(p, "content-length", 14) == 0) &&
            !(colon - p == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) &&
            !(colon - p == 13 && strncasecmp(p, "authorization", 13) == 0) &&
            !(colon - p == 10 && strncasecmp(p, "connection", 10) == 0) &&
            !(colon - p == 4 && strncasecmp(p, "host", 4) == 0)) {
            put(&headers, p, (size_t)(e - p));
            puts_(&headers, "\r\n");
        }
        p = e < end ? e + 1 : end;
    }
    int status = request(method, path, headers.p, p, (size_t)(end - p), &resp);
    char what[4200];
    snprintf(what, sizeof what, "%s %s", method, path);
    check_answer(status, &resp, what);
    free(headers.p);
    return 0;
}
