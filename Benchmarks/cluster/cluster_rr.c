/* cluster_rr — the raw libnats floors of `plexus bench --cluster`, and a
** socket client's round trips through a host, one call at a time:
**     cluster_rr raw URL N                 raw libnats: natsConnection_Request to a
**                                          responder on a second connection, with the
**                                          median round trip
**     cluster_rr pub URL N                 raw libnats: N 64-byte publishes on one
**                                          connection, counted on arrival by a
**                                          subscriber on a second one
**     cluster_rr plexus SOCKET AGENT N     a C client of one host calling an agent
**                                          (by name), which may run on another host
** Prints "<name>_per_s: R" and, for round trips, "<name>_p50_us: P" (name
** raw_nats_rr, raw_nats_publish, or cluster_rr / $CLUSTER_RR_NAME). Both
** connections set send-asap, as PlexusCluster's do. Built by Benchmarks/build.sh. */
#define _POSIX_C_SOURCE 200809L
#include "plexus_client.h"
#include <nats/nats.h>
#include <pthread.h>
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

struct arrivals {
    pthread_mutex_t lock;
    int64_t count;
    double last_us;
};

static void count_arrival(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)nc; (void)sub;
    struct arrivals *a = closure;
    double t = now_us();
    pthread_mutex_lock(&a->lock);
    a->count++;
    a->last_us = t;
    pthread_mutex_unlock(&a->lock);
    natsMsg_Destroy(msg);
}

/* Publishes n messages; the rate is what arrived over the time from the
** first publish to the last arrival. Stops waiting after 2 s without one
** (what libnats dropped as a slow consumer is then not counted). */
static int publish(const char *url, int n) {
    natsConnection *sender = NULL, *receiver = NULL;
    natsSubscription *sub = NULL;
    natsOptions *opts = NULL;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, url);
    natsOptions_SetSendAsap(opts, true);
    if (natsConnection_Connect(&sender, opts) != NATS_OK || natsConnection_Connect(&receiver, opts) != NATS_OK) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 1;
    }
    struct arrivals a = { .lock = PTHREAD_MUTEX_INITIALIZER };
    natsConnection_Subscribe(&sub, receiver, "bench.rawpub", count_arrival, &a);
    natsSubscription_SetPendingLimits(sub, 65536, 64 << 20);   /* as PlexusCluster's subscriptions */
    natsConnection_Flush(receiver);
    static const char payload[] = "0123456789012345678901234567890123456789012345678901234567890123";
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        if (natsConnection_Publish(sender, "bench.rawpub", payload, 64) != NATS_OK) { fprintf(stderr, "raw publish failed\n"); return 1; }
    }
    natsConnection_Flush(sender);
    int64_t got;
    double last;
    for (;;) {   /* polled every millisecond: the waiting is not measured */
        pthread_mutex_lock(&a.lock);
        got = a.count;
        last = a.last_us;
        pthread_mutex_unlock(&a.lock);
        if (got >= n || (now_us() - (got ? last : t0)) > 2e6) break;
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
    }
    printf("raw_nats_publish_per_s: %.0f\n", got / ((last - t0) / 1e6));
    if (got < n) printf("raw_nats_publish_lost: %lld\n", (long long)(n - got));
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(sender);
    natsConnection_Destroy(receiver);
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
    if (argc == 4 && strcmp(argv[1], "pub") == 0) return publish(argv[2], atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "plexus") == 0) return plexus(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: cluster_rr raw URL N | cluster_rr pub URL N | cluster_rr plexus SOCKET AGENT N\n");
    return 2;
}
