/* ringbreaker — a plugin that breaks its worker's shared-memory ring
** (Sources/CPlexusInternal/include/plexus_ring.h), for RingTests.
**
** It finds the mapping as any code in the worker could (find_ring.h).
** Then it writes what a buggy or malicious worker might: an index far past
** the other, or a frame header whose length overruns everything; or it
** sends a valid frame over the socket, which carries none now. The host
** must kill only this worker, with the reason, and keep serving. */
#define _GNU_SOURCE
#include "plexus.h"
#include "plexus_agent.h"
#include "find_ring.h"
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* A whole, valid frame (plexus_wire.h: a QUERY to capability probe.echo),
** written on the socket instead of the ring. Returns its length. */
static size_t valid_frame(uint8_t *f) {
    static const char strings[] = "ringbreaker\0probe.echo\0text/plain\0hi";
    const uint16_t lens[4] = { 11, 10, 10, 0 };
    uint8_t *b = f + 12;
    memset(b, 0, 80);
    b[0] = PLEXUS_KIND_QUERY; b[1] = PLEXUS_TARGET_CAPABILITY; b[2] = 1;
    memset(b + 8, 1, 16); memset(b + 24, 2, 16); memset(b + 40, 3, 16);   /* id, correlation, trace */
    memcpy(b + 64, lens, 8);                                              /* after the deadline (i64) */
    put32(b + 72, 2);                                                     /* payload length */
    memcpy(b + 76, strings, sizeof strings - 1);
    uint32_t body = 76 + (uint32_t)sizeof strings - 1;
    memcpy(f, "PLXF\1\1\0\0", 8);
    put32(f + 8, body);
    return 12 + body;
}

/* The host's I/O thread wakes for output as for frames: a line tells it to look. */
static void nudge(void) { (void)!write(1, "ring broken\n", 12); }

static plexus_status handle(const plexus_envelope *m) {
    const char *cap = m->target;
    if (strcmp(cap, "ringbreaker.ok") == 0) return plexus_reply(m, "text/plain", "ok", 2);
    if (strcmp(cap, "ringbreaker.socket-frame") == 0) {   /* frames belong on the ring */
        uint8_t f[256];
        (void)!write(3, f, valid_frame(f));
        for (;;) pause();
    }
    uint8_t *ring = find_ring();
    if (!ring) return plexus_reply(m, "text/plain", "no ring found", 13);
    uint32_t capacity = get32(ring + 8);
    if (strcmp(cap, "ringbreaker.found") == 0) return plexus_reply(m, "text/plain", "found", 5);
    /* The host's wake-up words: who sleeps (nobody, or everybody) and the
    ** bell. A worker that lies here may delay its own answers, nothing else. */
    if (strcmp(cap, "ringbreaker.mute") == 0 || strcmp(cap, "ringbreaker.shout") == 0) {
        put32(ring + TO_HOST_SLEEPING, strcmp(cap, "ringbreaker.mute") == 0 ? 0 : 0xfffffffeu);
        put32(ring + TO_HOST_BELL, get32(ring + TO_HOST_BELL) + 12345u);
        return plexus_reply(m, "text/plain", cap + 12, strlen(cap + 12));
    }
    if (strcmp(cap, "ringbreaker.head") == 0) {         /* publishes more than the ring holds */
        put32(ring + TO_HOST_HEAD, get32(ring + TO_HOST_HEAD) + 3 * capacity);
        nudge();
    } else if (strcmp(cap, "ringbreaker.tail") == 0) {  /* claims to have read what the host never wrote */
        put32(ring + TO_WORKER_TAIL, get32(ring + TO_WORKER_TAIL) + 12345678u);
    } else if (strcmp(cap, "ringbreaker.length") == 0) {   /* a frame header claiming 4 GB, published properly */
        uint32_t head = get32(ring + TO_HOST_HEAD);
        uint8_t *data = ring + HEADER + capacity;
        const uint8_t h[12] = { 'P', 'L', 'X', 'F', 1, 1, 0, 0, 0xf0, 0xff, 0xff, 0xff };
        for (int i = 0; i < 12; i++) data[(head + (uint32_t)i) & (capacity - 1)] = h[i];
        put32(ring + TO_HOST_HEAD, head + 12);
        nudge();
    } else {
        return PLEXUS_UNSUPPORTED;
    }
    for (;;) pause();   /* the host must act on the ring, not on a silence */
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("ringbreaker.ok", NULL), PLEXUS_CAPABILITY("ringbreaker.found", NULL),
    PLEXUS_CAPABILITY("ringbreaker.head", NULL), PLEXUS_CAPABILITY("ringbreaker.tail", NULL),
    PLEXUS_CAPABILITY("ringbreaker.length", NULL), PLEXUS_CAPABILITY("ringbreaker.socket-frame", NULL),
    PLEXUS_CAPABILITY("ringbreaker.mute", NULL), PLEXUS_CAPABILITY("ringbreaker.shout", NULL),
};

PLEXUS_AGENT("ringbreaker", "1.0.0", caps, handle)
