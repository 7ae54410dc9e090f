/* metered — answers a query with its payload, unless the payload starts with
** "fail": then the handler returns PLEXUS_INTERNAL (the caller gets
** HANDLER_FAILED). A known workload for /metrics (MetricsEndpointTests).
** -DAGENT_NAME="\"...\"" and -DCAPABILITY="\"...\"" name it. */
#include "plexus_agent.h"
#include <string.h>

#ifndef AGENT_NAME
#define AGENT_NAME "metered"
#endif
#ifndef CAPABILITY
#define CAPABILITY "metered.echo"
#endif

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
    if (m->payload_len >= 4 && memcmp(m->payload, "fail", 4) == 0) return PLEXUS_INTERNAL;
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = m->id;
    r.content_type = m->content_type;
    r.payload = m->payload;
    r.payload_len = m->payload_len;
    return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY(CAPABILITY, "echoes; fails when the payload starts with \"fail\"") };
PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
