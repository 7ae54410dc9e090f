/* cluster_rr — request/reply round trips through NATS, two ways, one call at
** a time, with the median round trip:
**     cluster_rr raw URL N                 raw libnats: natsConnection_Request to a
**                                          responder on a second connection
**     cluster_rr plexus SOCKET AGENT N     a C client of one host calling an agent
**                                          (by name) that runs on another host
** Prints "<name>_per_s: R" and "<name>_p50_us: P" (name raw_nats_rr or
** cluster_rr). Run by Benchmarks/cluster.sh. */
#define _POSIX_C_SOURCE 200809L
#include "plexus_client.h"
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *lat, int n, double total_us) {
    qsort(lat, (size_t)n, sizeof *lat, by_value);
    printf("%s_per_s: %.0f\n%s_p50_us: %.0f\n", name, n / (total_us / 1e6), name, lat[n / 2]);
}

static void echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)sub; (void)closure;
    natsConnection_Publish(nc, natsMsg_GetReply(msg), natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

static int raw(const char *url, int n) {
    natsConnection *server = NULL, *client = NULL;
    natsSubscription *sub = NULL;
    /* Replies written at once, as PlexusCluster's connections do (natsOptions_SetSendAsap). */
    natsOptions *opts = NULL;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, url);
    natsOptions_SetSendAsap(opts, true);
    if (natsConnection_Connect(&server, opts) != NATS_OK || natsConnection_Connect(&client, opts) != NATS_OK) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 1;
    }
    natsConnection_Subscribe(&sub, server, "bench.rr", echo, NULL);
    natsConnection_Flush(server);
    double *lat = malloc(sizeof *lat * (size_t)n), t0 = 0;
    for (int i = -1000; i < n; i++) {   /* 1000 warm-up calls */
        if (i == 0) t0 = now_us();
        double s = now_us();
        natsMsg *reply = NULL;
        if (natsConnection_RequestString(&reply, client, "bench.rr", "x", 10000) != NATS_OK) { fprintf(stderr, "raw request failed\n"); return 1; }
        natsMsg_Destroy(reply);
        if (i >= 0) lat[i] = now_us() - s;
    }
    report("raw_nats_rr", lat, n, now_us() - t0);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(client);
    natsConnection_Destroy(server);
    natsOptions_Destroy(opts);
    return 0;
}

static int plexus(const char *socket, const char *agent, int n) {
    plexus_client *c;
    char err[512];
    if (plexus_client_connect_as(socket, NULL, NULL, &c, err, sizeof err) != PLEXUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
    double *lat = malloc(sizeof *lat * (size_t)n), t0 = 0;
    for (int i = -1000; i < n; i++) {
        if (i == 0) t0 = now_us();
        double s = now_us();
        plexus_answer *a;
        plexus_status st = plexus_client_call(c, PLEXUS_TARGET_AGENT, agent, "", NULL, 0, 10000, &a);
        if (st != PLEXUS_OK || a->status != PLEXUS_OK) {
            fprintf(stderr, "%s: %s\n", plexus_status_name(st ? st : a->status), plexus_client_last_error(c));
            return 1;
        }
        plexus_answer_free(a);
        if (i >= 0) lat[i] = now_us() - s;
    }
    report(getenv("CLUSTER_RR_NAME") ? getenv("CLUSTER_RR_NAME") : "cluster_rr", lat, n, now_us() - t0);
    plexus_client_close(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "raw") == 0) return raw(argv[2], atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "plexus") == 0) return plexus(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: cluster_rr raw URL N | cluster_rr plexus SOCKET AGENT N\n");
    return 2;
}
