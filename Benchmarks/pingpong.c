/* Benchmark agents for `plexus bench`. Built twice per pair:
**   -DAGENT_NAME='"ping0"' -DPEER='"pong0"' -DPING   drives the measurement
**   -DAGENT_NAME='"pong0"'                            answers
** ping, asked "rr N", makes N request/reply round trips to its peer through the
** router, then answers; asked "oneway N", sends N commands (yielding when the
** peer's mailbox is full) and answers once the peer has counted them all. */
#ifdef PING
#define PLEXUS_AGENT_PERMISSION_LIST 2, bench_permissions
#endif
#include "plexus_agent.h"
#include <stdlib.h>

#ifndef PEER
#define PEER ""
#endif

static uint64_t total, done, sent, received;
static plexus_id starter;

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
    return plexus_sdk_host->request(plexus_sdk_ctx(), &e, 60000, NULL);
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
    if (m->kind == PLEXUS_KIND_RESPONSE) {
        if (total == 0) return finish();          /* oneway: the peer has seen everything */
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
    return PLEXUS_UNSUPPORTED;
#else
    if (m->kind == PLEXUS_KIND_QUERY) {
        plexus_envelope r = plexus_envelope_init();
        r.kind = PLEXUS_KIND_RESPONSE;
        r.correlation_id = m->id;
        return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
    }
    received++;
    return PLEXUS_OK;
#endif
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("bench." AGENT_NAME, "benchmark agent") };
#ifdef PING   /* ping calls its peer, and itself to yield; pong only answers */
static const plexus_permission bench_permissions[] = {
    PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, PEER), PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, AGENT_NAME) };
#endif
PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
