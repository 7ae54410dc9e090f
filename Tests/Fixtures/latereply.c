/* latereply — a C plugin that answers a request after its handler returned.
** late.hold keeps the request and returns (the worker reports it DONE);
** late.release answers every held request ("released"), then its own caller.
** late.after answers "later" from a thread of its own, the payload's number
** of milliseconds after its handler returned.
** Its answers are fresh envelopes (no trace id): the host must put them in
** the trace of the request they answer, whenever they come. */
#define _POSIX_C_SOURCE 200809L   /* nanosleep (answer_later.h) under -std=c11 */
#include "plexus_agent.h"
#include "answer_later.h"

#define SLOTS 16
static plexus_id held[SLOTS];
static int nheld;

static plexus_status handle(const plexus_envelope *m) {
    if (plexus_is(m, "late.after")) return answer_later(m, "text/plain", "later");
    if (plexus_is(m, "late.hold")) {
        if (nheld == SLOTS) return plexus_reply_error(m, PLEXUS_MAILBOX_FULL, "too many held requests");
        held[nheld++] = m->id;
        return PLEXUS_OK;
    }
    if (plexus_is(m, "late.release")) {
        for (int i = 0; i < nheld; i++) {
            plexus_envelope r = plexus_envelope_init();
            r.id = held[i];
            plexus_status s = plexus_reply(&r, "text/plain", "released", 8);
            if (s != PLEXUS_OK) return plexus_reply_error(m, s, "could not answer a held request");
        }
        nheld = 0;
        return plexus_reply(m, "text/plain", "ok", 2);
    }
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("late.hold", "answered only by a later late.release"),
    PLEXUS_CAPABILITY("late.release", "answers the held late.hold requests"),
    PLEXUS_CAPABILITY("late.after", "answered from another thread, N ms after its handler returned"),
};
PLEXUS_AGENT("latereply", "1.0.0", caps, handle)
