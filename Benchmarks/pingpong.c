/* Benchmark agents for `plexus bench`. Built twice per pair:
**   -DAGENT_NAME='"ping0"' -DPEER='"pong0"' -DPING   drives the measurement
**   -DAGENT_NAME='"pong0"'                            answers
** ping, asked "rr N", makes N request/reply round trips to its peer through the
** router, then answers; asked "oneway N", sends N commands (yielding when the
** peer's mailbox is full) and answers once the peer has counted them all;
** asked "rrtimed N", makes N round trips timing each, and answers
** "PER_S P50_US"; asked "pub N", publishes N 64-byte events to bench.pub and
** answers once they are handed on (`plexus bench --cluster`).
** pong subscribes to bench.pub and counts the events; asked "count", it
** answers "EVENTS LAST_NS" (the CLOCK_MONOTONIC time of the last arrival). */
#define _POSIX_C_SOURCE 200809L
#ifdef PING
#define PLEXUS_AGENT_PERMISSION_LIST 3, bench_permissions
#else
#define PLEXUS_AGENT_PERMISSION_LIST 1, bench_permissions
#define PLEXUS_AGENT_ON_INIT(config) plexus_subscribe("bench.pub")
#endif
#include "plexus_agent.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef PEER
#define PEER ""
#endif

static uint64_t total, done, sent, received, events, last_event_ns;
static plexus_id starter;
static double *lat;        /* rrtimed: each round trip's time, microseconds */
static uint64_t began_ns, lat_t0;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static plexus_envelope to_peer(void) {
    plexus_envelope e = plexus_envelope_init();
    e.target_kind = PLEXUS_TARGET_AGENT;
    e.target = PEER;
    return e;
}

static plexus_status finish(void) {
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = starter;
    return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
}

static plexus_status ping_once(void) {
    plexus_envelope e = to_peer();
    if (lat) began_ns = now_ns();
    return plexus_sdk_host->request(plexus_sdk_ctx(), &e, 60000, NULL);
}

/* rrtimed's answer: round trips per second and the median, then forget. */
static plexus_status finish_timed(void) {
    double secs = (double)(now_ns() - lat_t0) / 1e9;
    qsort(lat, (size_t)total, sizeof *lat, by_value);
    char out[64];
    int n = snprintf(out, sizeof out, "%.0f %.1f", (double)total / secs, lat[total / 2]);
    free(lat);
    lat = NULL;
    total = 0;
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = starter;
    r.payload = (const uint8_t *)out;
    r.payload_len = (uint64_t)n;
    return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
}

static plexus_status publish_all(uint64_t n) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = PLEXUS_KIND_EVENT;
    e.target_kind = PLEXUS_TARGET_TOPIC;
    e.target = "bench.pub";
    e.payload = (const uint8_t *)"0123456789012345678901234567890123456789012345678901234567890123";
    e.payload_len = 64;
    for (uint64_t i = 0; i < n; i++) {
        plexus_status s = plexus_sdk_host->publish(plexus_sdk_ctx(), &e);
        if (s != PLEXUS_OK) return s;
    }
    return finish();
}

static plexus_status pump(void) {
    plexus_envelope e = to_peer();
    e.payload = (const uint8_t *)"0123456789012345678901234567890123456789012345678901234567890123";
    e.payload_len = 64;
    while (sent < total) {
        plexus_status s = plexus_sdk_host->send(plexus_sdk_ctx(), &e);
        if (s == PLEXUS_MAILBOX_FULL) {          /* yield: continue after the peer drained some */
            plexus_envelope self = plexus_envelope_init();
            self.target_kind = PLEXUS_TARGET_AGENT;
            self.target = AGENT_NAME;
            self.payload = (const uint8_t *)"pump";
            self.payload_len = 4;
            return plexus_sdk_host->send(plexus_sdk_ctx(), &self);
        }
        if (s != PLEXUS_OK) return s;
        sent++;
    }
    total = 0;
    return ping_once();                           /* answered after every command (FIFO) */
}

static plexus_status handle(const plexus_envelope *m) {
#ifdef PING
    if (m->kind == PLEXUS_KIND_ERROR) {            /* a round trip failed (TIMEOUT, UNAVAILABLE…): so does the measurement */
        free(lat);
        lat = NULL;
        total = 0;
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_ERROR;
        r.correlation_id = starter;
        r.status = m->status;
        r.content_type = m->content_type;
        r.payload = m->payload;
        r.payload_len = m->payload_len;
        return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
    }
    if (m->kind == PLEXUS_KIND_RESPONSE) {
        if (total == 0) return finish();          /* oneway: the peer has seen everything */
        if (lat) {
            lat[done] = (double)(now_ns() - began_ns) / 1e3;
            if (++done < total) return ping_once();
            return finish_timed();
        }
        if (++done < total) return ping_once();
        total = 0;
        return finish();
    }
    if (m->payload_len == 4 && memcmp(m->payload, "pump", 4) == 0) return pump();
    char cmd[64] = {0};
    memcpy(cmd, m->payload, m->payload_len < 63 ? m->payload_len : 63);
    starter = m->id;
    if (strncmp(cmd, "rr ", 3) == 0) { total = strtoull(cmd + 3, NULL, 10); done = 0; return ping_once(); }
    if (strncmp(cmd, "oneway ", 7) == 0) { total = strtoull(cmd + 7, NULL, 10); sent = 0; return pump(); }
    if (strncmp(cmd, "rrtimed ", 8) == 0) {
        total = strtoull(cmd + 8, NULL, 10);
        if (total == 0 || !(lat = malloc(sizeof *lat * total))) { total = 0; return PLEXUS_INVALID_ARGUMENT; }
        done = 0;
        lat_t0 = now_ns();
        return ping_once();
    }
    if (strncmp(cmd, "pub ", 4) == 0) return publish_all(strtoull(cmd + 4, NULL, 10));
    return PLEXUS_UNSUPPORTED;
#else
    if (m->kind == PLEXUS_KIND_QUERY) {
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_RESPONSE;
        r.correlation_id = m->id;
        char out[64];
        if (m->payload_len == 5 && memcmp(m->payload, "count", 5) == 0) {
            r.payload = (const uint8_t *)out;
            r.payload_len = (uint64_t)snprintf(out, sizeof out, "%llu %llu", (unsigned long long)events, (unsigned long long)last_event_ns);
        }
        return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
    }
    if (m->kind == PLEXUS_KIND_EVENT) { events++; last_event_ns = now_ns(); return PLEXUS_OK; }
    received++;
    return PLEXUS_OK;
#endif
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("bench." AGENT_NAME, "benchmark agent") };
#ifdef PING   /* ping calls its peer, and itself to yield, and publishes; pong answers and listens */
static const plexus_permission bench_permissions[] = {
    PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, PEER), PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, AGENT_NAME),
    PLEXUS_PERMISSION(PLEXUS_PERMIT_PUBLISH, "bench.pub") };
#else
static const plexus_permission bench_permissions[] = { PLEXUS_PERMISSION(PLEXUS_PERMIT_SUBSCRIBE, "bench.pub") };
#endif
PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
