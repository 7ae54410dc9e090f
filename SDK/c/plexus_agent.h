/*
** plexus_agent.h — helpers that make a C agent short. Header-only; include it
** instead of plexus.h (it includes plexus.h) and compile with
**     cc -shared -fPIC -I include -I SDK/c my_agent.c -o Plugins/my_agent.so
**
** PLEXUS_AGENT(name, version, capabilities, handler) defines the descriptor,
** init, and the entry symbol. The handler has the signature
**     plexus_status handler(const plexus_envelope *msg);
** Inside it, the plexus_* helpers below act for the agent being called (they
** read a thread-local set around each call). From other threads, use the
** host table in plexus_sdk_host with a ctx you saved from plexus_sdk_ctx().
*/
#ifndef PLEXUS_AGENT_H
#define PLEXUS_AGENT_H

#include "plexus.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const plexus_host *plexus_sdk_host;          /* set by init; same for every instance */
static __thread plexus_ctx *plexus_sdk_current;     /* the agent being called on this thread */

/* The ctx of the agent running on this thread (inside init/handle). */
static inline plexus_ctx *plexus_sdk_ctx(void) { return plexus_sdk_current; }

/* True when msg was addressed to this capability. */
static inline int plexus_is(const plexus_envelope *msg, const char *capability) {
    return msg->target && strcmp(msg->target, capability) == 0;
}

/* Answers the QUERY msg with bytes (borrowed; copied by the host). */
static inline plexus_status plexus_reply(const plexus_envelope *msg, const char *content_type,
                                         const void *data, size_t len) {
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = msg->id;
    r.content_type = content_type;
    r.payload = (const uint8_t *)data;
    r.payload_len = len;
    return plexus_sdk_host->reply(plexus_sdk_current, &r);
}

static inline plexus_status plexus_reply_json(const plexus_envelope *msg, const char *json) {
    return plexus_reply(msg, "application/json", json, strlen(json));
}

/* Answers the QUERY msg with an ERROR carrying status and a message. */
static inline plexus_status plexus_reply_error(const plexus_envelope *msg, plexus_status status,
                                               const char *message) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "{\"error\":\"%s\",\"message\":\"%s\"}",
                     plexus_status_name(status), message);
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_ERROR;
    r.status = status;
    r.correlation_id = msg->id;
    r.content_type = "application/json";
    r.payload = (const uint8_t *)buf;
    r.payload_len = (n > 0 && (size_t)n < sizeof buf) ? (size_t)n : strlen(buf);
    return plexus_sdk_host->reply(plexus_sdk_current, &r);
}

/* Sends a QUERY to a capability; the answer arrives at handle() with
** correlation_id == *out_id. */
static inline plexus_status plexus_request(const char *capability, const char *content_type,
                                           const void *data, size_t len, uint32_t timeout_ms,
                                           plexus_id *out_id) {
    plexus_envelope m = plexus_envelope_init();
    m.target_kind = PLEXUS_TARGET_CAPABILITY;
    m.target = capability;
    m.content_type = content_type;
    m.payload = (const uint8_t *)data;
    m.payload_len = len;
    return plexus_sdk_host->request(plexus_sdk_current, &m, timeout_ms, out_id);
}

/* Publishes an EVENT with a JSON payload to a subject. */
static inline plexus_status plexus_publish_json(const char *subject, const char *json) {
    plexus_envelope m = plexus_envelope_init();
    m.kind = PLEXUS_KIND_EVENT;
    m.target_kind = PLEXUS_TARGET_TOPIC;
    m.target = subject;
    m.content_type = "application/json";
    m.payload = (const uint8_t *)json;
    m.payload_len = strlen(json);
    return plexus_sdk_host->publish(plexus_sdk_current, &m);
}

static inline plexus_status plexus_subscribe(const char *pattern) {
    return plexus_sdk_host->subscribe(plexus_sdk_current, pattern);
}

/* The plugin's durable key-value namespace (plexus.h, KEY-VALUE). A host
** older than ABI 1.1 has no kv_* functions: these return UNSUPPORTED there. */
static inline int plexus_kv_available(void) {
    return plexus_sdk_host->struct_size >= PLEXUS_HOST_SIZE_1_1 && plexus_sdk_host->kv_get;
}

/* *out_value is owned (release with plexus_sdk_host->free), NUL-terminated;
** *out_version is 0 when the key is absent. */
static inline plexus_status plexus_kv_get(const char *key, uint8_t **out_value, uint64_t *out_len, uint64_t *out_version) {
    if (!plexus_kv_available()) return PLEXUS_UNSUPPORTED;
    return plexus_sdk_host->kv_get(plexus_sdk_current, key, out_value, out_len, out_version);
}

/* expected: PLEXUS_KV_ANY, 0 (create only) or the version read (compare-and-set). */
static inline plexus_status plexus_kv_put(const char *key, const void *value, size_t len, int64_t expected,
                                          uint64_t *out_version) {
    if (!plexus_kv_available()) return PLEXUS_UNSUPPORTED;
    return plexus_sdk_host->kv_put(plexus_sdk_current, key, (const uint8_t *)value, len, expected, out_version);
}

static inline plexus_status plexus_kv_delete(const char *key, int64_t expected) {
    if (!plexus_kv_available()) return PLEXUS_UNSUPPORTED;
    return plexus_sdk_host->kv_delete(plexus_sdk_current, key, expected);
}

static inline void plexus_logf(int32_t level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    plexus_sdk_host->log(plexus_sdk_current, level, buf);
}

/* Optional: #define PLEXUS_AGENT_ON_INIT(config) my_init(config) before
** including this header to run `plexus_status my_init(const char *config_json)`
** at init (the helpers work inside it, e.g. plexus_subscribe). */
#ifndef PLEXUS_AGENT_ON_INIT
#define PLEXUS_AGENT_ON_INIT(config) PLEXUS_OK
#endif

/* Optional: #define PLEXUS_AGENT_FLAGS PLEXUS_PLUGIN_CONCURRENT before including
** this header when the handler may run on several threads at once (then
** `concurrency: N` in plexus.yaml runs N handlers per instance). */
#ifndef PLEXUS_AGENT_FLAGS
#define PLEXUS_AGENT_FLAGS 0
#endif

#define PLEXUS_AGENT(name_, version_, caps_, handler_)                                     \
    static plexus_status plexus_sdk_init(const plexus_host *host, plexus_ctx *ctx,         \
                                         const char *config, void **state) {               \
        plexus_sdk_host = host;                                                            \
        plexus_sdk_current = ctx;                                                          \
        *state = ctx;                                                                      \
        (void)config;                                                                      \
        plexus_status s = PLEXUS_AGENT_ON_INIT(config);                                    \
        plexus_sdk_current = NULL;                                                         \
        return s;                                                                          \
    }                                                                                      \
    static plexus_status plexus_sdk_handle(void *state, plexus_ctx *ctx,                   \
                                           const plexus_envelope *msg) {                   \
        (void)state;                                                                       \
        plexus_ctx *saved = plexus_sdk_current;                                            \
        plexus_sdk_current = ctx;                                                          \
        plexus_status s = handler_(msg);                                                   \
        plexus_sdk_current = saved;                                                        \
        return s;                                                                          \
    }                                                                                      \
    static const plexus_plugin_descriptor plexus_sdk_descriptor = {                        \
        PLEXUS_DESCRIPTOR_HEADER, (name_), (version_), NULL, PLEXUS_AGENT_FLAGS,           \
        (uint32_t)(sizeof(caps_) / sizeof((caps_)[0])), (caps_), PLEXUS_AGENT_PERMISSION_LIST, \
        PLEXUS_AGENT_EXPORT_LIST, plexus_sdk_init, plexus_sdk_handle, NULL };              \
    PLEXUS_EXPORT const plexus_plugin_descriptor *plexus_plugin_entry(void) {              \
        return &plexus_sdk_descriptor;                                                     \
    }

/* Optional: what the agent asks to reach (plexus.yaml may grant otherwise;
** without a grant a send, request, publish or subscribe is refused with
** PERMISSION_DENIED). #define PLEXUS_AGENT_PERMISSION_LIST count, array before
** including this header, with an array of PLEXUS_PERMISSION(kind, pattern):
**   static const plexus_permission perms[] = {
**       PLEXUS_PERMISSION(PLEXUS_PERMIT_CALL, "text.stats"),
**       PLEXUS_PERMISSION(PLEXUS_PERMIT_SUBSCRIBE, "docs.>") };
**   #define PLEXUS_AGENT_PERMISSION_LIST 2, perms */
#ifndef PLEXUS_AGENT_PERMISSION_LIST
#define PLEXUS_AGENT_PERMISSION_LIST 0, NULL
#endif

/* Optional: typed exports. #define PLEXUS_AGENT_EXPORT_LIST count, array before
** including this header, e.g. `#define PLEXUS_AGENT_EXPORT_LIST 2, my_exports`. */
#ifndef PLEXUS_AGENT_EXPORT_LIST
#define PLEXUS_AGENT_EXPORT_LIST 0, NULL
#endif

#endif /* PLEXUS_AGENT_H */
