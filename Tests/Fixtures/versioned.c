/* versioned — one plugin built as several versions for the hot-reload tests
** (-DVERSION=\"2.0.0\"; default "1.0.0").
**   versioned.version  replies {"version":"...","echo":PAYLOAD}: the caller
**                      sees which version answered which of its calls.
**   versioned.hits     adds one to "hits" in the plugin's key-value namespace
**                      and replies {"version":"...","hits":N}: the namespace
**                      outlives an upgrade.
**   versioned.later    replies {"version":"...","later":true} from a thread of
**                      its own, PAYLOAD milliseconds after its handler returned.
** Broken builds: -DFAIL_INIT (init refuses), -DCRASH_FIRST (the worker dies
** on its first message). */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FAIL_INIT
#define PLEXUS_AGENT_ON_INIT(config) PLEXUS_INVALID_ARGUMENT
#endif
#include "plexus_agent.h"

#ifndef VERSION
#define VERSION "1.0.0"
#endif

static plexus_status hits(const plexus_envelope *m) {
    uint8_t *old = NULL;
    uint64_t len = 0, version = 0;
    long n = 0;
    plexus_status s = plexus_kv_get("hits", &old, &len, &version);
    if (s != PLEXUS_OK) return plexus_reply_error(m, s, "kv_get failed");
    if (old) {
        char buf[32] = {0};
        memcpy(buf, old, len < sizeof buf - 1 ? len : sizeof buf - 1);
        n = atol(buf);
        plexus_sdk_host->free(old);
    }
    char value[32];
    int k = snprintf(value, sizeof value, "%ld", n + 1);
    s = plexus_kv_put("hits", value, (size_t)k, PLEXUS_KV_ANY, NULL);
    if (s != PLEXUS_OK) return plexus_reply_error(m, s, "kv_put failed");
    char out[96];
    snprintf(out, sizeof out, "{\"version\":\"%s\",\"hits\":%ld}", VERSION, n + 1);
    return plexus_reply_json(m, out);
}

struct later { plexus_id id; long ms; plexus_ctx *ctx; };

static void *answer_later(void *arg) {
    struct later *l = arg;
    struct timespec ts = { l->ms / 1000, (l->ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    static const char out[] = "{\"version\":\"" VERSION "\",\"later\":true}";
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = l->id;
    r.content_type = "application/json";
    r.payload = (const uint8_t *)out;
    r.payload_len = sizeof out - 1;
    plexus_sdk_host->reply(l->ctx, &r);   /* the helpers act for the handler's thread only */
    free(l);
    return NULL;
}

static plexus_status later(const plexus_envelope *m) {
    struct later *l = malloc(sizeof *l);
    if (!l) return PLEXUS_NO_MEMORY;
    char digits[16] = {0};
    memcpy(digits, m->payload, m->payload_len < 15 ? m->payload_len : 15);
    *l = (struct later){ m->id, atol(digits), plexus_sdk_ctx() };
    pthread_t t;
    if (pthread_create(&t, NULL, answer_later, l) != 0) { free(l); return PLEXUS_NO_MEMORY; }
    pthread_detach(t);
    return PLEXUS_OK;
}

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
#ifdef CRASH_FIRST
    raise(SIGSEGV);
#endif
    if (plexus_is(m, "versioned.hits")) return hits(m);
    if (plexus_is(m, "versioned.later")) return later(m);
    char out[256];
    int n = (int)(m->payload_len < 128 ? m->payload_len : 128);
    snprintf(out, sizeof out, "{\"version\":\"%s\",\"echo\":\"%.*s\"}", VERSION, n, m->payload ? (const char *)m->payload : "");
    return plexus_reply_json(m, out);
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("versioned.version", "which version answers; echoes the payload"),
    PLEXUS_CAPABILITY("versioned.hits", "counts calls in the plugin's key-value namespace"),
    PLEXUS_CAPABILITY("versioned.later", "answers from another thread, N ms after its handler returned"),
};
PLEXUS_AGENT("versioned", VERSION, caps, handle)
