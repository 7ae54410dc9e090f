/* client_rr — round trips per second from a C program through a running
** host's socket (SDK/c/plexus_client) to an agent and back.
**     client_rr SOCKET TARGET N
** Prints "client_rr_per_s: R round trips/s". Run by `plexus bench`. */
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

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: client_rr SOCKET TARGET N\n"); return 2; }
    char err[512];
    plexus_client *c;
    if (plexus_client_connect(argv[1], &c, err, sizeof err) != PLEXUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
    int n = atoi(argv[3]);
    double t0 = 0;
    for (int i = -1000; i < n; i++) {   /* 1000 warm-up calls */
        if (i == 0) t0 = now_s();
        plexus_answer *a;
        plexus_status s = plexus_client_call(c, PLEXUS_TARGET_AGENT, argv[2], "", NULL, 0, 10000, &a);
        if (s != PLEXUS_OK || a->status != PLEXUS_OK) {
            fprintf(stderr, "%s: %s\n", plexus_status_name(s ? s : a->status), plexus_client_last_error(c));
            return 1;
        }
        plexus_answer_free(a);
    }
    printf("client_rr_per_s: %.0f round trips/s\n", n / (now_s() - t0));
    plexus_client_close(c);
    return 0;
}
