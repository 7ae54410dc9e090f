/* parallel — a concurrent agent that measures its own parallelism.
** parallel.hold sleeps for the given milliseconds while counting how many
** handlers run at once; parallel.peak answers the most seen together.
** Built with -DNOT_CONCURRENT it does not declare PLEXUS_PLUGIN_CONCURRENT. */
#include "plexus.h"
#ifndef NOT_CONCURRENT
#define PLEXUS_AGENT_FLAGS PLEXUS_PLUGIN_CONCURRENT
#endif
#include "plexus_agent.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int active, peak;

static plexus_status handle(const plexus_envelope *m) {
    if (plexus_is(m, "parallel.peak")) {
        char out[16];
        int n = snprintf(out, sizeof out, "%d", atomic_load(&peak));
        return plexus_reply(m, "text/plain", out, (size_t)n);
    }
    if (!plexus_is(m, "parallel.hold")) return PLEXUS_UNSUPPORTED;
    int now = atomic_fetch_add(&active, 1) + 1;
    for (int p = atomic_load(&peak); now > p && !atomic_compare_exchange_weak(&peak, &p, now);) {}
    char buf[16] = { 0 };
    memcpy(buf, m->payload, m->payload_len < 15 ? m->payload_len : 15);
    long ms = atol(buf);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&active, 1);
    return plexus_reply(m, "text/plain", "held", 4);
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("parallel.hold", "sleeps N ms, counting handlers that run at once"),
    PLEXUS_CAPABILITY("parallel.peak", "the most handlers seen running at once"),
};
PLEXUS_AGENT("parallel", "1.0.0", caps, handle)
