/* The workflow tests' agent.
**   wf.echo        the payload back, same content type
**   wf.sleep       sleeps the payload's number of milliseconds, answers {"slept": ms}
**   wf.flaky       fails its first call (per worker), then echoes
**   wf.needs_file  fails unless the file named by the payload exists, then echoes
**   wf.busy        answers UNAVAILABLE itself on its first call (per worker), as a
**                  busy source would, then echoes */
#define _GNU_SOURCE
#include "plexus.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "plexus_agent.h"

static int calls, busy_calls;

static plexus_status handle(const plexus_envelope *msg) {
    char arg[512] = "";
    size_t n = msg->payload_len < sizeof arg - 1 ? msg->payload_len : sizeof arg - 1;
    memcpy(arg, msg->payload, n);
    const char *type = msg->content_type ? msg->content_type : "application/json";
    if (plexus_is(msg, "wf.echo")) return plexus_reply(msg, type, msg->payload, msg->payload_len);
    if (plexus_is(msg, "wf.sleep")) {
        long ms = atol(arg);
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        char out[64];
        snprintf(out, sizeof out, "{\"slept\":%ld}", ms);
        return plexus_reply_json(msg, out);
    }
    if (plexus_is(msg, "wf.flaky")) {
        if (calls++ == 0) return plexus_reply_error(msg, PLEXUS_INTERNAL, "first call fails");
        return plexus_reply(msg, type, msg->payload, msg->payload_len);
    }
    if (plexus_is(msg, "wf.needs_file")) {
        if (access(arg, F_OK) != 0) return plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, "the file is missing");
        return plexus_reply(msg, type, msg->payload, msg->payload_len);
    }
    if (plexus_is(msg, "wf.busy")) {
        if (busy_calls++ == 0) return plexus_reply_error(msg, PLEXUS_UNAVAILABLE, "the source is busy; try again");
        return plexus_reply(msg, type, msg->payload, msg->payload_len);
    }
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    { sizeof(plexus_capability), "wf.echo", "echo", NULL, NULL },
    { sizeof(plexus_capability), "wf.sleep", "sleep", NULL, NULL },
    { sizeof(plexus_capability), "wf.flaky", "fails once", NULL, NULL },
    { sizeof(plexus_capability), "wf.needs_file", "fails until a file exists", NULL, NULL },
    { sizeof(plexus_capability), "wf.busy", "answers UNAVAILABLE once", NULL, NULL },
};

PLEXUS_AGENT("steps", "1.0.0", caps, handle)
