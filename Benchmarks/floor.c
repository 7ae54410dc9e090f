/* Raw floors for the sandbox lines of `plexus bench`, measured in the same
** run so each Plexus figure is printed beside what the kernel alone costs:
**
**   floor rr N          64-byte round trips over a Unix stream socketpair
**                       (the transport of a worker channel) and over pipes,
**                       parent and forked child, both pinned to CPU 0;
**                       prints the p50 in us
**   floor batch N       one-way 64-byte messages over a socketpair, written
**                       64 per syscall, read in 64 KiB reads; prints msgs/s
**   floor spawn N SO    posix_spawn of this program, which dlopens SO and
**                       exits, then waitpid; prints the p50 in ms
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return v[n / 2]; }

static void full(ssize_t (*io)(int, void *, size_t), int fd, void *b, size_t n) {
    char *p = b;
    while (n) {
        ssize_t r = io(fd, p, n);
        if (r <= 0) exit(1);
        p += r; n -= (size_t)r;
    }
}
static ssize_t wr(int fd, void *b, size_t n) { return write(fd, b, n); }

static double round_trips(int a[2], int b[2], int n) {
    char msg[64] = {0};
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < n; i++) { full(read, a[1], msg, 64); full(wr, b[1], msg, 64); }
        _exit(0);
    }
    double *t = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double s = now_us();
        full(wr, a[0], msg, 64);
        full(read, b[0], msg, 64);
        t[i] = now_us() - s;
    }
    waitpid(c, NULL, 0);
    double m = median(t, n);
    free(t);
    return m;
}

/* Round trips per second over one unix stream socketpair between two
** processes the scheduler places freely: the floor beside client_rr_per_s. */
static void rr_rate(int n) {
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    char msg[64] = {0};
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < n; i++) { full(read, s[1], msg, 64); full(wr, s[1], msg, 64); }
        _exit(0);
    }
    double t0 = now_us();
    for (int i = 0; i < n; i++) { full(wr, s[0], msg, 64); full(read, s[0], msg, 64); }
    double secs = (now_us() - t0) / 1e6;
    waitpid(c, NULL, 0);
    printf("raw_unix_stream_rr_per_s: %.0f round trips/s\n", n / secs);
}

static void rr(int n) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);   /* the child inherits it: one core */
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    /* One socketpair: the parent writes and reads s[0], the child s[1]. */
    int pa[2] = { s[0], s[1] }, pb[2] = { s[0], s[1] };
    printf("raw_unix_stream_rr_samecore_p50_us: %.2f us\n", round_trips(pa, pb, n));
    int p1[2], p2[2];
    if (pipe(p1) || pipe(p2)) exit(1);
    int qa[2] = { p1[1], p1[0] }, qb[2] = { p2[0], p2[1] };
    printf("raw_pipe_rr_samecore_p50_us: %.2f us\n", round_trips(qa, qb, n));
}

static void batch(int n) {
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    pid_t c = fork();
    if (c == 0) {
        static char buf[65536];
        long total = (long)n * 64, got = 0;
        while (got < total) { ssize_t r = read(s[1], buf, sizeof buf); if (r <= 0) _exit(1); got += r; }
        (void)!write(s[1], "k", 1);
        _exit(0);
    }
    static char out[64 * 64];
    double t0 = now_us();
    for (int i = 0; i < n; i += 64) full(wr, s[0], out, sizeof out);
    char k;
    full(read, s[0], &k, 1);
    double us = now_us() - t0;
    waitpid(c, NULL, 0);
    printf("raw_unix_stream_batched_oneway_per_s: %.0f msgs/s\n", n / (us / 1e6));
}

static void spawn(int n, const char *self, const char *so) {
    double *t = malloc(sizeof(double) * (size_t)n);
    char *argv[] = { (char *)self, "dlopen", (char *)so, NULL };
    for (int i = 0; i < n; i++) {
        double s = now_us();
        pid_t pid;
        if (posix_spawn(&pid, self, NULL, NULL, argv, environ) != 0) exit(1);
        int st;
        waitpid(pid, &st, 0);
        t[i] = now_us() - s;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "floor: dlopen of %s failed\n", so); exit(1); }
    }
    printf("raw_spawn_dlopen_p50_ms: %.3f ms\n", median(t, n) / 1000);
    free(t);
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "dlopen")) return dlopen(argv[2], RTLD_NOW | RTLD_LOCAL) ? 0 : 1;
    if (argc >= 3 && !strcmp(argv[1], "rr")) { rr(atoi(argv[2])); return 0; }
    if (argc >= 3 && !strcmp(argv[1], "rrps")) { rr_rate(atoi(argv[2])); return 0; }
    if (argc >= 3 && !strcmp(argv[1], "batch")) { batch(atoi(argv[2]) / 64 * 64); return 0; }
    if (argc >= 4 && !strcmp(argv[1], "spawn")) { spawn(atoi(argv[2]), argv[0], argv[3]); return 0; }
    fprintf(stderr, "usage: floor rr N | floor batch N | floor spawn N PLUGIN.so\n");
    return 64;
}
