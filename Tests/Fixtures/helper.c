/* helper — a child for spawn tests (SpawnTests): answers any query with
** "NAME|CONFIG" (its agent name and the config its init got), and aborts on
** the payload "crash"; a config with "slow" makes its init take 4 s. Built with -DHOST_SIZE=136 it states the 1.2 draft's
** host table size, which must still load. */
#include "plexus.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const plexus_host *host; plexus_ctx *ctx; char config[512]; } helper;

static plexus_status init(const plexus_host *h, plexus_ctx *c, const char *cfg, void **s) {
    if (cfg && strstr(cfg, "\"slow\"")) {   /* an init that outlasts the load timeout */
        struct timespec ts = { 4, 0 };
        nanosleep(&ts, NULL);
    }
    helper *me = calloc(1, sizeof *me);
    if (!me) return PLEXUS_NO_MEMORY;
    me->host = h; me->ctx = c;
    strncpy(me->config, cfg ? cfg : "", sizeof me->config - 1);
    *s = me;
    return PLEXUS_OK;
}

static plexus_status handle(void *s, plexus_ctx *c, const plexus_envelope *m) {
    helper *me = s;
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
    if (m->payload_len == 5 && memcmp(m->payload, "crash", 5) == 0) abort();
    char out[1024];
    const char *name = me->host->agent_name(c);
    size_t n = strlen(name), k = strlen(me->config);
    memcpy(out, name, n); out[n] = '|'; memcpy(out + n + 1, me->config, k);
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = m->id;
    r.content_type = "text/plain";
    r.payload = (const uint8_t *)out;
    r.payload_len = n + 1 + k;
    return me->host->reply(c, &r);
}

static void shutdown_(void *s) { free(s); }

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("helper.echo", "NAME|CONFIG") };
#ifndef HOST_SIZE
#define HOST_SIZE sizeof(plexus_host)
#endif
static const plexus_plugin_descriptor d = {
    sizeof(plexus_plugin_descriptor), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR, sizeof(plexus_envelope), HOST_SIZE,
    "helper", "1.0.0", NULL, 0, 1, caps, 0, NULL, 0, NULL, init, handle, shutdown_ };

PLEXUS_EXPORT const plexus_plugin_descriptor *plexus_plugin_entry(void) { return &d; }
