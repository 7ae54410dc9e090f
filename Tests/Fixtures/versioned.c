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
#define _POSIX_C_SOURCE 200809L   /* nanosleep (answer_later.h) under -std=c11 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FAIL_INIT
#define PLEXUS_AGENT_ON_INIT(config) PLEXUS_INVALID_ARGUMENT
#endif
#include "plexus_agent.h"
#include "answer_later.h"

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

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
#ifdef CRASH_FIRST
    raise(SIGSEGV);
#endif
    if (plexus_is(m, "versioned.hits")) return hits(m);
    if (plexus_is(m, "versioned.later")) return answer_later(m, "application/json", "{\"version\":\"" VERSION "\",\"later\":true}");
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
