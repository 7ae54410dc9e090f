/* multi (1 of 2) — a plugin of two .c files, built with multi_b.c
** (cc -shared ... multi_a.c multi_b.c). This file expands PLEXUS_AGENT(...),
** which defines plexus_agent.h's globals; multi_b.c only includes the header,
** and does all the replying and logging, so it works only if it sees the
** host table and the current agent this file's init and handler set. */
#include "plexus.h"
plexus_status multi_init(const char *config);                 /* multi_b.c */
#define PLEXUS_AGENT_ON_INIT(config) multi_init(config)
#include "plexus_agent.h"

plexus_status multi_hello(const plexus_envelope *msg);        /* multi_b.c */
plexus_status multi_error(const plexus_envelope *msg);        /* multi_b.c */

static plexus_status handle(const plexus_envelope *msg) {
    if (plexus_is(msg, "multi.hello")) return multi_hello(msg);
    if (plexus_is(msg, "multi.error")) return multi_error(msg);
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("multi.hello", "replies from the plugin's second file"),
    PLEXUS_CAPABILITY("multi.error", "answers an INVALID_ARGUMENT error whose message is the payload"),
};
PLEXUS_AGENT("multi", "1.0.0", caps, handle)
