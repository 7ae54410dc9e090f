/* fanout — an agent that spawns agents (plexus.h spawn/stop, ABI 1.2).
**
** fanout.count TEXT   counts TEXT's words with helpers: it spawns N children
**                     of this same plugin (N from its config {"helpers": N},
**                     default 3, at most 8), sends each a part of the text,
**                     adds up their answers, stops them and replies
**                     {"words": W, "helpers": N, "parts": [w1, ...]}.
** A child is addressed by its agent name (fanout/w.JOB-I), never through a
** capability: a query whose target is its own name is a part to count. A
** spawner may message its own children without a grant for their names.
**
** plexus.yaml must let it spawn (a plugin spawns nothing unless told):
**     plugins:
**       fanout:
**         spawn: { max_children: 8, plugins: [fanout] }
*/
#include "plexus.h"
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HELPERS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int helpers = 3;                 /* the coordinator's config */
static unsigned job_seq;
static struct {
    int busy, n, answered, failed;
    plexus_status failure;
    plexus_id asker;                    /* the fanout.count query to answer */
    plexus_id ids[MAX_HELPERS];
    char names[MAX_HELPERS][PLEXUS_MAX_NAME_LEN + 1];
    long words[MAX_HELPERS];
} job;

static plexus_status on_init(const char *config) {
    const char *h = config ? strstr(config, "\"helpers\"") : NULL;
    if (h && (h = strchr(h, ':'))) {
        int n = atoi(h + 1);
        if (n < 1 || n > MAX_HELPERS) return PLEXUS_INVALID_ARGUMENT;
        helpers = n;
    }
    return PLEXUS_OK;
}
#define PLEXUS_AGENT_ON_INIT(config) on_init(config)

#include "plexus_agent.h"

static long count_words(const uint8_t *p, uint64_t n) {
    long w = 0;
    int in = 0;
    for (uint64_t i = 0; i < n; i++) {
        int space = isspace(p[i]);
        if (!space && !in) w++;
        in = !space;
    }
    return w;
}

/* Lock held: stops the job's children and answers its query once. */
static void finish_locked(void) {
    for (int i = 0; i < job.n; i++) if (job.names[i][0]) plexus_stop_child(job.names[i]);
    plexus_envelope asker = plexus_envelope_init();
    asker.id = job.asker;
    if (job.failed) {
        plexus_reply_error(&asker, job.failure, "a helper could not count its part");
    } else {
        char out[512];
        long total = 0;
        for (int i = 0; i < job.n; i++) total += job.words[i];
        int k = snprintf(out, sizeof out, "{\"words\":%ld,\"helpers\":%d,\"parts\":[", total, job.n);
        for (int i = 0; i < job.n; i++) k += snprintf(out + k, sizeof out - (size_t)k, "%s%ld", i ? "," : "", job.words[i]);
        snprintf(out + k, sizeof out - (size_t)k, "]}");
        plexus_reply_json(&asker, out);
    }
    job.busy = 0;
}

/* fanout.count: spawn, split, ask; the answers come back to handle(). */
static plexus_status start(const plexus_envelope *msg) {
    pthread_mutex_lock(&lock);
    if (job.busy) {
        pthread_mutex_unlock(&lock);
        return plexus_reply_error(msg, PLEXUS_UNAVAILABLE, "a fan-out is running; try again when it has answered");
    }
    memset(&job, 0, sizeof job);
    job.busy = 1;
    job.asker = msg->id;
    unsigned seq = ++job_seq;
    uint64_t at = 0, len = msg->payload_len;
    for (int i = 0; i < helpers; i++) {
        char instance[32];
        snprintf(instance, sizeof instance, "w.%u-%d", seq, i + 1);
        plexus_status s = plexus_spawn("fanout", instance, "{\"role\":\"helper\"}", job.names[i]);
        if (s != PLEXUS_OK) {
            for (int k = 0; k < i; k++) plexus_stop_child(job.names[k]);
            job.busy = 0;
            pthread_mutex_unlock(&lock);
            return plexus_reply_error(msg, s, s == PLEXUS_PERMISSION_DENIED
                ? "fanout may not spawn: add plugins.fanout.spawn: { plugins: [fanout] } to plexus.yaml"
                : "spawning a helper failed");
        }
        job.n = i + 1;
        /* The part: up to the next space after an even share. */
        uint64_t end = i == helpers - 1 ? len : at + (len - at) / (uint64_t)(helpers - i);
        while (end < len && !isspace(msg->payload[end])) end++;
        plexus_envelope q = plexus_envelope_init();
        q.target_kind = PLEXUS_TARGET_AGENT;
        q.target = job.names[i];
        q.content_type = "text/plain";
        q.payload = msg->payload + at;
        q.payload_len = end - at;
        s = plexus_sdk_host->request(plexus_sdk_ctx(), &q, 10000, &job.ids[i]);
        if (s != PLEXUS_OK) { job.failed++; job.failure = s; job.answered++; }
        at = end;
    }
    if (job.answered == job.n) finish_locked();
    pthread_mutex_unlock(&lock);
    return PLEXUS_OK;   /* answered later, when the helpers have */
}

/* An answer from a helper: {"words":N}, or an ERROR. */
static void answered(const plexus_envelope *msg) {
    pthread_mutex_lock(&lock);
    for (int i = 0; job.busy && i < job.n; i++) {
        if (job.ids[i].hi != msg->correlation_id.hi || job.ids[i].lo != msg->correlation_id.lo) continue;
        if (msg->kind == PLEXUS_KIND_ERROR) { job.failed++; job.failure = msg->status; }
        else {
            char text[64];
            size_t n = msg->payload_len < sizeof text - 1 ? msg->payload_len : sizeof text - 1;
            memcpy(text, msg->payload, n);
            text[n] = 0;
            const char *w = strchr(text, ':');
            job.words[i] = w ? atol(w + 1) : 0;
        }
        job.ids[i] = (plexus_id){ 0, 0 };
        if (++job.answered == job.n) finish_locked();
        break;
    }
    pthread_mutex_unlock(&lock);
}

static plexus_status handle(const plexus_envelope *msg) {
    if (plexus_is_child_terminated(msg)) return PLEXUS_OK;   /* our helpers, stopped by finish_locked */
    if (msg->kind == PLEXUS_KIND_RESPONSE || msg->kind == PLEXUS_KIND_ERROR) { answered(msg); return PLEXUS_OK; }
    if (msg->kind != PLEXUS_KIND_QUERY) return PLEXUS_OK;
    if (plexus_is(msg, "fanout.count")) return start(msg);
    const char *me = plexus_sdk_host->agent_name(plexus_sdk_ctx());
    if (me && plexus_is(msg, me)) {   /* a helper's part */
        char out[64];
        snprintf(out, sizeof out, "{\"words\":%ld}", count_words(msg->payload, msg->payload_len));
        return plexus_reply_json(msg, out);
    }
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("fanout.count", "count a text's words with helpers it spawns and stops: TEXT -> {words, helpers, parts}") };
PLEXUS_AGENT("fanout", "1.0.0", caps, handle)
