/* reverser — holds the queries it is sent and answers them all at once, in
** the reverse order, each with the payload it came with, once it holds
** HOLD of them (-DHOLD=N, default 10000). Used to show that a socket client
** with many requests in flight gets every answer matched to its request
** when an agent answers out of order. */
#include "plexus_agent.h"
#include <stdlib.h>

#ifndef HOLD
#define HOLD 10000
#endif

static struct held { plexus_id id; uint8_t body[32]; uint64_t len; } *held;
static int count;

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_UNSUPPORTED;
    if (m->payload_len > sizeof held[0].body) return plexus_reply_error(m, PLEXUS_TOO_LARGE, "payloads of at most 32 bytes");
    if (!held && !(held = calloc(HOLD, sizeof *held))) return PLEXUS_NO_MEMORY;
    held[count].id = m->id;
    memcpy(held[count].body, m->payload, m->payload_len);
    held[count].len = m->payload_len;
    if (++count < HOLD) return PLEXUS_OK;
    for (int i = count - 1; i >= 0; i--) {
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_RESPONSE;
        r.correlation_id = held[i].id;
        r.content_type = "application/json";
        r.payload = held[i].body;
        r.payload_len = held[i].len;
        plexus_status s = plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
        if (s != PLEXUS_OK) return s;
    }
    count = 0;
    return PLEXUS_OK;
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("test.reverse", "answers every HOLD queries in reverse order") };
PLEXUS_AGENT("reverser", "1.0.0", caps, handle)
