/* probe — a test agent whose behaviour each test chooses by capability.
** Compiled at test time; -DAGENT_NAME='"name"' gives it another name. */
#include "plexus.h"
static plexus_status probe_init(const char *config);
#define PLEXUS_AGENT_ON_INIT(config) probe_init(config)
#define PLEXUS_AGENT_EXPORT_LIST 7, exports
#define PLEXUS_AGENT_PERMISSION_LIST 3, probe_permissions
#include "plexus_agent.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef AGENT_NAME
#define AGENT_NAME "probe"
#endif

static char journal[65536];   /* what probe.record saw, comma-separated */
static size_t journal_len;

static void note(const char *s, size_t n) {
    if (journal_len + n + 2 >= sizeof journal) return;
    if (journal_len) journal[journal_len++] = ',';
    memcpy(journal + journal_len, s, n);
    journal_len += n;
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static long number(const uint8_t *p, uint64_t len) {
    char buf[32] = {0};
    size_t n = len < sizeof buf - 1 ? (size_t)len : sizeof buf - 1;
    memcpy(buf, p, n);
    return atol(buf);
}

static int is(const char *cap, const char *name) { return strcmp(cap, name) == 0; }

/* cap is the capability asked for; (p, n) its argument. Messages sent to the
** agent by name carry "capability argument" as their payload. */
static plexus_status dispatch(const plexus_envelope *m, const char *cap, const uint8_t *p, uint64_t n) {
    int query = m->kind == PLEXUS_KIND_QUERY;
    if (is(cap, "probe.echo")) return plexus_reply(m, m->content_type, p, n);
    if (is(cap, "probe.whoami")) return plexus_reply(m, "text/plain", AGENT_NAME, strlen(AGENT_NAME));
    if (is(cap, "probe.sender")) return plexus_reply(m, "text/plain", m->sender, strlen(m->sender));
    if (is(cap, "probe.sleep")) {
        sleep_ms(number(p, n));
        return query ? plexus_reply(m, "text/plain", AGENT_NAME, strlen(AGENT_NAME)) : PLEXUS_OK;
    }
    if (is(cap, "probe.fail")) return PLEXUS_HANDLER_FAILED;
    if (is(cap, "probe.append") || is(cap, "probe.flaky")) {
        /* Appends the message's trace id (a task's id) to the file named by
        ** the payload. probe.flaky fails the first time it sees an id. */
        char path[512], line[40];
        snprintf(path, sizeof path, "%.*s", (int)n, (const char *)p);
        snprintf(line, sizeof line, "%016llx%016llx\n", (unsigned long long)m->trace_id.hi, (unsigned long long)m->trace_id.lo);
        int seen = 0;
        FILE *f = fopen(path, "r");
        if (f) { char got[40]; while (fgets(got, sizeof got, f)) if (strcmp(got, line) == 0) seen = 1; fclose(f); }
        f = fopen(path, "a");
        if (!f) return PLEXUS_HANDLER_FAILED;
        fputs(line, f);
        fclose(f);
        if (is(cap, "probe.flaky") && !seen) return PLEXUS_HANDLER_FAILED;
        sleep_ms(2);
        return plexus_reply(m, "text/plain", "ok", 2);
    }
    if (is(cap, "probe.noreply")) return PLEXUS_OK;
    if (is(cap, "probe.record")) { note((const char *)p, (size_t)n); return PLEXUS_OK; }
    if (is(cap, "probe.journal")) return plexus_reply(m, "text/plain", journal, journal_len);
    if (is(cap, "probe.big")) {                /* replies with N bytes */
        long len = number(p, n);
        char *buf = calloc((size_t)len + 1, 1);
        if (!buf) return PLEXUS_NO_MEMORY;
        memset(buf, 'x', (size_t)len);
        plexus_status s = plexus_reply(m, "text/plain", buf, (size_t)len);
        free(buf);
        return s;
    }
    if (is(cap, "probe.nudge")) {              /* "AGENT MS": wake AGENT, then stay busy MS */
        char target[64] = {0};
        uint64_t i = 0;
        while (i < n && i < sizeof target - 1 && p[i] != ' ') { target[i] = (char)p[i]; i++; }
        plexus_envelope e = plexus_envelope_init();
        e.target_kind = PLEXUS_TARGET_AGENT;
        e.target = target;
        e.payload = (const uint8_t *)"probe.record nudged";
        e.payload_len = strlen("probe.record nudged");
        plexus_status s = plexus_sdk_host->send(plexus_sdk_ctx(), &e);
        if (i < n) sleep_ms(number(p + i + 1, n - i - 1));
        return s;
    }
    if (is(cap, "probe.crash")) { *(volatile int *)0 = 1; return PLEXUS_INTERNAL; }
    if (is(cap, "probe.exit")) exit((int)number(p, n));   /* in a worker only */
    if (is(cap, "probe.pid") || is(cap, "probe.fork") || is(cap, "probe.socket")) {
        long v = getpid();
        if (is(cap, "probe.fork")) { pid_t c = fork(); if (c == 0) _exit(0); v = c < 0 ? -errno : c; }
        if (is(cap, "probe.socket")) { int fd = socket(AF_INET, SOCK_STREAM, 0); v = fd < 0 ? -errno : fd; }
        char text[32];
        int len = snprintf(text, sizeof text, "%ld", v);
        return plexus_reply(m, "text/plain", text, (size_t)len);
    }
    if (is(cap, "probe.publish")) {
        plexus_status s = plexus_publish_json("probe.events.relay", "\"relayed\"");
        return s == PLEXUS_OK ? plexus_reply_json(m, "\"ok\"") : s;
    }
    return PLEXUS_UNSUPPORTED;
}

static plexus_status handle(const plexus_envelope *m) {
    if (m->kind == PLEXUS_KIND_EVENT) { note((const char *)m->payload, m->payload_len); return PLEXUS_OK; }
    if (m->target_kind != PLEXUS_TARGET_AGENT) return dispatch(m, m->target, m->payload, m->payload_len);
    char cap[128] = {0};
    uint64_t i = 0;
    while (i < m->payload_len && i < sizeof cap - 1 && m->payload[i] != ' ') { cap[i] = (char)m->payload[i]; i++; }
    uint64_t skip = i < m->payload_len ? i + 1 : i;
    return dispatch(m, cap, m->payload + skip, m->payload_len - skip);
}

static int64_t add(int64_t a, int64_t b) { return a + b; }
static int32_t negate(int32_t a) { return -a; }
static double half(float x) { return x / 2.0; }
static uint8_t is_even(uint64_t x) { return (x & 1) == 0; }
static char *shout(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    for (size_t i = 0; i < n; i++) out[i] = (s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i];
    out[n] = '!'; out[n + 1] = 0;
    return out;
}
static const char *constant(void) { return "plexus"; }
static uint64_t count_bytes(const uint8_t *p, uint64_t n) { (void)p; return n; }

static const uint8_t t_i64x2[] = { PLEXUS_TYPE_I64, PLEXUS_TYPE_I64 };
static const char *const n_add[] = { "a", "b" };
static const uint8_t t_i32[] = { PLEXUS_TYPE_I32 };
static const uint8_t t_f32[] = { PLEXUS_TYPE_F32 };
static const uint8_t t_u64[] = { PLEXUS_TYPE_U64 };
static const uint8_t t_str[] = { PLEXUS_TYPE_STRING };
static const uint8_t t_buf[] = { PLEXUS_TYPE_BUFFER };

static const plexus_export exports[7] = {
    { sizeof(plexus_export), "probe.add", NULL, (void (*)(void))add, PLEXUS_TYPE_I64, 2, t_i64x2, n_add },
    { sizeof(plexus_export), "probe.negate", NULL, (void (*)(void))negate, PLEXUS_TYPE_I32, 1, t_i32, NULL },
    { sizeof(plexus_export), "probe.half", NULL, (void (*)(void))half, PLEXUS_TYPE_F64, 1, t_f32, NULL },
    { sizeof(plexus_export), "probe.is_even", NULL, (void (*)(void))is_even, PLEXUS_TYPE_BOOL, 1, t_u64, NULL },
    { sizeof(plexus_export), "probe.shout", NULL, (void (*)(void))shout, PLEXUS_TYPE_STRING_OWNED, 1, t_str, NULL },
    { sizeof(plexus_export), "probe.constant", NULL, (void (*)(void))constant, PLEXUS_TYPE_STRING, 0, NULL, NULL },
    { sizeof(plexus_export), "probe.count", NULL, (void (*)(void))count_bytes, PLEXUS_TYPE_U64, 1, t_buf, NULL },
};

static const plexus_capability caps[] = {
    PLEXUS_CAPABILITY("probe.echo", NULL), PLEXUS_CAPABILITY("probe.whoami", NULL),
    PLEXUS_CAPABILITY("probe.sender", NULL), PLEXUS_CAPABILITY("probe.sleep", NULL),
    PLEXUS_CAPABILITY("probe.fail", NULL), PLEXUS_CAPABILITY("probe.noreply", NULL),
    PLEXUS_CAPABILITY("probe.append", "appends the trace id to the file the payload names"),
    PLEXUS_CAPABILITY("probe.flaky", "like probe.append, but fails the first time it sees a trace id"),
    PLEXUS_CAPABILITY("probe.record", NULL), PLEXUS_CAPABILITY("probe.journal", NULL),
    PLEXUS_CAPABILITY("probe.big", NULL), PLEXUS_CAPABILITY("probe.publish", NULL),
    PLEXUS_CAPABILITY("probe.crash", "dereferences NULL"), PLEXUS_CAPABILITY("probe.exit", "exit(N)"), PLEXUS_CAPABILITY("probe.pid", "replies with its pid"),
    PLEXUS_CAPABILITY("probe.fork", "fork(): the child's pid, or -errno"),
    PLEXUS_CAPABILITY("probe.socket", "socket(): a descriptor, or -errno"),
};

static plexus_status probe_init(const char *config) {
    (void)config;
#ifdef SUBSCRIBE
    return plexus_subscribe(SUBSCRIBE);
#else
    return PLEXUS_OK;
#endif
}

/* What it reaches: other agents, what it publishes, and the subscription a
** test may compile in. */
#ifndef SUBSCRIBE
#define SUBSCRIBE_GRANT "probe.none"
#else
#define SUBSCRIBE_GRANT SUBSCRIBE
#endif
static const plexus_permission probe_permissions[] = {
    PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, "*"),          /* probe.nudge wakes another agent by name */
    PLEXUS_PERMISSION(PLEXUS_PERMIT_PUBLISH, "probe.events.>"),
    PLEXUS_PERMISSION(PLEXUS_PERMIT_SUBSCRIBE, SUBSCRIBE_GRANT),
};

PLEXUS_AGENT(AGENT_NAME, "0.1.0", caps, handle)
