/* client_rr — requests per second from a C program through a running
** host's socket (SDK/c/plexus_client) to an agent and back.
**     client_rr SOCKET TARGET N            one call at a time: round trips
**     client_rr SOCKET TARGET N WINDOW     pipelined: up to WINDOW in flight
** Prints "client_rr_per_s: R round trips/s", or with WINDOW
** "client_rr_pipelined_per_s: R requests/s". Run by `plexus bench`. */
#define _POSIX_C_SOURCE 200809L
#include "plexus_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int failed(plexus_client *c, plexus_status s, const plexus_answer *a) {
    fprintf(stderr, "%s: %s\n", plexus_status_name(s ? s : a->status), plexus_client_last_error(c));
    return 1;
}

static int one_at_a_time(plexus_client *c, const char *target, int n) {
    double t0 = 0;
    for (int i = -1000; i < n; i++) {   /* 1000 warm-up calls */
        if (i == 0) t0 = now_s();
        plexus_answer *a;
        plexus_status s = plexus_client_call(c, PLEXUS_TARGET_AGENT, target, "", NULL, 0, 10000, &a);
        if (s != PLEXUS_OK || a->status != PLEXUS_OK) return failed(c, s, a);
        plexus_answer_free(a);
    }
    printf("client_rr_per_s: %.0f round trips/s\n", n / (now_s() - t0));
    return 0;
}

/* Keeps the window full in halves: submit until WINDOW are in flight (the
** frames go out in one write when the first wait flushes them), then take
** half of them back, so each write and each read carries many frames. */
static int pipelined(plexus_client *c, const char *target, int n, int window) {
    double t0 = 0;
    int warm = window * 4, sent = -warm, got = -warm;
    while (got < n) {
        if (got == 0 && t0 == 0) t0 = now_s();
        while (sent < n && sent - got < window) {
            plexus_status s = plexus_client_submit(c, PLEXUS_TARGET_AGENT, target, "", NULL, 0, 60000, NULL);
            if (s != PLEXUS_OK) return failed(c, s, NULL);
            sent++;
        }
        for (int k = 0; got < n && (k < window / 2 || k == 0); k++) {
            plexus_answer *a;
            plexus_status s = plexus_client_wait_any(c, 60000, NULL, &a);
            if (s != PLEXUS_OK || a->status != PLEXUS_OK) return failed(c, s, a);
            plexus_answer_free(a);
            got++;
            if (got == 0) break;   /* the warm-up ends: start the clock with a full window */
        }
    }
    printf("client_rr_pipelined_per_s: %.0f requests/s (window %d)\n", n / (now_s() - t0), window);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: client_rr SOCKET TARGET N [WINDOW]\n"); return 2; }
    char err[512];
    plexus_client *c;
    if (plexus_client_connect(argv[1], &c, err, sizeof err) != PLEXUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
    int n = atoi(argv[3]);
    int rc = argc == 5 ? pipelined(c, argv[2], n, atoi(argv[4])) : one_at_a_time(c, argv[2], n);
    plexus_client_close(c);
    return rc;
}
