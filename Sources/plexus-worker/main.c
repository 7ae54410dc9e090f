/*
** plexus-worker: runs one plugin in its own process for the host.
**
** The host starts it with posix_spawn: descriptor 3 is the channel (a Unix
** stream socket), 4 a sealed private copy of the plugin (or, warm, a
** socket the image arrives on later), 5 the syscall filter the host
** compiled for the plugin's grants, 1 and 2 pipes the host drains into its
** log. The host then sends, over the socket, the shared-memory ring every
** frame travels on (plexus_ring.h) and the eventfd that wakes it. Before
** the plugin's bytes are mapped the worker
** closes every other descriptor, dies with the host, takes its limits and
** installs its syscall filter; then it loads the plugin, sends HELLO, waits
** for START, calls init and serves deliveries until SHUTDOWN or the host
** goes away. The conversation is in Sources/CPlexusInternal/include/
** plexus_channel.h (private to the host and the worker).
**
** Written in C with no language runtime: under RLIMIT_AS an allocation must
** fail, not abort the process.
*/
#define _GNU_SOURCE
#include "channel.h"
#include "confine.h"
#include "descriptor.h"
#include "sandbox.h"
#include "plexus.h"
#include "plexus_channel.h"
#include "plexus_contract.h"
#include "plexus_fdpass.h"
#include "plexus_ffi.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL_FD 3
#define PLUGIN_FD 4
#define FILTER_FD 5                      /* the seccomp filter the host compiled */

static const plexus_plugin_descriptor *desc;
static void *state;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int is_server;           /* this thread runs handlers (flushes when idle) */
static __thread plexus_id current_trace; /* the trace of the delivery this thread handles:
                                            what its handler sends continues it */
static int polling;                      /* a server sleeps on the channel (channel_sleep) */
static int idle_servers;                 /* servers waiting on serve_cv */
static pthread_cond_t serve_cv = PTHREAD_COND_INITIALIZER;
static unsigned concurrency = 1;         /* server threads (--concurrency) */
static frame *queued_head, *queued_tail; /* read while waiting for an ACK */
static uint64_t call_seq;
static uint64_t host_payload_limit;      /* from START; 0: the channel's */
static uint64_t warm_image_max;          /* --warm: the image comes later, at most this big */

/* The host's payload limit, which the host functions check against. */
static char agent_name_buf[PLEXUS_MAX_NAME_LEN + 1];   /* from START; empty: desc->name */
static uint64_t payload_limit(void) { return host_payload_limit ? host_payload_limit : channel_payload_limit(); }

/* ---- requests this worker has received and not yet answered -------------
** With each its deadline (the envelope's, which the host set from the
** caller's timeout): past it the host has answered the caller TIMEOUT, so a
** reply is NOT_A_REQUEST here exactly as in the host. */

typedef struct open_request { plexus_id id; int64_t deadline_unix_ns; int cancelled; } open_request;
static open_request *open_q;
static size_t open_n, open_cap;

static int64_t h_now(void);

/* Lock held. Forgets requests whose deadline passed (the host has answered
** them TIMEOUT): a handler that never replies must not grow the list. */
static void open_prune(void) {
    int64_t now = h_now();
    size_t kept = 0;
    for (size_t i = 0; i < open_n; i++)
        if (open_q[i].deadline_unix_ns == 0 || now <= open_q[i].deadline_unix_ns) open_q[kept++] = open_q[i];
    open_n = kept;
}

static void open_add(plexus_id id, int64_t deadline) {
    if (open_n == open_cap) open_prune();
    if (open_n == open_cap) {
        size_t c = open_cap ? open_cap * 2 : 64;
        open_request *p = realloc(open_q, c * sizeof *p);
        if (!p) return;
        open_q = p; open_cap = c;
    }
    open_q[open_n++] = (open_request){ id, deadline, 0 };
}

/* What open_find and open_take say of a request. */
#define OPEN_NOT 0        /* not open here, or past its deadline */
#define OPEN_YES 1
#define OPEN_CANCELLED 2  /* its caller cancelled it (a CANCEL came) */

static open_request *open_lookup(plexus_id id) {
    for (size_t i = open_n; i-- > 0;)
        if (open_q[i].id.hi == id.hi && open_q[i].id.lo == id.lo) return &open_q[i];
    return NULL;
}

static int open_state(const open_request *r) {
    if (!r) return OPEN_NOT;
    if (r->cancelled) return OPEN_CANCELLED;
    return r->deadline_unix_ns == 0 || h_now() <= r->deadline_unix_ns ? OPEN_YES : OPEN_NOT;
}

/* Lock held. OPEN_YES when id is open and its deadline has not passed;
** whatever the answer, it is no longer open afterwards. */
static int open_take(plexus_id id) {
    open_request *r = open_lookup(id);
    int st = open_state(r);
    if (r) *r = open_q[--open_n];
    return st;
}

/* Lock held. As open_take, but the request stays open (a partial answer). */
static int open_find(plexus_id id) { return open_state(open_lookup(id)); }

/* Lock held: a CANCEL for id came; a reply to it is now late. */
static void open_cancel(plexus_id id) {
    open_request *r = open_lookup(id);
    if (r) r->cancelled = 1;
}

/* A snprintf result as a length that never runs past the buffer. */
static uint64_t printed(int n, size_t cap) {
    if (n < 0) return 0;
    return (size_t)n < cap ? (uint64_t)n : (uint64_t)(cap - 1);
}

/* ---- the host table ------------------------------------------------------ */

static int is_control(const plexus_envelope *e, const char *topic) {
    return e->target_kind == PLEXUS_TARGET_TOPIC && e->target && strcmp(e->target, topic) == 0;
}

/* Lock held: deliveries were queued by a thread other than the one
** sleeping on the channel; an idle server takes them, or the sleeper is woken. */
static void wake_servers(void) {
    if (idle_servers) pthread_cond_signal(&serve_cv);
    if (polling) channel_kick();
}

static void enqueue_frame(frame *f) {
    if (queued_tail) queued_tail->next = f; else queued_head = f;
    queued_tail = f;
}

/* Sends e (id = our call number) and waits for its ACK; frames read
** meanwhile are kept, in order, for the main loop. When out_ack is set
** the ACK frame is handed over (the caller frees it). Lock held. */
static int waiting_for_child;   /* lock held: a SPAWN or STOP call is waiting for its ACK */

static plexus_status call_locked(plexus_envelope *e, plexus_id *out_id, frame **out_ack) {
    plexus_id call = { 0, ++call_seq };
    e->id = call;
    plexus_status s = channel_queue(e);
    if (s != PLEXUS_OK) return s;
    channel_flush();
    int queued = 0;
    for (;;) {
        frame *f = channel_read(1);
        if (is_control(&f->env, PLEXUS_CONTROL_ACK) && f->env.correlation_id.lo == call.lo && f->env.correlation_id.hi == 0) {
            s = f->env.status;
            if (out_id) *out_id = f->env.id;
            if (out_ack) *out_ack = f; else frame_free(f);
            break;
        }
        if (waiting_for_child && is_control(&f->env, PLEXUS_CONTROL_PING)) {
            /* Waiting for the host to start or stop a child is no hang: it
            ** may take longer than a heartbeat may go unanswered. (Other
            ** calls leave PINGs to the main loop: a handler spinning on
            ** send() is still found hung.) */
            channel_control(PLEXUS_CONTROL_PONG, f->env.correlation_id, 0, NULL, 0);
            channel_flush();
            frame_free(f);
            continue;
        }
        enqueue_frame(f);
        queued = 1;
    }
    if (queued) wake_servers();
    return s;
}

/* send/request/publish after the checks every mode shares (plexus_contract.h):
** the envelope read no further than its struct_size, the forced kind, the
** fields; the host answers the rest (routing) in its ACK. */
static plexus_status call(plexus_ctx *ctx, const plexus_envelope *msg, plexus_kind forced, int has_kind, plexus_id *out_id) {
    plexus_envelope e;
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_envelope(msg, &e, NULL);
    if (s != PLEXUS_OK) return s;
    if (has_kind) e.kind = (uint8_t)forced;
    if ((s = plexus_contract_fields(&e, payload_limit(), NULL)) != PLEXUS_OK) return s;
    if (!has_kind && (e.kind == PLEXUS_KIND_QUERY || e.kind == PLEXUS_KIND_RESPONSE || e.kind == PLEXUS_KIND_ERROR ||
                      e.kind == PLEXUS_KIND_CANCEL))
        return PLEXUS_INVALID_ARGUMENT;   /* send(): a QUERY goes by request(), an answer by reply(), a cancel by cancel() */
    if (e.target_kind == PLEXUS_TARGET_REPLY) return PLEXUS_INVALID_ARGUMENT;   /* reply()'s, and the host would read it as one */
    if (e.trace_id.hi == 0 && e.trace_id.lo == 0) e.trace_id = current_trace;
    pthread_mutex_lock(&lock);
    s = call_locked(&e, out_id, NULL);
    pthread_mutex_unlock(&lock);
    return s;
}

static plexus_status h_send(plexus_ctx *ctx, const plexus_envelope *m) { return call(ctx, m, 0, 0, NULL); }

static plexus_status h_request(plexus_ctx *ctx, const plexus_envelope *m, uint32_t timeout_ms, plexus_id *out) {
    plexus_envelope e;
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_envelope(m, &e, NULL);
    if (s != PLEXUS_OK) return s;
    if (timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e.deadline_unix_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)timeout_ms * 1000000;
    }
    return call(ctx, &e, PLEXUS_KIND_QUERY, 1, out);
}

static plexus_status h_publish(plexus_ctx *ctx, const plexus_envelope *m) {
    plexus_envelope e;
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_envelope(m, &e, NULL);
    if (s != PLEXUS_OK) return s;
    if (e.target_kind != PLEXUS_TARGET_TOPIC) return PLEXUS_INVALID_ARGUMENT;
    /* A control subject never leaves as an event (the host would read it as
    ** control); PERMISSION_DENIED, as the host answers in process. */
    if (e.target && strncmp(e.target, PLEXUS_CONTROL_PREFIX, strlen(PLEXUS_CONTROL_PREFIX)) == 0) return PLEXUS_PERMISSION_DENIED;
    return call(ctx, &e, PLEXUS_KIND_EVENT, 1, NULL);
}

/* Lock held: ends request id with an ERROR the worker makes itself (the
** handler's own answer was refused, or the handler failed). text is JSON. */
static void answer_error(plexus_id id, plexus_status status, const char *text, uint64_t len) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = PLEXUS_KIND_ERROR;
    e.target_kind = PLEXUS_TARGET_REPLY;
    e.correlation_id = id;
    e.status = status;
    e.content_type = "application/json";
    e.payload = (const uint8_t *)text;
    e.payload_len = len;
    channel_queue(&e);
}

static plexus_status h_reply(plexus_ctx *ctx, const plexus_envelope *m) {
    plexus_envelope e;
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_envelope(m, &e, NULL);
    if (s != PLEXUS_OK) return s;
    e.kind = e.kind == PLEXUS_KIND_ERROR ? PLEXUS_KIND_ERROR : PLEXUS_KIND_RESPONSE;
    e.target_kind = PLEXUS_TARGET_REPLY;
    e.target = NULL;
    e.deadline_unix_ns = 0;
    pthread_mutex_lock(&lock);
    int open = open_take(e.correlation_id);
    if (open == OPEN_CANCELLED) {
        /* Late: the host dead-letters it with the reason, as in process. */
        if (plexus_contract_fields(&e, payload_limit(), NULL) == PLEXUS_OK) channel_queue(&e);
        s = PLEXUS_NOT_A_REQUEST;
    } else if (open != OPEN_YES) s = PLEXUS_NOT_A_REQUEST;
    else {
        const char *what = NULL;
        s = plexus_contract_fields(&e, payload_limit(), &what);
        if (s == PLEXUS_OK) s = channel_queue(&e);
        if (s != PLEXUS_OK) {
            /* The request is over either way: the caller hears why the reply
            ** could not travel now, as in the host, not at its timeout. */
            char text[512], sizes[80] = "";
            if (s == PLEXUS_TOO_LARGE && e.payload_len > payload_limit())   /* both sizes, as the host says them */
                snprintf(sizes, sizeof sizes, " (%llu bytes; the limit is %llu)",
                         (unsigned long long)e.payload_len, (unsigned long long)payload_limit());
            int n = snprintf(text, sizeof text, "{\"error\":\"%s\",\"message\":\"the reply was refused: %s%s\"}",
                             plexus_status_name(s), what ? what : plexus_status_message(s), sizes);
            answer_error(e.correlation_id, s, text, printed(n, sizeof text));
        }
    }
    if (!is_server) channel_flush();
    pthread_mutex_unlock(&lock);
    return s;
}

static void take_input(void);
static int have_frames(void);

/* reply_partial (1.2): as reply, but the request stays open here and in
** the host. A refused partial changes nothing. What the host sent is read
** first, so a handler streaming in a loop hears of a CANCEL at its next
** partial (NOT_A_REQUEST), not after it returns. */
static plexus_status h_reply_partial(plexus_ctx *ctx, const plexus_envelope *m) {
    plexus_envelope e;
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_envelope(m, &e, NULL);
    if (s != PLEXUS_OK) return s;
    e.kind = PLEXUS_KIND_RESPONSE;
    e.flags = PLEXUS_FLAG_MORE;
    e.status = PLEXUS_OK;
    e.target_kind = PLEXUS_TARGET_REPLY;
    e.target = NULL;
    e.deadline_unix_ns = 0;
    if (e.trace_id.hi == 0 && e.trace_id.lo == 0) e.trace_id = current_trace;
    pthread_mutex_lock(&lock);
    take_input();
    if (have_frames()) wake_servers();
    int open = open_find(e.correlation_id);
    if (open == OPEN_NOT) s = PLEXUS_NOT_A_REQUEST;
    else if ((s = plexus_contract_fields(&e, payload_limit(), NULL)) == PLEXUS_OK) {
        s = channel_queue(&e);
        if (s == PLEXUS_OK && open == OPEN_CANCELLED) s = PLEXUS_NOT_A_REQUEST;   /* forwarded to be dead-lettered */
    }
    channel_flush();   /* a partial goes now, even from a handler still running: that is its point */
    pthread_mutex_unlock(&lock);
    return s;
}

/* cancel (1.2): a CANCEL control call, ACKed with the host's answer. */
static plexus_status h_cancel(plexus_ctx *ctx, plexus_id request_id) {
    if (!ctx || (request_id.hi == 0 && request_id.lo == 0)) return PLEXUS_INVALID_ARGUMENT;
    uint8_t p[16];
    for (int i = 0; i < 8; i++) { p[i] = (uint8_t)(request_id.hi >> (8 * i)); p[8 + i] = (uint8_t)(request_id.lo >> (8 * i)); }
    plexus_envelope e = control_envelope(PLEXUS_CONTROL_CANCEL, p, sizeof p);
    pthread_mutex_lock(&lock);
    plexus_status s = call_locked(&e, NULL, NULL);
    pthread_mutex_unlock(&lock);
    return s;
}

static plexus_status pattern_call(plexus_ctx *ctx, const char *topic, const char *pattern) {
    if (!ctx || !pattern) return PLEXUS_INVALID_ARGUMENT;
    plexus_envelope e = control_envelope(topic, pattern, strlen(pattern));
    pthread_mutex_lock(&lock);
    plexus_status s = call_locked(&e, NULL, NULL);
    pthread_mutex_unlock(&lock);
    return s;
}

static plexus_status h_subscribe(plexus_ctx *c, const char *p) { return pattern_call(c, PLEXUS_CONTROL_SUBSCRIBE, p); }
static plexus_status h_unsubscribe(plexus_ctx *c, const char *p) { return pattern_call(c, PLEXUS_CONTROL_UNSUBSCRIBE, p); }

static void h_log(plexus_ctx *ctx, int32_t level, const char *message) {
    if (!ctx || !message) return;
    plexus_id none = { 0, 0 };
    pthread_mutex_lock(&lock);
    channel_control(PLEXUS_CONTROL_LOG, none, level, message, strlen(message));
    if (!is_server) channel_flush();
    pthread_mutex_unlock(&lock);
}

/* ---- key-value: a KV control call, answered by an ACK ---------------------
** request payload: op ('g', 'p', 'd'), expected version (i64), key length
** (u32), key, value; ACK payload on OK: the version (u64), then the value. */

static void put_le(uint8_t *p, uint64_t v, int n) { for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get_le(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i); return v; }

static plexus_status kv_call(char op, const char *key, const uint8_t *value, uint64_t len, int64_t expected,
                             frame **out_ack) {
    /* Checked before the allocation below: a 2^40 length is TOO_LARGE, as in the host. */
    plexus_status s = plexus_contract_kv(key, value, len, expected, payload_limit(), NULL);
    if (s != PLEXUS_OK) return s;
    size_t klen = strlen(key);
    uint64_t n = 13 + klen + len;
    uint8_t *p = malloc(n);
    if (!p) return PLEXUS_NO_MEMORY;
    p[0] = (uint8_t)op;
    put_le(p + 1, (uint64_t)expected, 8);
    put_le(p + 9, klen, 4);
    memcpy(p + 13, key, klen);
    if (len) memcpy(p + 13 + klen, value, len);
    plexus_envelope e = control_envelope(PLEXUS_CONTROL_KV, p, n);
    pthread_mutex_lock(&lock);
    s = call_locked(&e, NULL, out_ack);
    pthread_mutex_unlock(&lock);
    free(p);
    return s;
}

static plexus_status h_kv_get(plexus_ctx *ctx, const char *key, uint8_t **out_value, uint64_t *out_len, uint64_t *out_version) {
    if (!ctx || !out_value || !out_len || !out_version) return PLEXUS_INVALID_ARGUMENT;
    frame *ack = NULL;
    plexus_status s = kv_call('g', key, NULL, 0, PLEXUS_KV_ANY, &ack);
    if (s == PLEXUS_OK && ack->env.payload_len < 8) s = PLEXUS_MALFORMED_FRAME;
    if (s == PLEXUS_OK) {
        uint64_t version = get_le(ack->env.payload), n = ack->env.payload_len - 8;
        uint8_t *v = version ? malloc(n + 1) : NULL;
        if (version && !v) s = PLEXUS_NO_MEMORY;
        else {
            if (v) { memcpy(v, ack->env.payload + 8, n); v[n] = 0; }
            *out_value = v; *out_len = version ? n : 0; *out_version = version;
        }
    }
    if (ack) frame_free(ack);
    return s;
}

static plexus_status h_kv_put(plexus_ctx *ctx, const char *key, const uint8_t *value, uint64_t len,
                              int64_t expected, uint64_t *out_version) {
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    frame *ack = NULL;
    plexus_status s = kv_call('p', key, value, len, expected, &ack);
    if (s == PLEXUS_OK && ack->env.payload_len < 8) s = PLEXUS_MALFORMED_FRAME;
    if (s == PLEXUS_OK && out_version) *out_version = get_le(ack->env.payload);
    if (ack) frame_free(ack);
    return s;
}

static plexus_status h_kv_delete(plexus_ctx *ctx, const char *key, int64_t expected) {
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    return kv_call('d', key, NULL, 0, expected, NULL);
}

/* ---- spawn / stop (1.2): SPAWN and STOP control calls, ACKed -------------
** The host starts or stops the child and answers; the checks plexus.h lists
** first are the shared C ones, the rest are the host's. */

static plexus_status h_spawn(plexus_ctx *ctx, const char *plugin_name, const char *instance_name,
                             const char *config_json, char *out_name, uint32_t out_name_size) {
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_spawn(plugin_name, instance_name, config_json, out_name, out_name_size,
                                            payload_limit(), NULL);
    if (s != PLEXUS_OK) return s;
    const char *config = config_json ? config_json : "{}";
    size_t pn = strlen(plugin_name), in = instance_name ? strlen(instance_name) : 0, cn = strlen(config);
    uint64_t n = 8 + pn + in + cn;
    uint8_t *p = malloc(n);
    if (!p) return PLEXUS_NO_MEMORY;
    put_le(p, pn, 4);
    memcpy(p + 4, plugin_name, pn);
    put_le(p + 4 + pn, in, 4);
    if (in) memcpy(p + 8 + pn, instance_name, in);
    memcpy(p + 8 + pn + in, config, cn);
    plexus_envelope e = control_envelope(PLEXUS_CONTROL_SPAWN, p, n);
    frame *ack = NULL;
    pthread_mutex_lock(&lock);
    waiting_for_child = 1;
    s = call_locked(&e, NULL, &ack);
    waiting_for_child = 0;
    pthread_mutex_unlock(&lock);
    free(p);
    if (s == PLEXUS_OK && out_name) {
        uint64_t len = ack->env.payload_len;
        if (len > PLEXUS_MAX_NAME_LEN) s = PLEXUS_MALFORMED_FRAME;
        else { memcpy(out_name, ack->env.payload, len); out_name[len] = 0; }
    }
    if (ack) frame_free(ack);
    return s;
}

static plexus_status h_stop(plexus_ctx *ctx, const char *name) {
    if (!ctx) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = plexus_contract_stop(name, NULL);
    if (s != PLEXUS_OK) return s;
    plexus_envelope e = control_envelope(PLEXUS_CONTROL_STOP, name, strlen(name));
    pthread_mutex_lock(&lock);
    waiting_for_child = 1;
    s = call_locked(&e, NULL, NULL);
    waiting_for_child = 0;
    pthread_mutex_unlock(&lock);
    return s;
}

static void *h_alloc(uint64_t n) { return plexus_contract_alloc(n); }
static void h_free(void *p) { free(p); }
static int64_t h_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static const char *h_name(plexus_ctx *ctx) { return ctx && desc ? (agent_name_buf[0] ? agent_name_buf : desc->name) : NULL; }

static const plexus_host host_table = {
    sizeof(plexus_host), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR,
    h_send, h_request, h_reply, h_publish, h_subscribe, h_unsubscribe, h_log,
    h_alloc, h_free, h_now, h_name,
    h_kv_get, h_kv_put, h_kv_delete,
    h_reply_partial, h_cancel,
    h_spawn, h_stop,
};

/* ---- start-up ------------------------------------------------------------ */

static uint64_t arg_u64(const char *v) { return strtoull(v, NULL, 10); }

static void usage(const char *why) {
    fprintf(stderr, "plexus-worker: %s\nusage: plexus-worker --parent PID [--as BYTES] [--cpu SOFT] [--cpu-hard HARD]"
                    " [--nofile N] [--fsize BYTES] [--max-payload BYTES]"
                    " [--concurrency N] [--confine required|rlimits-only] [--network 0|1] [--netns FD] [--tmp-size BYTES]"
                    " [--ro PATH]... [--rw PATH]... [--without namespaces,landlock]\n"
                    "(started by the plexus host: descriptor 3 is the channel, 4 the plugin, 5 the seccomp filter, 6 with --netns a network namespace)\n", why);
    _exit(PLEXUS_WORKER_EXIT_USAGE);
}

static void refuse(plexus_status s, const char *text) {
    plexus_id none = { 0, 0 };
    channel_control(PLEXUS_CONTROL_REFUSED, none, s, text, strlen(text));
    channel_flush();
    _exit(PLEXUS_WORKER_EXIT_REFUSED);
}

static void add_path(const char **list, int *n, const char *v) {
    if (v[0] != '/') usage("--ro and --rw take absolute paths");
    if (*n == CONFINE_PATHS_MAX) usage("too many --ro/--rw paths");
    list[(*n)++] = v;
}

static void parse(int argc, char **argv, worker_limits *l, confine_spec *c, pid_t *parent, uint64_t *max_payload) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage("an option is missing its value");
        if (!strcmp(k, "--parent")) *parent = (pid_t)arg_u64(v);
        else if (!strcmp(k, "--as")) l->address_space = arg_u64(v);
        else if (!strcmp(k, "--cpu")) l->cpu_soft = arg_u64(v);
        else if (!strcmp(k, "--cpu-hard")) l->cpu_hard = arg_u64(v);
        else if (!strcmp(k, "--nofile")) l->open_files = arg_u64(v);
        else if (!strcmp(k, "--fsize")) l->file_size = arg_u64(v);
        else if (!strcmp(k, "--max-payload")) *max_payload = arg_u64(v);
        else if (!strcmp(k, "--concurrency")) {
            uint64_t n = arg_u64(v);
            if (n < 1 || n > 256) usage("--concurrency must be between 1 and 256");
            concurrency = (unsigned)n;
        }
        else if (!strcmp(k, "--confine")) {
            if (!strcmp(v, "rlimits-only")) c->rlimits_only_ok = 1;
            else if (strcmp(v, "required")) usage("--confine is required or rlimits-only");
        }
        else if (!strcmp(k, "--warm")) warm_image_max = arg_u64(v);
        else if (!strcmp(k, "--network")) c->network = (int)arg_u64(v);
        else if (!strcmp(k, "--netns")) c->netns_fd = (int)arg_u64(v) + 1;   /* the host's shared empty namespace */
        else if (!strcmp(k, "--tmp-size")) c->tmp_size = arg_u64(v);
        else if (!strcmp(k, "--without")) {   /* tests of the fallbacks: act as if the kernel refused */
            c->without_namespaces = strstr(v, "namespaces") != NULL;
            c->without_landlock = strstr(v, "landlock") != NULL;
        }
        else if (!strcmp(k, "--ro")) add_path(c->read, &c->n_read, v);
        else if (!strcmp(k, "--rw")) add_path(c->write, &c->n_write, v);
        else usage("unknown option");
        i++;
    }
    if (*parent <= 0) usage("--parent is required");
    if (c->tmp_size == 0) c->tmp_size = 16 << 20;
}

/* A warm worker (--warm) says here that it is confined as far as it can be
** without its plugin, then waits for the host to pass the image (a sealed
** memfd) over the socket on PLUGIN_FD; the image then takes that
** descriptor's place. The host closing the socket means it is not needed. */
static const char *await_image(void) {
    char byte = 'R';   /* ready: the host counts this worker as warm from now on */
    if (send(PLUGIN_FD, &byte, 1, MSG_NOSIGNAL) != 1) _exit(0);
    int image;
    int rc = plexus_fds_receive(PLUGIN_FD, &byte, &image, 1);
    if (rc < 0) _exit(0);
    if (rc != 0) return "a warm worker received no plugin image";
    if (dup2(image, PLUGIN_FD) != PLUGIN_FD) return "placing the plugin image on descriptor 4 failed";
    close(image);
    return NULL;
}

/* Waits for START and returns its configuration (a malloc'd string). */
static char *await_start(void) {
    for (;;) {
        frame *f = channel_read(1);
        if (is_control(&f->env, PLEXUS_CONTROL_START)) {
            host_payload_limit = f->env.correlation_id.lo;
            /* The agent's name as the host registered it (an instance's NAME.2, a child's SPAWNER/INSTANCE). */
            if (f->env.sender && f->env.sender[0]) snprintf(agent_name_buf, sizeof agent_name_buf, "%s", f->env.sender);
            char *cfg = malloc(f->env.payload_len + 1);
            if (!cfg) _exit(PLEXUS_WORKER_EXIT_CHANNEL);
            memcpy(cfg, f->env.payload ? (const void *)f->env.payload : "", f->env.payload_len);
            cfg[f->env.payload_len] = 0;
            frame_free(f);
            return cfg;
        }
        if (is_control(&f->env, PLEXUS_CONTROL_SHUTDOWN)) _exit(0);
        frame_free(f);   /* nothing else is meaningful before START */
    }
}

/* path: the plugin image as confinement left it reachable. */
static void load(const char *path, const char **out_name) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        char text[600];
        snprintf(text, sizeof text, "dlopen failed: %s", dlerror());
        refuse(PLEXUS_BAD_DESCRIPTOR, text);
    }
    close(PLUGIN_FD);
    plexus_entry_fn entry = (plexus_entry_fn)dlsym(h, "plexus_plugin_entry");
    if (!entry) refuse(PLEXUS_BAD_DESCRIPTOR, "missing symbol: expected the entry function 'plexus_plugin_entry', found none exported");
    desc = entry();
    char err[512];
    plexus_status s = descriptor_check(desc, err, sizeof err);
    if (s != PLEXUS_OK) refuse(s, err);
    *out_name = desc->name;
}

/* ---- serving ------------------------------------------------------------- */

static void report_denied(void) {
    char names[512];
    sandbox_take_denied(names, sizeof names);
    if (names[0]) {
        plexus_id none = { 0, 0 };
        channel_control(PLEXUS_CONTROL_DENIED, none, PLEXUS_PERMISSION_DENIED, names, strlen(names));
    }
}

/* Deliveries finished since the last DONE, by id (DONE names them: the
** worker may take deliveries out of arrival order, by priority). */
static uint8_t done_ids[256 * 16];
static unsigned done_n;

static void put_id(uint8_t *p, plexus_id id) {
    for (int i = 0; i < 8; i++) { p[i] = (uint8_t)(id.hi >> (8 * i)); p[8 + i] = (uint8_t)(id.lo >> (8 * i)); }
}

/* Lock held. */
static void send_done(void) {
    if (!done_n) return;
    plexus_id none = { 0, 0 };
    channel_control(PLEXUS_CONTROL_DONE, none, 0, done_ids, (uint64_t)done_n * 16);
    done_n = 0;
}

static void finished(plexus_id id) {
    pthread_mutex_lock(&lock);
    put_id(done_ids + done_n * 16, id);
    if (++done_n == 256) send_done();
    pthread_mutex_unlock(&lock);
}

/* ---- typed exports ------------------------------------------------------ */

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static const plexus_export *find_export(const char *name) {
    for (uint32_t i = 0; name && i < desc->export_count; i++) {
        const plexus_export *x = (const plexus_export *)((const char *)desc->exports + (uint64_t)i * desc->exports[0].struct_size);
        if (strcmp(x->name, name) == 0) return x;
    }
    return NULL;
}

static void reply_bytes(const plexus_envelope *m, plexus_kind kind, plexus_status status, const char *ct,
                        const void *p, uint64_t n) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = (uint8_t)kind;
    e.target_kind = PLEXUS_TARGET_REPLY;
    e.correlation_id = m->id;
    e.status = status;
    e.content_type = ct;
    e.payload = p;
    e.payload_len = n;
    pthread_mutex_lock(&lock);
    if (open_take(m->id) == OPEN_YES) {
        const char *what = NULL;
        plexus_status s = plexus_contract_fields(&e, channel_payload_limit(), &what);
        if (s == PLEXUS_OK) s = channel_queue(&e);
        if (s != PLEXUS_OK) {   /* e.g. a string result over the limit: the caller hears it now */
            char text[512];
            int k = snprintf(text, sizeof text, "{\"error\":\"%s\",\"message\":\"the result was refused: %s\"}",
                             plexus_status_name(s), what ? what : plexus_status_message(s));
            answer_error(m->id, s, text, printed(k, sizeof text));
        }
    }
    pthread_mutex_unlock(&lock);
}

/* Arguments as the host encoded them (scalars: 8 bytes; strings and
** buffers: u64 length, bytes, NUL), checked against the export's types. */
static plexus_status call_export(const plexus_export *x, const plexus_envelope *m) {
    plexus_ffi_value args[PLEXUS_MAX_EXPORT_ARGS];
    memset(args, 0, sizeof args);
    const uint8_t *p = m->payload, *end = m->payload + m->payload_len;
    for (uint32_t i = 0; i < x->arg_count; i++) {
        if (end - p < 8) return PLEXUS_MALFORMED_FRAME;
        uint64_t v = get_u64(p);
        p += 8;
        uint8_t t = x->arg_types[i];
        if (t == PLEXUS_TYPE_STRING || t == PLEXUS_TYPE_BUFFER) {
            if ((uint64_t)(end - p) < v + 1 || p[v] != 0) return PLEXUS_MALFORMED_FRAME;
            args[i].u64 = v;
            args[i].ptr = p;
            p += v + 1;
        } else if (t == PLEXUS_TYPE_F32 || t == PLEXUS_TYPE_F64) {
            memcpy(&args[i].f64, &v, 8);
        } else {
            args[i].u64 = v;
            args[i].i64 = (int64_t)v;
        }
    }
    plexus_ffi_value out;
    memset(&out, 0, sizeof out);
    const char *what = NULL;
    plexus_status s = plexus_ffi_call(x->function, x->return_type, x->arg_types, x->arg_count, args, &out, &what);
    if (m->kind != PLEXUS_KIND_QUERY) {
        if (x->return_type == PLEXUS_TYPE_STRING_OWNED) free((void *)out.ptr);
        return s;
    }
    if (s != PLEXUS_OK) {
        char text[768];
        int n = snprintf(text, sizeof text, "{\"error\":\"%s\",\"message\":\"%s: %s\"}", plexus_status_name(s), x->name, what ? what : "call failed");
        reply_bytes(m, PLEXUS_KIND_ERROR, s, "application/json", text, printed(n, sizeof text));
        return PLEXUS_OK;
    }
    uint8_t small[9];
    small[0] = x->return_type;
    if (x->return_type == PLEXUS_TYPE_STRING || x->return_type == PLEXUS_TYPE_STRING_OWNED) {
        const char *str = out.ptr ? out.ptr : "";
        size_t n = strlen(str);
        uint8_t *buf = malloc(n + 1);
        if (!buf) return PLEXUS_NO_MEMORY;
        buf[0] = x->return_type;
        memcpy(buf + 1, str, n);
        reply_bytes(m, PLEXUS_KIND_RESPONSE, PLEXUS_OK, "application/x-plexus-ffi-result", buf, n + 1);
        free(buf);
        if (x->return_type == PLEXUS_TYPE_STRING_OWNED) free((void *)out.ptr);
        return PLEXUS_OK;
    }
    uint64_t bits = (uint64_t)out.i64;
    if (x->return_type == PLEXUS_TYPE_F32 || x->return_type == PLEXUS_TYPE_F64) memcpy(&bits, &out.f64, 8);
    else if (x->return_type == PLEXUS_TYPE_U32 || x->return_type == PLEXUS_TYPE_U64) bits = out.u64;
    for (int i = 0; i < 8; i++) small[1 + i] = (uint8_t)(bits >> (8 * i));
    reply_bytes(m, PLEXUS_KIND_RESPONSE, PLEXUS_OK, "application/x-plexus-ffi-result", small,
                x->return_type == PLEXUS_TYPE_VOID ? 1 : 9);
    return PLEXUS_OK;
}

/* ---- deliveries ---------------------------------------------------------- */

static plexus_status dispatch(const plexus_envelope *m) {
    if (m->content_type && strcmp(m->content_type, "application/x-plexus-ffi-call") == 0) {
        const plexus_export *x = find_export(m->target);
        if (x) return call_export(x, m);
    }
    if (!desc->handle) return PLEXUS_UNSUPPORTED;
    plexus_id outer = current_trace;
    current_trace = m->trace_id;
    plexus_status s = desc->handle(state, (plexus_ctx *)&host_table, m);
    current_trace = outer;
    return s;
}

static void deliver(frame *f) {
    const plexus_envelope *m = &f->env;
    int query = m->kind == PLEXUS_KIND_QUERY;
    if (query) { pthread_mutex_lock(&lock); open_add(m->id, m->deadline_unix_ns); pthread_mutex_unlock(&lock); }
    /* Closed before the handler hears of it, so a reply it sends from
    ** another thread meanwhile is already late, as in the host. */
    if (m->kind == PLEXUS_KIND_CANCEL) { pthread_mutex_lock(&lock); open_cancel(m->correlation_id); pthread_mutex_unlock(&lock); }
    plexus_status s = dispatch(m);
    if (query && s != PLEXUS_OK) {
        pthread_mutex_lock(&lock);
        if (open_take(m->id) == OPEN_YES) {
            char text[512];   /* room for a 255-byte agent name: the whole text, never more than was written */
            int n = snprintf(text, sizeof text, "{\"error\":\"%s\",\"message\":\"agent '%s' returned %s while handling the request\"}",
                             plexus_status_name(PLEXUS_HANDLER_FAILED), desc->name, plexus_status_name(s));
            answer_error(m->id, PLEXUS_HANDLER_FAILED, text, printed(n, sizeof text));
        }
        pthread_mutex_unlock(&lock);
    }
}

/* ---- the local queue ---------------------------------------------------
** Frames read from the channel wait here, one FIFO per priority, so the
** worker keeps the host's priority order for what it has received but not
** yet handled. Control frames are acted on as they are read. */

static frame *prio_head[PLEXUS_PRIORITY_COUNT], *prio_tail[PLEXUS_PRIORITY_COUNT];
static int shutdown_asked;

static int is_control_frame(const plexus_envelope *m) {
    return m->target_kind == PLEXUS_TARGET_TOPIC && m->target &&
           strncmp(m->target, PLEXUS_CONTROL_PREFIX, strlen(PLEXUS_CONTROL_PREFIX)) == 0;
}

/* Lock held. */
static void accept_frame(frame *f) {
    const plexus_envelope *m = &f->env;
    if (is_control_frame(m)) {
        if (is_control(m, PLEXUS_CONTROL_PING)) channel_control(PLEXUS_CONTROL_PONG, m->correlation_id, 0, NULL, 0);
        else if (is_control(m, PLEXUS_CONTROL_SHUTDOWN)) shutdown_asked = 1;
        frame_free(f);
        return;
    }
    if (m->kind == PLEXUS_KIND_CANCEL) open_cancel(m->correlation_id);   /* late from now on, though handle() hears it later */
    unsigned p = m->priority < PLEXUS_PRIORITY_COUNT ? m->priority : 0;
    f->next = NULL;
    if (prio_tail[p]) prio_tail[p]->next = f; else prio_head[p] = f;
    prio_tail[p] = f;
}

/* Lock held: everything already read or readable, into the queues. */
static void take_input(void) {
    while (queued_head) {
        frame *f = queued_head;
        queued_head = f->next;
        if (!queued_head) queued_tail = NULL;
        accept_frame(f);
    }
    frame *f;
    while ((f = channel_read(0)) != NULL) accept_frame(f);
}

static frame *pop_highest(void) {
    for (int p = PLEXUS_PRIORITY_COUNT - 1; p >= 0; p--) {
        frame *f = prio_head[p];
        if (f) {
            prio_head[p] = f->next;
            if (!prio_head[p]) prio_tail[p] = NULL;
            return f;
        }
    }
    return NULL;
}

static int have_frames(void) {
    for (int p = 0; p < PLEXUS_PRIORITY_COUNT; p++) if (prio_head[p]) return 1;
    return 0;
}

/* ---- flushing behind a long handler -----------------------------------
** A server writes what handlers queued (replies, DONE) when it goes idle,
** so a stream of short messages costs one write per batch. A reply queued
** just before a long handler starts would wait for that handler to end:
** the flusher thread, armed when a handler starts with output pending,
** writes it after FLUSH_AFTER_NS. It is started on first need. */

#define FLUSH_AFTER_NS 200000L
static pthread_cond_t flush_cv = PTHREAD_COND_INITIALIZER;
static int flusher_started, flusher_armed;

static void *flusher(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!flusher_armed) pthread_cond_wait(&flush_cv, &lock);
        pthread_mutex_unlock(&lock);
        struct timespec ts = { 0, FLUSH_AFTER_NS };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
        pthread_mutex_lock(&lock);
        flusher_armed = 0;
        send_done();
        channel_flush();
    }
    return NULL;
}

/* Lock held: a handler is about to start. */
static void arm_flusher(void) {
    if (flusher_armed || (!channel_has_output() && !done_n)) return;
    if (!flusher_started) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 64 * 1024);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        flusher_started = pthread_create(&t, &a, flusher, NULL) == 0 ? 1 : -1;
        pthread_attr_destroy(&a);
    }
    if (flusher_started < 0) { send_done(); channel_flush(); return; }  /* no thread: flush now */
    flusher_armed = 1;
    pthread_cond_signal(&flush_cv);
}

/* The next delivery, highest priority first, for one of `concurrency`
** servers. One idle server sleeps on the channel (the ring's futex); the others wait
** on serve_cv (leader and followers), so a frame wakes one thread, not all.
** Returns NULL when SHUTDOWN came and nothing is left. */
static frame *next_frame(void) {
    pthread_mutex_lock(&lock);
    for (;;) {
        take_input();
        frame *f = pop_highest();
        if (f) {
            if (idle_servers && have_frames()) pthread_cond_signal(&serve_cv);
            arm_flusher();
            pthread_mutex_unlock(&lock);
            return f;
        }
        if (shutdown_asked) {
            wake_servers();
            pthread_cond_broadcast(&serve_cv);
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        send_done();   /* idle: account for what was handled, then sleep */
        report_denied();
        channel_flush();
        if (polling) {
            idle_servers++;
            pthread_cond_wait(&serve_cv, &lock);
            idle_servers--;
            continue;
        }
        polling = 1;
        uint32_t seen = channel_bell();   /* under the lock: a kick after this is not lost */
        pthread_mutex_unlock(&lock);
        channel_sleep(seen);
        pthread_mutex_lock(&lock);
        polling = 0;
        if (idle_servers) pthread_cond_signal(&serve_cv);   /* one of them polls next */
    }
}

/* A message whose deadline passed while it waited here is not handled: the
** host dead-letters it (and ends the request) when it hears EXPIRED. */
static int expired(const plexus_envelope *m) {
    if (m->deadline_unix_ns == 0 || m->kind == PLEXUS_KIND_RESPONSE || m->kind == PLEXUS_KIND_ERROR) return 0;
    if (h_now() <= m->deadline_unix_ns) return 0;
    uint8_t id[16];
    put_id(id, m->id);
    plexus_id none = { 0, 0 };
    pthread_mutex_lock(&lock);
    channel_control(PLEXUS_CONTROL_EXPIRED, none, PLEXUS_EXPIRED, id, 16);
    pthread_mutex_unlock(&lock);
    return 1;
}

static void *serve_loop(void *arg) {
    (void)arg;
    is_server = 1;
    frame *f;
    while ((f = next_frame()) != NULL) {
        if (!expired(&f->env)) {
            deliver(f);
            finished(f->env.id);
        }
        frame_free(f);
    }
    return NULL;
}

/* Runs `concurrency` servers (only a plugin that declares itself concurrent
** gets more than one) until SHUTDOWN, then the plugin's shutdown. */
static void serve(void) {
    if (!(desc->flags & PLEXUS_PLUGIN_CONCURRENT)) concurrency = 1;
    pthread_t extra[256];
    unsigned started = 0;
    for (unsigned i = 1; i < concurrency; i++) {
        int rc = pthread_create(&extra[started], NULL, serve_loop, NULL);
        if (rc != 0) {
            fprintf(stderr, "plexus-worker: started %u of %u handler threads: %s\n", started + 1, concurrency, strerror(rc));
            break;
        }
        started++;
    }
    serve_loop(NULL);
    for (unsigned i = 0; i < started; i++) pthread_join(extra[i], NULL);
    pthread_mutex_lock(&lock);
    send_done();
    channel_flush();
    pthread_mutex_unlock(&lock);
    if (desc->shutdown) desc->shutdown(state);
    _exit(0);
}

int main(int argc, char **argv) {
    worker_limits limits = { 0 };
    confine_spec confine = { 0 };
    pid_t parent = 0;
    uint64_t max_payload = PLEXUS_MAX_PAYLOAD_LEN;
    parse(argc, argv, &limits, &confine, &parent, &max_payload);
    /* Die with the host; if it died before this line, getppid() has changed. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(PLEXUS_WORKER_EXIT_ORPHANED);
    setpgid(0, 0);
    close_range(FILTER_FD + 2, ~0U, 0);   /* 6: the network namespace (--netns), closed once joined */
    signal(SIGPIPE, SIG_IGN);
    /* The umask is inherited, and the host's is not always its own: its
    ** socket server narrows it to 0177 for the moment it binds, and a worker
    ** spawned in that moment (a warm one, at start) would make its root's
    ** /.plexus 0600 and the plugin image 0400, which uid 65534 cannot open
    ** (dlopen: Permission denied, when that warm worker was used). */
    umask(022);
    channel_init(CHANNEL_FD, max_payload);
    channel_attach_ring();

    /* Confinement first (it needs root and a single thread), then no
    ** capability, then limits and the syscall allowlist. */
    const char *mechanism = NULL, *plugin_path = NULL;
    struct stat image;
    uint64_t image_size = warm_image_max ? warm_image_max : (fstat(PLUGIN_FD, &image) == 0 ? (uint64_t)image.st_size : 0);
    const char *failed = confine_prepare(&confine, image_size);
    if (!failed && warm_image_max) failed = await_image();
    if (!failed) failed = confine_finish(&confine, PLUGIN_FD, parent, &mechanism, &plugin_path);
    if (!failed) failed = confine_drop_capabilities();
    if (!failed) failed = sandbox_apply(&limits, FILTER_FD);
    if (failed) refuse(PLEXUS_INTERNAL, failed);

    const char *name = NULL;
    load(plugin_path, &name);
    char *json = descriptor_json(desc, mechanism);
    plexus_id none = { 0, 0 };
    channel_control(PLEXUS_CONTROL_HELLO, none, 0, json, strlen(json));
    free(json);
    channel_flush();

    char *config = await_start();
    plexus_status s = desc->init(&host_table, (plexus_ctx *)&host_table, config, &state);
    free(config);
    if (s != PLEXUS_OK) {
        char text[200];
        snprintf(text, sizeof text, "init returned %s", plexus_status_name(s));
        refuse(s, text);
    }
    pthread_mutex_lock(&lock);
    channel_control(PLEXUS_CONTROL_READY, none, 0, NULL, 0);
    channel_flush();
    pthread_mutex_unlock(&lock);
    serve();
    return 0;
}
