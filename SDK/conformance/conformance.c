/* plexus-conformance — checks that a plugin keeps the ABI's promises, with no
** host involved: a mock host table records every call.
**
**   1. the entry symbol returns a descriptor this ABI accepts (version, sizes,
**      names, functions present);
**   2. init succeeds with "{}";
**   3. every declared capability, sent a QUERY, ends it: the plugin replies
**      exactly once, or returns a non-OK status; requests it makes of others
**      are answered with an ERROR and must not hang or crash it;
**   4. a QUERY for a capability it does not declare is not answered OK;
**   5. an EVENT it did not ask for does not crash it;
**   6. shutdown returns;
**   7. every envelope it hands the host has struct_size >= PLEXUS_ENVELOPE_SIZE_1_0
**      and every expected_version is PLEXUS_KV_ANY or >= 0 (a real host refuses
**      others with INVALID_ARGUMENT, sandboxed and in process alike);
**   8. every call returns within $PLEXUS_CONFORMANCE_TIMEOUT_S seconds (10):
**      a handler that spins or blocks fails, named, instead of hanging the suite;
**   9. (ABI 1.2) partial answers (reply_partial) come only before a query's
**      final reply, never after; cancel() names one of the plugin's own open
**      requests (others are NOT_A_REQUEST); a plugin built for 1.2 or later,
**      sent a CANCEL for a query, does not crash.
**  10. (ABI 1.2) spawn() and stop() are answered as plexus.h says: bad names,
**      bad JSON or a small out_name buffer are INVALID_ARGUMENT (counted as
**      refused calls); a child is named conformance/INSTANCE, at most 8 at once
**      (then LIMIT_REACHED), CONFLICT for a taken name; stop() of anything but
**      the plugin's own live child is refused. Each child still running after
**      the queries ends with a plexus.agent.terminated EVENT, which must not
**      crash the plugin.
** Usage: plexus-conformance PLUGIN.so...   Exit status 0 when all pass. */
#define _POSIX_C_SOURCE 200809L
#include "plexus.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The watchdog: before each call into the plugin, the failure it would be
** is written out in advance, so the SIGALRM handler only writes and exits. */
static char overdue[600];
static size_t overdue_len;
static unsigned timeout_s = 10;

static void on_alarm(int sig) {
    (void)sig;
    ssize_t ignored = write(STDOUT_FILENO, overdue, overdue_len);
    (void)ignored;
    _exit(1);
}

static void arm(const char *path, const char *what, const char *name) {
    int n = snprintf(overdue, sizeof overdue, "  FAIL: %s: %s%s%s did not return within %u s "
                     "(a handler that spins or blocks; PLEXUS_CONFORMANCE_TIMEOUT_S sets the limit)\n",
                     path, what, name ? " " : "", name ? name : "", timeout_s);
    overdue_len = n < 0 ? 0 : ((size_t)n < sizeof overdue ? (size_t)n : sizeof overdue - 1);
    fflush(stdout);
    alarm(timeout_s);
}

static void disarm(void) { alarm(0); }

static int replies, reply_ok, requests, failures, refused, partials, late_partials, cancels, bad_cancels;
static const char *current = "";
static plexus_id pending[64];

/* What a real host refuses before anything else (plexus.h, "Contract"). */
static int bad_envelope(const plexus_envelope *m) {
    if (m && m->struct_size >= PLEXUS_ENVELOPE_SIZE_1_0) return 0;
    refused++;
    return 1;
}

static plexus_status m_send(plexus_ctx *c, const plexus_envelope *m) {
    (void)c;
    return bad_envelope(m) ? PLEXUS_INVALID_ARGUMENT : PLEXUS_OK;
}
static plexus_status m_request(plexus_ctx *c, const plexus_envelope *m, uint32_t t, plexus_id *out) {
    (void)c; (void)t;
    if (bad_envelope(m)) return PLEXUS_INVALID_ARGUMENT;
    if (requests >= 64) return PLEXUS_MAILBOX_FULL;
    plexus_id id = { 0xC0, (uint64_t)(1000 + requests) };
    pending[requests++] = id;
    if (out) *out = id;
    return PLEXUS_OK;
}
static plexus_status m_reply(plexus_ctx *c, const plexus_envelope *m) {
    (void)c;
    if (bad_envelope(m)) return PLEXUS_INVALID_ARGUMENT;
    replies++;
    if (m->kind == PLEXUS_KIND_RESPONSE) reply_ok++;
    return PLEXUS_OK;
}
/* reply_partial (1.2): counted; one after the final reply is a failure. */
static plexus_status m_reply_partial(plexus_ctx *c, const plexus_envelope *m) {
    (void)c;
    if (bad_envelope(m)) return PLEXUS_INVALID_ARGUMENT;
    if (replies > 0) { late_partials++; return PLEXUS_NOT_A_REQUEST; }
    partials++;
    return PLEXUS_OK;
}
/* cancel (1.2): only the plugin's own requests, as a host answers. */
static plexus_status m_cancel(plexus_ctx *c, plexus_id id) {
    (void)c;
    if (id.hi == 0 && id.lo == 0) { bad_cancels++; return PLEXUS_INVALID_ARGUMENT; }
    for (int i = 0; i < requests; i++)
        if (pending[i].hi == id.hi && pending[i].lo == id.lo) { cancels++; return PLEXUS_OK; }
    bad_cancels++;
    return PLEXUS_NOT_A_REQUEST;
}
/* spawn / stop (1.2): a mock lineage of up to 8 children, answered as a
** host answers; the checks are plexus.h's, in its order. */
#define MOCK_CHILDREN 8
static char children[MOCK_CHILDREN][PLEXUS_MAX_NAME_LEN + 1];
static int spawned, stopped_children, child_seq;

static int mock_name_ok(const char *s, int slash_ok) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 200) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.:@-", c) ||
              (slash_ok && c == '/'))) return 0;
    }
    return 1;
}

static plexus_status m_spawn(plexus_ctx *c, const char *plugin, const char *instance, const char *config,
                             char *out, uint32_t out_size) {
    if (!c || !mock_name_ok(plugin, 0) || (instance && *instance && !mock_name_ok(instance, 0)) ||
        (out && out_size < PLEXUS_MAX_NAME_LEN + 1)) { refused++; return PLEXUS_INVALID_ARGUMENT; }
    if (config) {   /* a JSON object, as far as a mock can tell */
        while (*config == ' ' || *config == '\n' || *config == '\t') config++;
        size_t n = strlen(config);
        while (n && (config[n - 1] == ' ' || config[n - 1] == '\n')) n--;
        if (n < 2 || config[0] != '{' || config[n - 1] != '}') { refused++; return PLEXUS_INVALID_ARGUMENT; }
    }
    char name[PLEXUS_MAX_NAME_LEN + 1];
    if (instance && *instance) snprintf(name, sizeof name, "conformance/%s", instance);
    else snprintf(name, sizeof name, "conformance/%s.%d", plugin, ++child_seq);
    int free_slot = -1;
    for (int i = 0; i < MOCK_CHILDREN; i++) {
        if (!children[i][0]) { if (free_slot < 0) free_slot = i; }
        else if (strcmp(children[i], name) == 0) return PLEXUS_CONFLICT;
    }
    if (free_slot < 0) return PLEXUS_LIMIT_REACHED;
    strcpy(children[free_slot], name);
    spawned++;
    if (out) strcpy(out, name);
    return PLEXUS_OK;
}

static plexus_status m_stop(plexus_ctx *c, const char *name) {
    if (!c || !mock_name_ok(name, 1)) { refused++; return PLEXUS_INVALID_ARGUMENT; }
    for (int i = 0; i < MOCK_CHILDREN; i++)
        if (strcmp(children[i], name) == 0) { children[i][0] = 0; stopped_children++; return PLEXUS_OK; }
    return strncmp(name, "conformance/", 12) == 0 ? PLEXUS_NO_SUCH_AGENT : PLEXUS_PERMISSION_DENIED;
}

static plexus_status m_sub(plexus_ctx *c, const char *p) { (void)c; return p ? PLEXUS_OK : PLEXUS_INVALID_ARGUMENT; }
static void m_log(plexus_ctx *c, int32_t l, const char *s) { (void)c; (void)l; (void)s; }
static void *m_alloc(uint64_t n) { return malloc(n); }
static void m_free(void *p) { free(p); }
static int64_t m_now(void) { return 1; }
static const char *m_name(plexus_ctx *c) { (void)c; return "conformance"; }

/* The key-value functions over a small in-memory table, with plexus.h's
** versions and compare-and-set, so a plugin that keeps state can be checked. */
static struct { char key[PLEXUS_KV_MAX_KEY + 1]; uint8_t *value; uint64_t len, version; } kv[64];
static int kv_n;

static int kv_find(const char *key) {
    for (int i = 0; i < kv_n; i++) if (strcmp(kv[i].key, key) == 0) return i;
    return -1;
}
static plexus_status m_kv_get(plexus_ctx *c, const char *key, uint8_t **out, uint64_t *len, uint64_t *version) {
    (void)c;
    if (!key || !out || !len || !version) return PLEXUS_INVALID_ARGUMENT;
    int i = kv_find(key);
    *out = NULL; *len = 0; *version = 0;
    if (i < 0) return PLEXUS_OK;
    if (!(*out = malloc(kv[i].len + 1))) return PLEXUS_NO_MEMORY;
    memcpy(*out, kv[i].value, kv[i].len);
    (*out)[kv[i].len] = 0;
    *len = kv[i].len; *version = kv[i].version;
    return PLEXUS_OK;
}
static plexus_status m_kv_put(plexus_ctx *c, const char *key, const uint8_t *v, uint64_t len, int64_t expected, uint64_t *out) {
    (void)c;
    if (!key || !*key || strlen(key) > PLEXUS_KV_MAX_KEY || (len && !v)) return PLEXUS_INVALID_ARGUMENT;
    if (expected < PLEXUS_KV_ANY) { refused++; return PLEXUS_INVALID_ARGUMENT; }
    int i = kv_find(key);
    uint64_t found = i < 0 ? 0 : kv[i].version;
    if (expected >= 0 && (uint64_t)expected != found) return PLEXUS_CONFLICT;
    if (i < 0) {
        if (kv_n == 64) return PLEXUS_NO_MEMORY;
        i = kv_n++;
        strcpy(kv[i].key, key);
        kv[i].value = NULL; kv[i].version = 0;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return PLEXUS_NO_MEMORY;
    if (len) memcpy(copy, v, len);
    free(kv[i].value);
    kv[i].value = copy; kv[i].len = len; kv[i].version++;
    if (out) *out = kv[i].version;
    return PLEXUS_OK;
}
static plexus_status m_kv_delete(plexus_ctx *c, const char *key, int64_t expected) {
    (void)c;
    if (!key) return PLEXUS_INVALID_ARGUMENT;
    if (expected < PLEXUS_KV_ANY) { refused++; return PLEXUS_INVALID_ARGUMENT; }
    int i = kv_find(key);
    uint64_t found = i < 0 ? 0 : kv[i].version;
    if (expected >= 0 && (uint64_t)expected != found) return PLEXUS_CONFLICT;
    if (i >= 0) { free(kv[i].value); kv[i] = kv[--kv_n]; }
    return PLEXUS_OK;
}

static const plexus_host host = { sizeof(plexus_host), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR,
    m_send, m_request, m_reply, m_send, m_sub, m_sub, m_log, m_alloc, m_free, m_now, m_name,
    m_kv_get, m_kv_put, m_kv_delete,
    m_reply_partial, m_cancel,
    m_spawn, m_stop };

#define CHECK(cond, ...) do { if (!(cond)) { printf("  FAIL: " __VA_ARGS__); printf("\n"); failures++; } } while (0)

static plexus_envelope query(const char *target, uint64_t lo) {
    static const char text[] = "Conformance text. It has two sentences.";
    plexus_envelope e = plexus_envelope_init();
    e.kind = PLEXUS_KIND_QUERY;
    e.target_kind = PLEXUS_TARGET_CAPABILITY;
    e.id = (plexus_id){ 0xAB, lo };
    e.sender = "client:conformance";
    e.target = target;
    e.content_type = "text/plain";
    e.payload = (const uint8_t *)text;
    e.payload_len = sizeof text - 1;
    return e;
}

/* Sends a query, answers the plugin's own requests with errors, and checks
** the query ended exactly once. */
static void ask(const plexus_plugin_descriptor *d, void *state, const char *cap, int declared) {
    replies = reply_ok = requests = partials = 0;
    arm(current, declared ? "capability" : "a query for the undeclared capability", cap);
    plexus_envelope q = query(cap, 1);
    plexus_status s = d->handle(state, (plexus_ctx *)&host, &q);
    for (int i = 0; i < requests; i++) {
        plexus_envelope err = plexus_envelope_init();
        err.kind = PLEXUS_KIND_ERROR;
        err.target_kind = PLEXUS_TARGET_REPLY;
        err.status = PLEXUS_NO_SUCH_CAPABILITY;
        err.correlation_id = pending[i];
        err.sender = "plexus";
        err.target = "";
        err.content_type = "application/json";
        err.payload = (const uint8_t *)"{\"error\":\"NO_SUCH_CAPABILITY\"}";
        err.payload_len = strlen((const char *)err.payload);
        d->handle(state, (plexus_ctx *)&host, &err);
    }
    disarm();
    if (declared) {
        CHECK(replies == 1 || (replies == 0 && s != PLEXUS_OK),
              "capability '%s': %d replies, handler returned %s (a query must end exactly once)",
              cap, replies, plexus_status_name(s));
        if (partials) printf("  capability '%s' streamed %d partial answers before its reply\n", cap, partials);
    } else {
        CHECK(reply_ok == 0 && (s != PLEXUS_OK || replies == 1),
              "undeclared capability '%s' was answered OK or left hanging", cap);
    }
}

static int check(const char *path) {
    failures = refused = late_partials = cancels = bad_cancels = 0;
    spawned = stopped_children = child_seq = 0;
    memset(children, 0, sizeof children);
    current = path;
    printf("%s\n", path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) { printf("  FAIL: dlopen: %s\n", dlerror()); return 1; }
    plexus_entry_fn entry = (plexus_entry_fn)dlsym(h, PLEXUS_ENTRY_SYMBOL);
    if (!entry) { printf("  FAIL: no %s symbol\n", PLEXUS_ENTRY_SYMBOL); return 1; }
    const plexus_plugin_descriptor *d = entry();
    if (!d) { printf("  FAIL: entry returned NULL\n"); return 1; }
    CHECK(d->struct_size >= PLEXUS_DESCRIPTOR_SIZE_1_0, "descriptor struct_size %u, expected at least %u (ABI 1.0)",
          d->struct_size, PLEXUS_DESCRIPTOR_SIZE_1_0);
    CHECK(d->abi_major == PLEXUS_ABI_MAJOR && d->abi_minor <= PLEXUS_ABI_MINOR, "ABI %u.%u", d->abi_major, d->abi_minor);
    CHECK(d->envelope_size >= PLEXUS_ENVELOPE_SIZE_1_0 && d->envelope_size <= sizeof(plexus_envelope),
          "envelope_size %u, expected %u (ABI 1.0) to %zu", d->envelope_size, PLEXUS_ENVELOPE_SIZE_1_0, sizeof(plexus_envelope));
    CHECK(d->host_size >= PLEXUS_HOST_SIZE_1_0 && d->host_size <= sizeof(plexus_host),
          "host_size %u, expected %u (ABI 1.0) to %zu", d->host_size, PLEXUS_HOST_SIZE_1_0, sizeof(plexus_host));
    CHECK(d->name && *d->name && d->version && *d->version, "name and version must be set");
    CHECK(d->init && (d->capability_count == 0 || d->handle), "init/handle missing");
    if (failures) return 1;
    void *state = NULL;
    arm(path, "init", NULL);
    plexus_status s = d->init(&host, (plexus_ctx *)&host, "{}", &state);
    disarm();
    CHECK(s == PLEXUS_OK, "init returned %s", plexus_status_name(s));
    if (failures) return 1;
    for (uint32_t i = 0; i < d->capability_count; i++) {
        const plexus_capability *c = (const plexus_capability *)((const char *)d->capabilities + i * d->capabilities[0].struct_size);
        CHECK(c->name && *c->name, "capability %u has no name", i);
        if (c->name) ask(d, state, c->name, 1);
    }
    if (d->handle) {
        ask(d, state, "conformance.no.such.capability", 0);
        plexus_envelope ev = query("conformance.unexpected.event", 2);
        ev.kind = PLEXUS_KIND_EVENT;
        ev.target_kind = PLEXUS_TARGET_TOPIC;
        arm(path, "an unexpected event", NULL);
        d->handle(state, (plexus_ctx *)&host, &ev);
        disarm();
        for (int i = 0; i < MOCK_CHILDREN; i++) {   /* the children still running end: the spawner hears of it */
            if (!children[i][0]) continue;
            char news[PLEXUS_MAX_NAME_LEN + 64];
            int n = snprintf(news, sizeof news, "{\"name\":\"%s\",\"reason\":\"conformance: ended\"}", children[i]);
            plexus_envelope t = plexus_envelope_init();
            t.kind = PLEXUS_KIND_EVENT;
            t.target_kind = PLEXUS_TARGET_TOPIC;
            t.id = (plexus_id){ 0xAC, (uint64_t)i };
            t.sender = "plexus";
            t.target = "plexus.agent.terminated";
            t.content_type = "application/json";
            t.payload = (const uint8_t *)news;
            t.payload_len = (uint64_t)n;
            arm(path, "a plexus.agent.terminated event for", children[i]);
            d->handle(state, (plexus_ctx *)&host, &t);
            disarm();
            children[i][0] = 0;
        }
        if (d->abi_minor >= 2) {   /* older plugins are never sent CANCEL */
            plexus_envelope cancel = plexus_envelope_init();
            cancel.kind = PLEXUS_KIND_CANCEL;
            cancel.target_kind = PLEXUS_TARGET_REPLY;
            cancel.correlation_id = (plexus_id){ 0xAB, 1 };
            cancel.sender = "plexus";
            cancel.target = "";
            arm(path, "a CANCEL for a query it answered", NULL);
            d->handle(state, (plexus_ctx *)&host, &cancel);
            disarm();
        }
    }
    arm(path, "shutdown", NULL);
    if (d->shutdown) d->shutdown(state);
    disarm();
    CHECK(late_partials == 0, "%d partial answers came after their query's final reply (reply_partial must come first)",
          late_partials);
    CHECK(bad_cancels == 0, "%d cancel() calls named no request of the plugin's own (a host answers NOT_A_REQUEST)", bad_cancels);
    CHECK(refused == 0, "%d host calls passed an envelope with struct_size below %u or an expected_version below "
          "PLEXUS_KV_ANY (a host answers INVALID_ARGUMENT)", refused, PLEXUS_ENVELOPE_SIZE_1_0);
    if (spawned) printf("  spawned %d children, stopped %d\n", spawned, stopped_children);
    printf("  %s: %s %s, %u capabilities, %u exports\n", failures ? "FAIL" : "ok", d->name, d->version,
           d->capability_count, d->export_count);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *t = getenv("PLEXUS_CONFORMANCE_TIMEOUT_S");
    if (t && atoi(t) > 0) timeout_s = (unsigned)atoi(t);
    signal(SIGALRM, on_alarm);
    int failed = 0;
    for (int i = 1; i < argc; i++) failed += check(argv[i]);
    printf("%d passed, %d failed\n", argc - 1 - failed, failed);
    return failed ? 1 : 0;
}
