#define _GNU_SOURCE /* pipe2 */
#include "shared.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emulator.h"

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static int open_file(const char *dir, const char *name)
{
    char p[4096];
    path_in(p, sizeof p, dir, name);
    return open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

/* A TCP connection to the URL's port on loopback succeeds. */
static int answers(const char *url)
{
    const char *colon = strrchr(url, ':');
    struct sockaddr_in a;
    int fd, ok;
    if (!colon) return 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(colon + 1));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) return 0;
    ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The URL of a running shared emulator, from emulator.url, when its process is alive and
 * its port answers. */
static int find_running(const char *dir, char *url, size_t urlsz)
{
    char p[4096], line[512];
    long pid = 0;
    path_in(p, sizeof p, dir, "emulator.url");
    FILE *f = fopen(p, "re");
    if (!f) return 0;
    int ok = fgets(line, sizeof line, f) != NULL;
    if (ok) {
        line[strcspn(line, "\r\n")] = 0;
        char num[32];
        ok = fgets(num, sizeof num, f) != NULL && (pid = atol(num)) > 0;
    }
    fclose(f);
    if (!ok || strncmp(line, "http://127.0.0.1:", 17) != 0) return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
    if (!answers(line)) return 0;
    snprintf(url, urlsz, "%s", line);
    return 1;
}

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The shared emulator itself, in its own session; tells the starter its URL (or why it
 * could not start) through ready, then serves until no client is left. */
static void serve(const char *dir, int ready)
{
    char db[4096], urlp[4096], tmp[4200], err[512];
    dv_emulator_options o;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    prctl(PR_SET_NAME, "dvlua-emulator", 0, 0, 0);
    int clients = open_file(dir, "emulator.clients");
    int lock = open_file(dir, "emulator.lock");
    memset(&o, 0, sizeof o);
    path_in(db, sizeof db, dir, "emulator.sqlite");
    o.db = db;
    o.key_delay = -1;
    dv_emulator *emu = clients >= 0 && lock >= 0 ? dv_emulator_start(&o, err, sizeof err) : NULL;
    if (!emu) {
        if (clients < 0 || lock < 0) snprintf(err, sizeof err, "%s", strerror(errno));
        dprintf(ready, "!%s\n", err);
        _exit(1);
    }
    path_in(urlp, sizeof urlp, dir, "emulator.url");
    snprintf(tmp, sizeof tmp, "%s.%ld", urlp, (long)getpid());
    FILE *f = fopen(tmp, "we");
    if (!f || fprintf(f, "%s\n%ld\n", dv_emulator_url(emu), (long)getpid()) < 0 || fflush(f) ||
        fsync(fileno(f)) || fclose(f) || rename(tmp, urlp)) {
        dprintf(ready, "!cannot write %s: %s\n", urlp, strerror(errno));
        _exit(1);
    }
    dprintf(ready, "%s\n", dv_emulator_url(emu));
    close(ready);
    fprintf(stderr, "dvlua emulator %ld: serving %s at %s\n", (long)getpid(), db,
            dv_emulator_url(emu));

    long idle_ms = 0;
    while (!stop_requested) {
        sleep_ms(250);
        if (flock(clients, LOCK_EX | LOCK_NB) == 0) {
            flock(clients, LOCK_UN);
            idle_ms += 250;
        } else {
            idle_ms = 0;
        }
        if (idle_ms < DV_SHARED_IDLE_S * 1000L) continue;
        /* Nobody may find us while we decide: a client that holds its shared lock by now
         * keeps us; one that comes later finds no URL file and starts a new emulator. */
        flock(lock, LOCK_EX);
        if (flock(clients, LOCK_EX | LOCK_NB) == 0) break;
        flock(lock, LOCK_UN);
        idle_ms = 0;
    }
    unlink(urlp);
    dv_emulator_stop(emu);
    fprintf(stderr, "dvlua emulator %ld: stopped\n", (long)getpid());
    _exit(0);
}

/* Starts the shared emulator as a grandchild in its own session (so it outlives this
 * process and is nobody's zombie), and reads its URL. */
static int start(const char *dir, char *url, size_t urlsz, char *err, size_t errlen)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC)) {
        snprintf(err, errlen, "cannot start the shared emulator: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        snprintf(err, errlen, "cannot start the shared emulator: %s", strerror(errno));
        return -1;
    }
    if (child == 0) {
        setsid();
        if (fork() != 0) _exit(0);
        /* Nothing of the starting process may stay open here: its client lock above all. */
        int ready = pipefd[1];
        DIR *d = opendir("/proc/self/fd");
        if (d) {
            int dfd = dirfd(d);
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                int fd = atoi(de->d_name);
                if (fd > 2 && fd != ready && fd != dfd) close(fd);
            }
            closedir(d);
        }
        int null = open("/dev/null", O_RDWR);
        char log[4096];
        path_in(log, sizeof log, dir, "emulator.log");
        int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (null >= 0) dup2(null, 0), dup2(null, 1);
        if (logfd >= 0) dup2(logfd, 2);
        if (null > 2) close(null);
        if (logfd > 2) close(logfd);
        serve(dir, ready);
    }
    close(pipefd[1]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    char buf[600];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(pipefd[0], buf + n, sizeof buf - 1 - n)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        n += (size_t)r;
        if (memchr(buf, '\n', n)) break;
    }
    close(pipefd[0]);
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (n == 0 || buf[0] == '!') {
        snprintf(err, errlen, "the shared emulator did not start: %s",
                 n ? buf + 1 : "it exited without a word");
        return -1;
    }
    snprintf(url, urlsz, "%s", buf);
    return 0;
}

int dv_shared_attach(const char *dir, char *url, size_t urlsz, int *handle, char *err,
                     size_t errlen)
{
    *handle = -1;
    int clients = open_file(dir, "emulator.clients");
    int lock = clients >= 0 ? open_file(dir, "emulator.lock") : -1;
    if (clients < 0 || lock < 0) {
        snprintf(err, errlen, "cannot open the emulator's files in %s: %s", dir, strerror(errno));
        if (clients >= 0) close(clients);
        return -1;
    }
    /* The client lock first: from here on the emulator cannot decide to stop under us. */
    while (flock(clients, LOCK_SH) && errno == EINTR) {
    }
    while (flock(lock, LOCK_EX) && errno == EINTR) {
    }
    int rc = 0;
    if (!find_running(dir, url, urlsz)) rc = start(dir, url, urlsz, err, errlen);
    flock(lock, LOCK_UN);
    close(lock);
    if (rc) {
        close(clients);
        return -1;
    }
    *handle = clients;
    return 0;
}

void dv_shared_detach(int handle)
{
    if (handle >= 0) close(handle);
}
