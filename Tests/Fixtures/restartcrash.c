/* restartcrash — a worker that dies in init on every start after its
** first: init counts its starts in the key-value store (ABI 1.1) and
** aborts from the second on. With no restart backoff the host restarts it
** at once, again and again, until its supervisor gives up: the restarts
** must not pile up on one thread's stack (RestartInPlaceTests). */
static int on_init(const char *config);
#define PLEXUS_AGENT_ON_INIT(config) on_init(config)
#include "plexus_agent.h"
#include <stdlib.h>

static int on_init(const char *config) {
    (void)config;
    uint8_t *v = NULL;
    uint64_t len = 0, version = 0, written = 0;
    if (plexus_kv_get("starts", &v, &len, &version) != PLEXUS_OK) return PLEXUS_INTERNAL;
    long n = v ? strtol((const char *)v, NULL, 10) : 0;
    plexus_sdk_host->free(v);
    char text[32];
    int tn = snprintf(text, sizeof text, "%ld", n + 1);
    if (plexus_kv_put("starts", text, (size_t)tn, (int64_t)version, &written) != PLEXUS_OK) return PLEXUS_INTERNAL;
    if (n >= 1) abort();
    return PLEXUS_OK;
}

static plexus_status handle(const plexus_envelope *m) {
    if (plexus_is(m, "restartcrash.crash")) abort();
    return plexus_reply(m, "text/plain", "up", 2);
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("restartcrash.ping", "answers up"), PLEXUS_CAPABILITY("restartcrash.crash", "aborts"),
};

PLEXUS_AGENT("restartcrash", "1.0.0", caps, handle)
