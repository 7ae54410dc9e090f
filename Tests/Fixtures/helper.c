/* helper — a child for spawn tests (SpawnTests): answers any query with
** "NAME|CONFIG" (its agent name and the config its init got), and aborts on
** the payload "crash"; a config with "slow" makes its init take 4 s. The payload
** "version" answers VERSION (-DVERSION, "1.0.0" by default), "slow" answers it
** after 3 s (a call still in flight when something happens); a config with
** "spawn_in_init" calls spawn() in init and answers "NAME|init-spawn:STATUS". Built with -DHOST_SIZE=136 it states the 1.2 draft's
** host table size, which must still load. */
#define _POSIX_C_SOURCE 200809L
#include "plexus.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef VERSION
#define VERSION "1.0.0"
#endif

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
    if (cfg && strstr(cfg, "\"spawn_in_init\"")) {   /* its config becomes what spawn() answered in init */
        char name[PLEXUS_MAX_NAME_LEN + 1];
        plexus_status st = h->spawn(c, "helper", "inner", NULL, name, sizeof name);
        snprintf(me->config, sizeof me->config, "init-spawn:%s", plexus_status_name(st));
    }
    *s = me;
    return PLEXUS_OK;
}

static plexus_status handle(void *s, plexus_ctx *c, const plexus_envelope *m) {
    helper *me = s;
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
    if (m->payload_len == 5 && memcmp(m->payload, "crash", 5) == 0) abort();
    char out[1024];
    size_t len;
    int slow = m->payload_len == 4 && memcmp(m->payload, "slow", 4) == 0;
    if (slow || (m->payload_len == 7 && memcmp(m->payload, "version", 7) == 0)) {
        if (slow) { struct timespec ts = { 3, 0 }; nanosleep(&ts, NULL); }
        len = strlen(VERSION);
        memcpy(out, VERSION, len);
    } else {
        const char *name = me->host->agent_name(c);
        size_t n = strlen(name), k = strlen(me->config);
        memcpy(out, name, n); out[n] = '|'; memcpy(out + n + 1, me->config, k);
        len = n + 1 + k;
    }
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = m->id;
    r.content_type = "text/plain";
    r.payload = (const uint8_t *)out;
    r.payload_len = len;
    return me->host->reply(c, &r);
}

static void shutdown_(void *s) { free(s); }

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("helper.echo", "NAME|CONFIG") };
#ifndef HOST_SIZE
#define HOST_SIZE sizeof(plexus_host)
#endif
static const plexus_plugin_descriptor d = {
    sizeof(plexus_plugin_descriptor), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR, sizeof(plexus_envelope), HOST_SIZE,
    "helper", VERSION, NULL, 0, 1, caps, 0, NULL, 0, NULL, init, handle, shutdown_ };

PLEXUS_EXPORT const plexus_plugin_descriptor *plexus_plugin_entry(void) { return &d; }
