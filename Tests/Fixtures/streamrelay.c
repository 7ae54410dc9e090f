/* streamrelay — a plugin that calls a streaming capability (ABI 1.2):
**   relay.stream  requests count.stream with its own payload, passes each
**                 partial answer on to its caller as a partial of its own,
**                 then answers {"partials": k, "final": <the final answer>}
**   relay.cancel  requests count.stream, cancels it at the first partial,
**                 then answers {"partials": k, "cancel": "<status of cancel()>",
**                 "answer": "<status of the answer that came>"}
** Built with -DAS_1_1 it says it was built for ABI 1.1: the host then hands
** it only final answers, never partials or CANCELs. */
#define PLEXUS_AGENT_PERMISSION_LIST 1, relay_permissions
#include "plexus_agent.h"
#include <stdio.h>

#ifdef AS_1_1
#undef PLEXUS_ABI_MINOR
#define PLEXUS_ABI_MINOR 1
#endif

#define SLOTS 16
static struct { plexus_id asked, caller; int used, cancel, partials; plexus_status cancelled; } pending[SLOTS];

static plexus_status start(const plexus_envelope *m, int cancel) {
    int i = 0;
    while (i < SLOTS && pending[i].used) i++;
    if (i == SLOTS) return plexus_reply_error(m, PLEXUS_MAILBOX_FULL, "too many relays in flight");
    plexus_status s = plexus_request("count.stream", "application/json", m->payload, m->payload_len, 20000, &pending[i].asked);
    if (s != PLEXUS_OK) return plexus_reply_error(m, s, "count.stream refused");
    pending[i].caller = m->id;
    pending[i].used = 1;
    pending[i].cancel = cancel;
    pending[i].partials = 0;
    pending[i].cancelled = -1;
    return PLEXUS_OK;
}

static plexus_status answer(const plexus_envelope *m) {
    int i = 0;
    while (i < SLOTS && !(pending[i].used && !memcmp(&pending[i].asked, &m->correlation_id, sizeof m->correlation_id))) i++;
    if (i == SLOTS) return PLEXUS_OK;
    plexus_envelope caller = plexus_envelope_init();
    caller.id = pending[i].caller;
    if (m->kind == PLEXUS_KIND_RESPONSE && (m->flags & PLEXUS_FLAG_MORE)) {
        pending[i].partials++;
        if (pending[i].cancel) {
            if (pending[i].cancelled == -1) pending[i].cancelled = plexus_cancel(pending[i].asked);
            return PLEXUS_OK;
        }
        return plexus_reply_partial(&caller, m->content_type, m->payload, m->payload_len);
    }
    pending[i].used = 0;
    char out[512];
    if (pending[i].cancel) {
        snprintf(out, sizeof out, "{\"partials\":%d,\"cancel\":\"%s\",\"answer\":\"%s\"}", pending[i].partials,
                 pending[i].cancelled == -1 ? "none" : plexus_status_name(pending[i].cancelled),
                 m->kind == PLEXUS_KIND_ERROR ? plexus_status_name(m->status) : "OK");
    } else {
        snprintf(out, sizeof out, "{\"partials\":%d,\"final\":%.*s}", pending[i].partials,
                 m->kind == PLEXUS_KIND_ERROR ? 2 : (int)m->payload_len, m->kind == PLEXUS_KIND_ERROR ? "{}" : (const char *)m->payload);
    }
    return plexus_reply_json(&caller, out);
}

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind == PLEXUS_KIND_RESPONSE || m->kind == PLEXUS_KIND_ERROR) return answer(m);
    if (plexus_is(m, "relay.stream")) return start(m, 0);
    if (plexus_is(m, "relay.cancel")) return start(m, 1);
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("relay.stream", "passes count.stream's partials on, then sums up"),
    PLEXUS_CAPABILITY("relay.cancel", "cancels count.stream at its first partial"),
};
static const plexus_permission relay_permissions[] = { PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, "count.*") };
PLEXUS_AGENT("streamrelay", "1.0.0", caps, handle)
