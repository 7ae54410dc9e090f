/* relay — a C plugin that calls other agents on a caller's behalf.
** relay.ask takes "CAPABILITY\nBODY", requests CAPABILITY with BODY, and
** answers the caller with what came back (an ERROR stays an ERROR). Used to
** show a plugin calling an agent that a socket client registered. */
#define PLEXUS_AGENT_PERMISSION_LIST 1, relay_permissions
#include "plexus_agent.h"
#include <stdio.h>

#define SLOTS 64
static struct { plexus_id asked, caller; int used; } pending[SLOTS];

static plexus_status ask(const plexus_envelope *m) {
    const char *nl = memchr(m->payload, '\n', m->payload_len);
    if (!nl || nl == (const char *)m->payload || nl - (const char *)m->payload > 255)
        return plexus_reply_error(m, PLEXUS_INVALID_ARGUMENT, "payload must be CAPABILITY\\nBODY");
    char cap[256];
    size_t n = (size_t)(nl - (const char *)m->payload);
    memcpy(cap, m->payload, n);
    cap[n] = 0;
    int i = 0;
    while (i < SLOTS && pending[i].used) i++;
    if (i == SLOTS) return plexus_reply_error(m, PLEXUS_MAILBOX_FULL, "too many relays in flight");
    plexus_status s = plexus_request(cap, m->content_type, nl + 1, m->payload_len - n - 1, 10000, &pending[i].asked);
    if (s != PLEXUS_OK) {
        char why[320];
        snprintf(why, sizeof why, "relay to %s refused: %s", cap, plexus_status_name(s));
        return plexus_reply_error(m, s, why);
    }
    pending[i].caller = m->id;
    pending[i].used = 1;
    return PLEXUS_OK;
}

static plexus_status answer(const plexus_envelope *m) {
    for (int i = 0; i < SLOTS; i++) {
        if (!pending[i].used || memcmp(&pending[i].asked, &m->correlation_id, sizeof m->correlation_id)) continue;
        pending[i].used = 0;
        plexus_envelope r = *m;
        r.correlation_id = pending[i].caller;
        r.target_kind = PLEXUS_TARGET_REPLY;
        r.target = NULL;
        return plexus_sdk_host->reply(plexus_sdk_ctx(), &r);
    }
    return PLEXUS_OK;
}

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind == PLEXUS_KIND_RESPONSE || m->kind == PLEXUS_KIND_ERROR) return answer(m);
    if (plexus_is(m, "relay.ask")) return ask(m);
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("relay.ask", "requests CAPABILITY with BODY (\"CAPABILITY\\nBODY\") and answers with its reply") };
/* It asks to call anything (or RELAY_PERMIT): the test decides what plexus.yaml grants. */
#ifndef RELAY_PERMIT
#define RELAY_PERMIT ">"
#endif
static const plexus_permission relay_permissions[] = { PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, RELAY_PERMIT) };
PLEXUS_AGENT("relay", "1.0.0", caps, handle)
