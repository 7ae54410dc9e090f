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
**
** A plugin of several .c files includes this header in each of them and
** expands PLEXUS_AGENT(...) in exactly one: that file defines the two globals
** below, which every file shares (hidden: never visible outside the .so).
*/
#ifndef PLEXUS_AGENT_H
#define PLEXUS_AGENT_H

#include "plexus.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define PLEXUS_SDK_HIDDEN __attribute__((visibility("hidden")))
#else
#define PLEXUS_SDK_HIDDEN
#endif
#ifdef __cplusplus
#define PLEXUS_SDK_THREAD_LOCAL thread_local
#else
#define PLEXUS_SDK_THREAD_LOCAL _Thread_local
#endif

/* Declared here, defined once by PLEXUS_AGENT(...): a static would give each
** .c file a copy of its own, and only the file with PLEXUS_AGENT would see it set. */
extern PLEXUS_SDK_HIDDEN const plexus_host *plexus_sdk_host;           /* set by init; same for every instance */
extern PLEXUS_SDK_HIDDEN PLEXUS_SDK_THREAD_LOCAL plexus_ctx *plexus_sdk_current; /* the agent being called on this thread */

/* The ctx of the agent running on this thread (inside init/handle). */
static inline plexus_ctx *plexus_sdk_ctx(void) { return plexus_sdk_current; }

/* True when msg was addressed to this capability. */
static inline int plexus_is(const plexus_envelope *msg, const char *capability) {
    return msg->target && strcmp(msg->target, capability) == 0;
}

/* The answer to the QUERY msg: a RESPONSE carrying bytes (borrowed), for
** reply(), reply_partial() or, with kind and status changed, an ERROR. */
static inline plexus_envelope plexus_sdk_answer(const plexus_envelope *msg, const char *content_type,
                                                const void *data, size_t len) {
    plexus_envelope r = plexus_envelope_init();
    r.kind = PLEXUS_KIND_RESPONSE;
    r.correlation_id = msg->id;
    r.content_type = content_type;
    r.payload = (const uint8_t *)data;
    r.payload_len = len;
    return r;
}

/* Answers the QUERY msg with bytes (borrowed; copied by the host). */
static inline plexus_status plexus_reply(const plexus_envelope *msg, const char *content_type,
                                         const void *data, size_t len) {
    plexus_envelope r = plexus_sdk_answer(msg, content_type, data, len);
    return plexus_sdk_host->reply(plexus_sdk_current, &r);
}

static inline plexus_status plexus_reply_json(const plexus_envelope *msg, const char *json) {
    return plexus_reply(msg, "application/json", json, strlen(json));
}

/* Writes s as the body of a JSON string (no quotes, no NUL) into out, which has room
** for cap bytes, and returns the length it needs (snprintf's contract: call
** with cap 0 to size a buffer). Quotes, backslashes and control characters
** are escaped; bytes that are not UTF-8 become U+FFFD, so the result is
** valid JSON whatever s holds. NULL is the empty string. */
static inline size_t plexus_json_escape(char *out, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = 0;
#define PLEXUS_SDK_PUT(c_) do { if (n < cap) out[n] = (char)(c_); n++; } while (0)
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') { PLEXUS_SDK_PUT('\\'); PLEXUS_SDK_PUT(c); p++; continue; }
        if (c < 0x20) {
            PLEXUS_SDK_PUT('\\');
            switch (c) {
            case '\n': PLEXUS_SDK_PUT('n'); break;
            case '\r': PLEXUS_SDK_PUT('r'); break;
            case '\t': PLEXUS_SDK_PUT('t'); break;
            case '\b': PLEXUS_SDK_PUT('b'); break;
            case '\f': PLEXUS_SDK_PUT('f'); break;
            default:
                PLEXUS_SDK_PUT('u'); PLEXUS_SDK_PUT('0'); PLEXUS_SDK_PUT('0');
                PLEXUS_SDK_PUT(hex[c >> 4]); PLEXUS_SDK_PUT(hex[c & 15]);
            }
            p++;
            continue;
        }
        if (c < 0x80) { PLEXUS_SDK_PUT(c); p++; continue; }
        /* A UTF-8 sequence: its length and the range of its second byte
        ** (which rules out overlong forms, surrogates and > U+10FFFF). */
        size_t len = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        int ok = len > 0 && p[1] >= lo && p[1] <= hi;
        for (size_t i = 2; ok && i < len; i++) ok = p[i] >= 0x80 && p[i] <= 0xBF;
        if (!ok) {
            PLEXUS_SDK_PUT('\\'); PLEXUS_SDK_PUT('u');
            PLEXUS_SDK_PUT('f'); PLEXUS_SDK_PUT('f'); PLEXUS_SDK_PUT('f'); PLEXUS_SDK_PUT('d');
            p++;
            continue;
        }
        for (size_t i = 0; i < len; i++) PLEXUS_SDK_PUT(p[i]);
        p += len;
    }
#undef PLEXUS_SDK_PUT
    return n;
}

/* Answers the QUERY msg with an ERROR carrying status and a message; the
** payload is {"error":"STATUS_NAME","message":"..."}, the message escaped
** (plexus_json_escape) and never cut. PLEXUS_NO_MEMORY when it cannot be built. */
static inline plexus_status plexus_reply_error(const plexus_envelope *msg, plexus_status status,
                                               const char *message) {
    static const char head[] = "{\"error\":\"", middle[] = "\",\"message\":\"", tail[] = "\"}";
    const char *name = plexus_status_name(status);
    size_t name_len = strlen(name), text_len = plexus_json_escape(NULL, 0, message);
    size_t len = (sizeof head - 1) + name_len + (sizeof middle - 1) + text_len + (sizeof tail - 1);
    char *buf = (char *)malloc(len + 1);
    if (!buf) return PLEXUS_NO_MEMORY;
    char *w = buf;
    memcpy(w, head, sizeof head - 1); w += sizeof head - 1;
    memcpy(w, name, name_len); w += name_len;
    memcpy(w, middle, sizeof middle - 1); w += sizeof middle - 1;
    w += plexus_json_escape(w, text_len, message);
    memcpy(w, tail, sizeof tail);   /* with its NUL */
    plexus_envelope r = plexus_sdk_answer(msg, "application/json", buf, len);
    r.kind = PLEXUS_KIND_ERROR;
    r.status = status;
    plexus_status s = plexus_sdk_host->reply(plexus_sdk_current, &r);
    free(buf);
    return s;
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

/* Streaming and cancellation (plexus.h, ABI 1.2). A host older than 1.2
** has neither: these return UNSUPPORTED there. */
static inline int plexus_streams_available(void) {
    return plexus_sdk_host->struct_size >= PLEXUS_HOST_SIZE_1_2 && plexus_sdk_host->reply_partial;
}

/* Sends one partial answer to the QUERY msg (the request stays open; end
** it with plexus_reply). NOT_A_REQUEST once the caller cancelled it or its
** deadline passed: a streaming loop stops there. */
static inline plexus_status plexus_reply_partial(const plexus_envelope *msg, const char *content_type,
                                                 const void *data, size_t len) {
    if (!plexus_streams_available()) return PLEXUS_UNSUPPORTED;
    plexus_envelope r = plexus_sdk_answer(msg, content_type, data, len);
    return plexus_sdk_host->reply_partial(plexus_sdk_current, &r);
}

/* True for a partial answer (more follow) to one of this agent's requests. */
static inline int plexus_is_partial(const plexus_envelope *msg) {
    return msg->kind == PLEXUS_KIND_RESPONSE && (msg->flags & PLEXUS_FLAG_MORE);
}

/* Cancels a request this agent made (plexus_request's *out_id). */
static inline plexus_status plexus_cancel(plexus_id request_id) {
    if (!plexus_streams_available()) return PLEXUS_UNSUPPORTED;
    return plexus_sdk_host->cancel(plexus_sdk_current, request_id);
}

/* Agents that spawn agents (plexus.h spawn/stop, ABI 1.2). A host older
** than that, or a plugin built with an older plexus.h, has neither: these
** return UNSUPPORTED there. plexus.yaml must let the plugin spawn
** (plugins.NAME.spawn: { plugins: [helper] }), else PERMISSION_DENIED. */
static inline int plexus_spawn_available(void) {
    return plexus_sdk_host->struct_size >= PLEXUS_HOST_SIZE_1_2 && plexus_sdk_host->spawn;
}

/* Starts a child of this agent from the loaded plugin `plugin` with
** config_json (NULL: "{}") as its init's config. instance: NULL lets the
** host name it; the child is named THIS_AGENT/INSTANCE. out_name (NULL, or
** room for PLEXUS_MAX_NAME_LEN + 1 bytes) receives its name. Blocks until
** the child's init returned. */
static inline plexus_status plexus_spawn(const char *plugin, const char *instance, const char *config_json,
                                         char *out_name) {
    if (!plexus_spawn_available()) return PLEXUS_UNSUPPORTED;
    return plexus_sdk_host->spawn(plexus_sdk_current, plugin, instance, config_json,
                                  out_name, out_name ? PLEXUS_MAX_NAME_LEN + 1 : 0);
}

/* Stops a child this agent spawned (PERMISSION_DENIED for any other agent). */
static inline plexus_status plexus_stop_child(const char *name) {
    if (!plexus_spawn_available()) return PLEXUS_UNSUPPORTED;
    return plexus_sdk_host->stop(plexus_sdk_current, name);
}

/* True for the host's news that a child of this agent ended: an EVENT to
** "plexus.agent.terminated" from "plexus", its payload
** {"name":..., "reason":..., "exit":...} as JSON. */
static inline int plexus_is_child_terminated(const plexus_envelope *msg) {
    return msg->kind == PLEXUS_KIND_EVENT && msg->target && msg->sender &&
           strcmp(msg->target, "plexus.agent.terminated") == 0 && strcmp(msg->sender, "plexus") == 0;
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
    PLEXUS_SDK_HIDDEN const plexus_host *plexus_sdk_host;                                  \
    PLEXUS_SDK_HIDDEN PLEXUS_SDK_THREAD_LOCAL plexus_ctx *plexus_sdk_current;              \
    static plexus_status plexus_sdk_init(const plexus_host *host, plexus_ctx *ctx,         \
                                         const char *config, void **state) {               \
        /* saved: a child spawned in process runs its init inside its spawner's handler */  \
        plexus_ctx *saved = plexus_sdk_current;                                            \
        plexus_sdk_host = host;                                                            \
        plexus_sdk_current = ctx;                                                          \
        *state = ctx;                                                                      \
        (void)config;                                                                      \
        plexus_status s = PLEXUS_AGENT_ON_INIT(config);                                    \
        plexus_sdk_current = saved;                                                        \
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
