/* ringattack — a worker that attacks a blocking Host.call reading its ring
** (BlockingCallAttackTests). Like ringbreaker it finds the ring mapping
** from inside the worker; unlike it, it keeps the host busy:
**   attack.echo         replies with its payload
**   attack.later MS     answered from a thread of its own MS ms later
**   attack.partials N S N partial answers of S bytes each (0: forever, status ignored), then "done"
**   attack.rawflood     writes valid trace-level LOG frames into the ring, as fast as it can, forever
**   attack.garbage      publishes a malformed frame header, then keeps the ring full of garbage forever
**   attack.logflood     starts a thread that logs (trace level, public API) without pause; replies "logging"
**   attack.halfframe    publishes half a frame, then is silent forever
**   attack.scribble     starts a thread that rewrites to_host `sleeping` and moves
**                   `bell` (futex wake) in a loop, forever; replies "scribbling"
*/
#define _GNU_SOURCE
#include "plexus.h"
#include "plexus_agent.h"
#include "answer_later.h"
#include "find_ring.h"
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef LOG_LEVEL
#define LOG_LEVEL 0
#endif
static uint32_t *word(uint8_t *ring, int off) { return (uint32_t *)(ring + off); }
static uint32_t load32(uint8_t *ring, int off) { return __atomic_load_n(word(ring, off), __ATOMIC_ACQUIRE); }
static void store32(uint8_t *ring, int off, uint32_t v) { __atomic_store_n(word(ring, off), v, __ATOMIC_RELEASE); }
static void wake_bell(uint8_t *ring) {
    __atomic_fetch_add(word(ring, TO_HOST_BELL), 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, word(ring, TO_HOST_BELL), FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void put32le(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put16le(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* A LOG control frame at level 0 (trace): "_plexus.log", payload "x". */
static uint32_t log_frame(uint8_t *f) {
    uint8_t *b = f + 12;
    memset(b, 0, 76);
    b[0] = PLEXUS_KIND_EVENT; b[1] = PLEXUS_TARGET_TOPIC; b[2] = PLEXUS_PRIORITY_NORMAL; b[3] = 0;
    put16le(b + 64, 0); put16le(b + 66, 11); put16le(b + 68, 0);
    put32le(b + 4, LOG_LEVEL);
    put32le(b + 72, 1);
    memcpy(b + 76, "\0_plexus.log\0\0x", 15);
    uint32_t body = 76 + 15;
    memcpy(f, "PLXF\1\1\0\0", 8);
    put32le(f + 8, body);
    return 12 + body;
}

/* A RESPONSE to a request nobody made (a fresh correlation id each time):
** the host dead-letters each as a late reply, which costs it far more than
** writing it costs the worker. */
static uint32_t reply_frame(uint8_t *f, uint64_t n) {
    uint8_t *b = f + 12;
    memset(b, 0, 76);
    b[0] = PLEXUS_KIND_RESPONSE; b[1] = PLEXUS_TARGET_REPLY; b[2] = PLEXUS_PRIORITY_NORMAL;
    memcpy(b + 24, &n, 8); memcpy(b + 32, &n, 8);   /* correlation id */
    put16le(b + 64, 0); put16le(b + 66, 0); put16le(b + 68, 10);
    put32le(b + 72, 2);
    memcpy(b + 76, "\0\0text/plain\0hi", 15);
    uint32_t body = 76 + 15;
    memcpy(f, "PLXF\1\1\0\0", 8);
    put32le(f + 8, body);
    return 12 + body;
}

static void ring_put(uint8_t *data, uint32_t cap, uint32_t at, const uint8_t *src, uint32_t n) {
    uint32_t o = at & (cap - 1);
    uint32_t first = cap - o < n ? cap - o : n;
    memcpy(data + o, src, first);
    if (n > first) memcpy(data, src + first, n - first);
}

/* Whatever the worker's own writer queued is flushed by now (its flusher
** fires 200 us after a handler starts); from here this thread is the ring's
** only writer. */
static void quiesce(void) { sleep_ms(30); }

static void raw_flood(uint8_t *ring, int replies) {
    uint32_t cap; memcpy(&cap, ring + 8, 4);
    uint8_t *data = ring + HEADER + cap;
    uint8_t f[128];
    uint32_t n = replies ? reply_frame(f, 1) : log_frame(f);
    uint32_t head = load32(ring, TO_HOST_HEAD);
    uint64_t k = 0;
    for (;;) {
        uint32_t tail = load32(ring, TO_HOST_TAIL);
        if (head - tail + n > cap) { sched_yield(); continue; }
        if (replies) { uint64_t id = k + 77; memcpy(f + 12 + 24, &id, 8); }
        ring_put(data, cap, head, f, n);
        head += n;
        store32(ring, TO_HOST_HEAD, head);
        if ((++k & 1023) == 1) wake_bell(ring);
    }
}

static void garbage(uint8_t *ring) {
    uint32_t cap; memcpy(&cap, ring + 8, 4);
    uint8_t *data = ring + HEADER + cap;
    uint32_t head = load32(ring, TO_HOST_HEAD);
    static const uint8_t bad[12] = { 'N', 'O', 'P', 'E', 1, 1, 0, 0, 16, 0, 0, 0 };
    ring_put(data, cap, head, bad, 12);
    for (;;) {   /* always full: whatever lies in the data area is "sent" */
        uint32_t tail = load32(ring, TO_HOST_TAIL);
        if (tail + cap != head) { head = tail + cap; store32(ring, TO_HOST_HEAD, head); wake_bell(ring); }
        else sched_yield();
    }
}

/* Half a frame (a header for 200000 bytes and 1000 of them), then silence. */
static void half_frame(uint8_t *ring) {
    uint32_t cap; memcpy(&cap, ring + 8, 4);
    uint8_t *data = ring + HEADER + cap;
    uint32_t head = load32(ring, TO_HOST_HEAD);
    uint8_t f[1012];
    memset(f, 0, sizeof f);
    memcpy(f, "PLXF\1\1\0\0", 8);
    put32le(f + 8, 200000);
    ring_put(data, cap, head, f, sizeof f);
    store32(ring, TO_HOST_HEAD, head + (uint32_t)sizeof f);
    wake_bell(ring);
    for (;;) pause();
}

/* A well-behaved API user: a thread of the plugin's own that logs at trace
** level (below what the host prints) without pause, through the host table. */
static void *logger_thread(void *ctx) {
    for (;;) plexus_sdk_host->log((plexus_ctx *)ctx, 0, "x");
    return NULL;
}

static void *scribbler(void *arg) {
    uint8_t *ring = arg;
    static const uint32_t lies[] = { 0, 0xfffffffeu, 1, 2, 0x7fffffffu, 0x80000000u, 3 };
    for (uint64_t i = 0;; i++) {
        store32(ring, TO_HOST_SLEEPING, lies[i % 7]);
        if (i % 3 == 0) wake_bell(ring);
        if (i % 64 == 0) sched_yield();
    }
    return NULL;
}

static long number(const uint8_t *p, uint64_t len) {
    char buf[32] = {0};
    memcpy(buf, p, len < 31 ? len : 31);
    return atol(buf);
}

static plexus_status handle(const plexus_envelope *m) {
    if (plexus_is(m, "attack.echo")) return plexus_reply(m, "text/plain", m->payload, m->payload_len);
    if (plexus_is(m, "attack.later")) return answer_later(m, "text/plain", "later");
    if (plexus_is(m, "attack.partials")) {
        char args[64] = {0};
        memcpy(args, m->payload, m->payload_len < 63 ? m->payload_len : 63);
        long count = atol(args);
        char *sp = strchr(args, ' ');
        long size = sp ? atol(sp + 1) : 16;
        char *buf = malloc((size_t)size + 1);
        if (!buf) return PLEXUS_NO_MEMORY;
        memset(buf, 'p', (size_t)size);
        for (long i = 0; count == 0 || i < count; i++) (void)plexus_reply_partial(m, "text/plain", buf, (size_t)size);
        free(buf);
        return plexus_reply(m, "text/plain", "done", 4);
    }
    if (plexus_is(m, "attack.logflood")) {
        static int started;
        if (!started) {
            pthread_t t;
            if (pthread_create(&t, NULL, logger_thread, plexus_sdk_ctx()) != 0) return PLEXUS_NO_MEMORY;
            pthread_detach(t);
            started = 1;
        }
        return plexus_reply(m, "text/plain", "logging", 7);
    }
    uint8_t *ring = find_ring();
    if (!ring) return plexus_reply(m, "text/plain", "no ring found", 13);
    if (plexus_is(m, "attack.scribble")) {
        static int started;
        if (!started) {
            pthread_t t;
            if (pthread_create(&t, NULL, scribbler, ring) != 0) return PLEXUS_NO_MEMORY;
            pthread_detach(t);
            started = 1;
        }
        return plexus_reply(m, "text/plain", "scribbling", 10);
    }
    if (plexus_is(m, "attack.rawflood")) { quiesce(); raw_flood(ring, m->payload_len >= 5 && !memcmp(m->payload, "reply", 5)); }
    if (plexus_is(m, "attack.garbage")) { quiesce(); garbage(ring); }
    if (plexus_is(m, "attack.halfframe")) { quiesce(); half_frame(ring); }
    (void)number;
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("attack.echo", NULL), PLEXUS_CAPABILITY("attack.later", NULL),
    PLEXUS_CAPABILITY("attack.partials", NULL), PLEXUS_CAPABILITY("attack.rawflood", NULL),
    PLEXUS_CAPABILITY("attack.garbage", NULL), PLEXUS_CAPABILITY("attack.scribble", NULL),
    PLEXUS_CAPABILITY("attack.halfframe", NULL), PLEXUS_CAPABILITY("attack.logflood", NULL),
};

PLEXUS_AGENT("ringattack", "1.0.0", caps, handle)
