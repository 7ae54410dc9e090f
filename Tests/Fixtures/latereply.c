/* latereply — a C plugin that answers a request after its handler returned.
** late.hold keeps the request and returns (the worker reports it DONE);
** late.release answers every held request ("released"), then its own caller.
** late.after answers "later" from a thread of its own, the payload's number
** of milliseconds after its handler returned.
** Its answers are fresh envelopes (no trace id): the host must put them in
** the trace of the request they answer, whenever they come. */
#include "plexus_agent.h"
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define SLOTS 16
static plexus_id held[SLOTS];
static int nheld;

struct later { plexus_id id; long ms; plexus_ctx *ctx; };

static void *answer_later(void *arg) {
    struct later *l = arg;
    struct timespec ts = { l->ms / 1000, (l->ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = l->id;
    r.content_type = "text/plain";
    r.payload = (const uint8_t *)"later";
    r.payload_len = 5;
    plexus_sdk_host->reply(l->ctx, &r);   /* no helper here: they act for this thread's agent */
    free(l);
    return NULL;
}

static plexus_status handle(const plexus_envelope *m) {
    if (plexus_is(m, "late.after")) {
        struct later *l = malloc(sizeof *l);
        if (!l) return PLEXUS_NO_MEMORY;
        char digits[16] = {0};
        memcpy(digits, m->payload, m->payload_len < 15 ? m->payload_len : 15);
        *l = (struct later){ m->id, atol(digits), plexus_sdk_ctx() };
        pthread_t t;
        if (pthread_create(&t, NULL, answer_later, l) != 0) { free(l); return PLEXUS_NO_MEMORY; }
        pthread_detach(t);
        return PLEXUS_OK;
    }
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
