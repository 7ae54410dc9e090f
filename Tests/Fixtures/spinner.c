/* A plugin whose one capability never returns: the conformance suite must
** fail it, by name, within its per-call limit instead of hanging (test.sh). */
#include "plexus_agent.h"
static plexus_status handle(const plexus_envelope *msg) {
    if (plexus_is(msg, "spin.forever")) for (;;) {}
    return PLEXUS_UNSUPPORTED;
}
static const plexus_capability caps[] = { PLEXUS_CAPABILITY("spin.forever", "never returns") };
PLEXUS_AGENT("spinner", "1.0.0", caps, handle)
