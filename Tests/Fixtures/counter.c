/* counter — keeps state in the host's key-value store (ABI 1.1).
**   kv.incr  payload: a key. Adds one with a compare-and-set loop (read the
**            version, write expecting it, read again on CONFLICT); replies
**            {"value":N,"version":V,"conflicts":C}.
**   kv.read  payload: a key. Replies {"value":"...","version":V} (version 0: absent).
**   kv.drop  payload: a key. Deletes it whatever its version.
**   kv.bad   tries an empty key and a key of 513 bytes; replies their statuses.
** Built with -DOLD_ABI it states ABI 1.0 and never touches kv_*, as a plugin
** built before 1.1 would: the host must still load and run it. */
#include "plexus_agent.h"

#include <stdlib.h>

/* Capabilities are CAP.incr, CAP.read...: two copies can differ (-DCAP=\"tally\"). */
#ifndef CAP
#define CAP "kv"
#endif

static int key_of(const plexus_envelope *m, char *key, size_t cap) {
    if (m->payload_len == 0 || m->payload_len >= cap) return 0;
    memcpy(key, m->payload, m->payload_len);
    key[m->payload_len] = 0;
    return 1;
}

static plexus_status incr(const plexus_envelope *m, const char *key) {
    int conflicts = 0;
    for (;;) {
        uint8_t *v = NULL;
        uint64_t len = 0, version = 0, written = 0;
        plexus_status s = plexus_kv_get(key, &v, &len, &version);
        if (s != PLEXUS_OK) return plexus_reply_error(m, s, "kv_get failed");
        long n = v ? strtol((const char *)v, NULL, 10) : 0;
        plexus_sdk_host->free(v);
        char text[32];
        int tn = snprintf(text, sizeof text, "%ld", n + 1);
        s = plexus_kv_put(key, text, (size_t)tn, (int64_t)version, &written);
        if (s == PLEXUS_CONFLICT) { conflicts++; continue; }
        if (s != PLEXUS_OK) return plexus_reply_error(m, s, "kv_put failed");
        char out[128];
        snprintf(out, sizeof out, "{\"value\":%ld,\"version\":%llu,\"conflicts\":%d}", n + 1,
                 (unsigned long long)written, conflicts);
        return plexus_reply_json(m, out);
    }
}

static plexus_status read_key(const plexus_envelope *m, const char *key) {
    uint8_t *v = NULL;
    uint64_t len = 0, version = 0;
    plexus_status s = plexus_kv_get(key, &v, &len, &version);
    if (s != PLEXUS_OK) return plexus_reply_error(m, s, "kv_get failed");
    char out[1024];
    snprintf(out, sizeof out, "{\"value\":\"%.*s\",\"version\":%llu}", (int)(len < 900 ? len : 900),
             v ? (const char *)v : "", (unsigned long long)version);
    plexus_sdk_host->free(v);
    return plexus_reply_json(m, out);
}

static plexus_status bad_keys(const plexus_envelope *m) {
    char big[514];
    memset(big, 'k', 513);
    big[513] = 0;
    plexus_status empty = plexus_kv_put("", "x", 1, PLEXUS_KV_ANY, NULL);
    plexus_status longer = plexus_kv_put(big, "x", 1, PLEXUS_KV_ANY, NULL);
    plexus_status stale = plexus_kv_delete("never-written", 3);
    char out[256];
    snprintf(out, sizeof out, "{\"empty\":\"%s\",\"long\":\"%s\",\"stale_delete\":\"%s\"}",
             plexus_status_name(empty), plexus_status_name(longer), plexus_status_name(stale));
    return plexus_reply_json(m, out);
}

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
#ifdef OLD_ABI
    return plexus_reply_json(m, "{\"abi\":\"1.0\"}");
#else
    char key[600];
    if (plexus_is(m, CAP ".bad")) return bad_keys(m);
    if (!key_of(m, key, sizeof key)) return plexus_reply_error(m, PLEXUS_INVALID_ARGUMENT, "payload: a key");
    if (plexus_is(m, CAP ".incr")) return incr(m, key);
    if (plexus_is(m, CAP ".read")) return read_key(m, key);
    plexus_status s = plexus_kv_delete(key, PLEXUS_KV_ANY);
    return s == PLEXUS_OK ? plexus_reply_json(m, "{}") : plexus_reply_error(m, s, "kv_delete failed");
#endif
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY(CAP ".incr", "add one to a counter, compare-and-set"),
    PLEXUS_CAPABILITY(CAP ".read", "a key's value and version"),
    PLEXUS_CAPABILITY(CAP ".drop", "delete a key"),
    PLEXUS_CAPABILITY(CAP ".bad", "statuses of invalid calls"),
};

#ifdef OLD_ABI
/* What PLEXUS_DESCRIPTOR_HEADER gave under plexus.h 1.0. */
#undef PLEXUS_ABI_MINOR
#define PLEXUS_ABI_MINOR 0
#undef PLEXUS_DESCRIPTOR_HEADER
#define PLEXUS_DESCRIPTOR_HEADER sizeof(plexus_plugin_descriptor), PLEXUS_ABI_MAJOR, 0, \
    sizeof(plexus_envelope), (uint32_t)PLEXUS_HOST_SIZE_1_0
#endif

PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
