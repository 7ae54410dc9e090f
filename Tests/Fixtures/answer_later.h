/* answer_later.h — for fixtures that answer a request after their handler
** returned: a thread of their own replies, the request's payload (a number)
** of milliseconds later. The request is then a promise the host must keep
** track of (drains wait for it; a stop or a crash ends it). Include after
** plexus_agent.h; body is a string literal. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct later { plexus_id id; long ms; plexus_ctx *ctx; const char *type; const char *body; };

static void *later_run(void *arg) {
    struct later *l = arg;
    struct timespec ts = { l->ms / 1000, (l->ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = l->id;
    r.content_type = l->type;
    r.payload = (const uint8_t *)l->body;
    r.payload_len = strlen(l->body);
    plexus_sdk_host->reply(l->ctx, &r);   /* the helpers act for the handler's thread only */
    free(l);
    return NULL;
}

static plexus_status answer_later(const plexus_envelope *m, const char *type, const char *body) {
    struct later *l = malloc(sizeof *l);
    if (!l) return PLEXUS_NO_MEMORY;
    char digits[16] = {0};
    memcpy(digits, m->payload, m->payload_len < 15 ? m->payload_len : 15);
    *l = (struct later){ m->id, atol(digits), plexus_sdk_ctx(), type, body };
    pthread_t t;
    if (pthread_create(&t, NULL, later_run, l) != 0) { free(l); return PLEXUS_NO_MEMORY; }
    pthread_detach(t);
    return PLEXUS_OK;
}
