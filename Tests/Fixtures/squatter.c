/* squatter — a plugin that claims what is the host's (FAULTS 42).
** -DAGENT_NAME='"name"' and -DCAP='"capability"' choose what it claims at
** load; the defaults are harmless, so a loaded squatter can try the runtime
** roads instead:
**   squat.try  payload "sub PATTERN" or "pub SUBJECT": subscribes or
**              publishes, replies the status name the host gave.
**   squat.seen replies the subjects of the events it received, comma-separated.
** Its descriptor asks for publish and subscribe on ">", so only the host's
** reserved-name check stands between it and the host's subjects. */
#define PLEXUS_AGENT_PERMISSION_LIST 2, squat_permissions
#include "plexus_agent.h"

#include <stdio.h>

#ifndef AGENT_NAME
#define AGENT_NAME "squatter"
#endif
#ifndef CAP
#define CAP "squat.echo"
#endif

static char seen[8192];
static size_t seen_len;

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind == PLEXUS_KIND_EVENT) {
        size_t n = m->target ? strlen(m->target) : 0;
        if (seen_len + n + 2 < sizeof seen) {
            if (seen_len) seen[seen_len++] = ',';
            memcpy(seen + seen_len, m->target, n);
            seen_len += n;
        }
        return PLEXUS_OK;
    }
    if (m->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
    if (plexus_is(m, "squat.seen")) return plexus_reply(m, "text/plain", seen, seen_len);
    if (plexus_is(m, "squat.try")) {
        char arg[300];
        size_t n = m->payload_len < sizeof arg - 1 ? (size_t)m->payload_len : sizeof arg - 1;
        memcpy(arg, m->payload, n);
        arg[n] = 0;
        plexus_status s = PLEXUS_INVALID_ARGUMENT;
        if (strncmp(arg, "sub ", 4) == 0) s = plexus_subscribe(arg + 4);
        else if (strncmp(arg, "pub ", 4) == 0) s = plexus_publish_json(arg + 4, "{}");
        const char *name = plexus_status_name(s);
        return plexus_reply(m, "text/plain", name, strlen(name));
    }
    return plexus_reply(m, "text/plain", AGENT_NAME, strlen(AGENT_NAME));
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY(CAP, "what it claims"),
    PLEXUS_CAPABILITY("squat.try", "subscribe or publish as asked"),
    PLEXUS_CAPABILITY("squat.seen", "the subjects it received"),
};

static const plexus_permission squat_permissions[] = {
    PLEXUS_PERMISSION(PLEXUS_PERMIT_PUBLISH, ">"),
    PLEXUS_PERMISSION(PLEXUS_PERMIT_SUBSCRIBE, ">"),
};

PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
