/*
** plexus.h — the Plexus agent ABI.
**
** This is the only header an agent plugin needs. A plugin is a shared library
** (.so) that exports one symbol, `plexus_plugin_entry`, which returns a
** pointer to a static descriptor. The host reads and checks that descriptor
** before it calls any other code in the plugin.
**
** CONVENTIONS USED THROUGHOUT
**
**   Ownership. Every pointer parameter and field says who owns it:
**     "borrowed"   the callee may read it only until the call returns; copy
**                  what you need to keep.
**     "static"     must stay valid for as long as the library is loaded
**                  (string literals and static data qualify).
**     "owned"      the receiver must release it, with the function named.
**
**   Versioning. PLEXUS_ABI_MAJOR changes only when an existing declaration
**   changes meaning; a host loads a plugin only when the majors are equal and
**   the plugin's minor is <= the host's minor. Every struct that may grow
**   starts with `struct_size`, set by whoever fills it in to sizeof() of the
**   struct as they compiled it. Fields are only ever appended, each marked
**   with the minor version that added it. A reader never reads past the
**   struct_size it was given. The plugin's own version (descriptor.version)
**   is independent of the ABI version.
**
**   Growth. PLEXUS_<STRUCT>_SIZE_1_0 below is each struct's size as ABI 1.0
**   laid it out (LP64, the only data model Plexus supports; _Static_assert
**   checks them). A struct_size smaller than that is refused; a larger one
**   (a newer plexus.h) is accepted and the tail the reader does not know is
**   ignored, because every field added after 1.0 has a zero value meaning
**   "as before". Where a struct had tail padding it is a named `reserved`
**   field, so the next field appended changes sizeof and struct_size tells
**   the versions apart.
**
**   Contract. Every host function answers the same status for the same
**   input whether the plugin runs in a sandboxed worker or in the host
**   process; the comment on each function lists its answers. Arguments are
**   checked in this order, and the first failure is the answer: NULL
**   pointers and struct_size (INVALID_ARGUMENT), then the fields (enums in
**   range, flags 0, names <= PLEXUS_MAX_NAME_LEN bytes of allowed characters:
**   INVALID_ARGUMENT; lengths over their limit: TOO_LARGE, checked before
**   anything is allocated), then the routing (NO_SUCH_*, PERMISSION_DENIED,
**   MAILBOX_FULL, ...).
**
**   Threads. The host calls one agent instance from one thread at a time,
**   unless the descriptor sets PLEXUS_PLUGIN_CONCURRENT. Host functions may
**   be called from any thread that the host is currently running the agent
**   on (inside init/handle/shutdown) and, for send/request/publish/reply/log,
**   the kv_* functions and spawn/stop (1.2), from threads the plugin starts
**   itself.
**
**   Errors. Every fallible call returns a plexus_status. No exception, C++
**   throw, Rust panic or Swift error may cross this boundary: SDKs catch
**   them and return PLEXUS_E_HANDLER_FAILED.
**
**   Types. Only fixed-width integers, plain structs, opaque handles and
**   function pointers appear here, so Swift, Rust and C all import it as is.
*/
#ifndef PLEXUS_H
#define PLEXUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLEXUS_ABI_MAJOR 1
#define PLEXUS_ABI_MINOR 2

/* The symbol every plugin exports. */
#define PLEXUS_ENTRY_SYMBOL "plexus_plugin_entry"

#if defined(__GNUC__)
#define PLEXUS_EXPORT __attribute__((visibility("default")))
#else
#define PLEXUS_EXPORT
#endif

/* ------------------------------------------------------------------------
** STATUS
**
** One status type for every call. PLEXUS_STATUS_LIST is the single source of
** the codes, their names and their messages (an X-macro: see
** plexus_status_name and plexus_status_message below).
*/
#define PLEXUS_STATUS_LIST(X)                                                           \
    X(OK,                 0, "ok")                                                      \
    X(INVALID_ARGUMENT,   1, "an argument was null, empty or out of range")             \
    X(NO_MEMORY,          2, "out of memory")                                           \
    X(NO_SUCH_AGENT,      3, "no agent has that name")                                  \
    X(NO_SUCH_CAPABILITY, 4, "no agent provides that capability")                       \
    X(TIMEOUT,            5, "the request's deadline passed before a reply arrived")    \
    X(EXPIRED,            6, "the message's deadline passed before it was delivered")   \
    X(TOO_LARGE,          7, "the payload or a field is larger than the limit")         \
    X(MAILBOX_FULL,       8, "the receiver's mailbox is full")                          \
    X(HANDLER_FAILED,     9, "the agent's handler returned an error")                   \
    X(PERMISSION_DENIED, 10, "the sender is not granted this target")                   \
    X(ABI_MISMATCH,      11, "the plugin was built for an incompatible ABI")            \
    X(BAD_DESCRIPTOR,    12, "the plugin's descriptor is malformed")                    \
    X(MALFORMED_FRAME,   13, "a frame failed validation")                               \
    X(UNSUPPORTED,       14, "the operation is not supported here")                     \
    X(SHUTTING_DOWN,     15, "the host or agent is shutting down")                      \
    X(AGENT_CRASHED,     16, "the agent crashed while handling the message")            \
    X(TYPE_MISMATCH,     17, "an argument has the wrong type")                          \
    X(ARITY_MISMATCH,    18, "the wrong number of arguments")                           \
    X(NOT_A_REQUEST,     19, "there is no pending request with that id")                \
    X(INTERNAL,          20, "internal host error")                                     \
    X(UNAVAILABLE,       21, "no host is reachable, or the connection to it broke")   \
    X(CONFLICT,          22, "the key is not at the version the write expected, or the name is taken") \
    X(CANCELLED,         23, "the caller cancelled the request")                       \
    X(LIMIT_REACHED,     24, "a configured limit would be exceeded")

#define PLEXUS_STATUS_ENUM_(name, code, msg) PLEXUS_##name = code,
/* Stored as int32_t (plexus_status) so its size never depends on the compiler. */
typedef enum plexus_status_code { PLEXUS_STATUS_LIST(PLEXUS_STATUS_ENUM_) } plexus_status_code;
#undef PLEXUS_STATUS_ENUM_
typedef int32_t plexus_status;

/* The symbolic name of a status ("MAILBOX_FULL"); "UNKNOWN" for a code this
** header does not define. Returns a static string; never NULL. */
static inline const char *plexus_status_name(plexus_status s) {
#define PLEXUS_STATUS_NAME_(name, code, msg) case code: return #name;
    switch (s) { PLEXUS_STATUS_LIST(PLEXUS_STATUS_NAME_) default: return "UNKNOWN"; }
#undef PLEXUS_STATUS_NAME_
}

/* A one-line English description of a status. Static string; never NULL. */
static inline const char *plexus_status_message(plexus_status s) {
#define PLEXUS_STATUS_MSG_(name, code, msg) case code: return msg;
    switch (s) { PLEXUS_STATUS_LIST(PLEXUS_STATUS_MSG_) default: return "unknown status code"; }
#undef PLEXUS_STATUS_MSG_
}

/* ------------------------------------------------------------------------
** IDENTIFIERS AND ENUMERATIONS
*/

/* A 128-bit identifier (message ids, correlation ids, trace ids). All-zero
** means "none". The host assigns message ids; they are unique across hosts. */
typedef struct plexus_id {
    uint64_t hi;
    uint64_t lo;
} plexus_id;

/* What a message is. Stored in a uint8_t field. */
typedef enum plexus_kind {
    PLEXUS_KIND_COMMAND  = 0, /* do something; no reply expected           */
    PLEXUS_KIND_QUERY    = 1, /* a request: exactly one final response or
                                 error, after any number of partial
                                 responses (PLEXUS_FLAG_MORE, 1.2)          */
    PLEXUS_KIND_RESPONSE = 2, /* the successful answer to a query           */
    PLEXUS_KIND_EVENT    = 3, /* something happened (published to a topic)  */
    PLEXUS_KIND_ERROR    = 4, /* the failed answer to a query; see status   */
    PLEXUS_KIND_CANCEL   = 5  /* (1.2) the caller cancelled the query that
                                 correlation_id names: the handler may stop
                                 work on it; a reply to it is dropped. Only
                                 the host makes these; handle() of a plugin
                                 built for 1.2 or later receives them.      */
} plexus_kind;

/* Envelope flags (added in 1.2). Every other bit is reserved and must be 0.
** PLEXUS_FLAG_MORE: on a RESPONSE only, a partial answer: more responses
**   follow for the same correlation_id, and the request stays open. The
**   last answer (RESPONSE without the flag, or ERROR) ends it. A plugin
**   sends partials with reply_partial(); its handle() sees the flag on the
**   partial answers to its own requests when it was built for 1.2 or later
**   (older plugins get only the final answer). */
#define PLEXUS_FLAG_MORE 0x1u

/* How `target` is to be read. Stored in a uint8_t field. */
typedef enum plexus_target_kind {
    PLEXUS_TARGET_AGENT      = 0, /* an agent's name                          */
    PLEXUS_TARGET_CAPABILITY = 1, /* a capability; least-loaded provider      */
    PLEXUS_TARGET_TOPIC      = 2, /* a subject like "docs.summarized"         */
    PLEXUS_TARGET_REPLY      = 3  /* the sender of correlation_id's request  */
} plexus_target_kind;

/* Mailboxes deliver higher priorities first; FIFO within one priority. */
typedef enum plexus_priority {
    PLEXUS_PRIORITY_LOW      = 0,
    PLEXUS_PRIORITY_NORMAL   = 1,
    PLEXUS_PRIORITY_HIGH     = 2,
    PLEXUS_PRIORITY_CRITICAL = 3
} plexus_priority;
#define PLEXUS_PRIORITY_COUNT 4

typedef enum plexus_log_level {
    PLEXUS_LOG_TRACE = 0, PLEXUS_LOG_DEBUG = 1, PLEXUS_LOG_INFO = 2,
    PLEXUS_LOG_WARNING = 3, PLEXUS_LOG_ERROR = 4
} plexus_log_level;

/* Limits every transport enforces. A name is an agent name, capability,
** subject or content type. */
#define PLEXUS_MAX_NAME_LEN     255u
#define PLEXUS_MAX_PAYLOAD_LEN  16777216u /* 16 MiB */
/* "The host's payload limit" below is the largest payload a host accepts
** from anyone: 4 MiB (4,194,304 bytes) unless the program embedding the host
** sets another (HostConfiguration.maxPayload), never above
** PLEXUS_MAX_PAYLOAD_LEN. A worker learns it at START. */

/* ------------------------------------------------------------------------
** THE ENVELOPE
**
** One envelope for every transport: in-process calls, worker and client IPC,
** and NATS carry the same fields, encoded once by the host's codec.
**
** An envelope handed to handle() is borrowed for that call: every pointer in
** it is valid until handle() returns. An envelope a plugin passes to send(),
** request(), reply() or publish() is borrowed by the host for that call: the
** host copies what it keeps before returning.
*/
typedef struct plexus_envelope {
    uint32_t    struct_size;    /* sizeof(plexus_envelope) as the filler compiled it */
    uint8_t     kind;           /* plexus_kind */
    uint8_t     target_kind;    /* plexus_target_kind */
    uint8_t     priority;       /* plexus_priority */
    uint8_t     flags;          /* PLEXUS_FLAG_* (1.2); 0 on everything a plugin
                                   sends: reply_partial() sets MORE itself */
    plexus_id   id;             /* set by the host; ignored on send */
    plexus_id   correlation_id; /* for RESPONSE/ERROR: the id of the QUERY answered */
    plexus_id   trace_id;       /* 0: the host continues the current trace or starts one */
    int64_t     deadline_unix_ns; /* absolute CLOCK_REALTIME deadline, 0 = none.
                                     Past it the message is never delivered. */
    const char *sender;         /* set by the host from the channel; ignored on send */
    const char *target;         /* agent name, capability or subject; NUL-terminated */
    const char *content_type;   /* e.g. "application/json"; NULL or "" = unspecified */
    const uint8_t *payload;     /* payload_len bytes; may be NULL when payload_len == 0 */
    uint64_t    payload_len;
    plexus_status status;       /* for ERROR: why; PLEXUS_OK otherwise */
    uint32_t    reserved;       /* 0. Was tail padding in 1.0, so a 1.0 plugin may
                                   leave anything here: the host ignores it. */
    /* added in 1.0 — append new fields below this line only */
} plexus_envelope;

/* ------------------------------------------------------------------------
** THE HOST FUNCTION TABLE
**
** Given to the plugin at init. Valid until the plugin's shutdown returns.
** A plugin checks host->struct_size (or abi_minor) before using a field
** added after the minor it was built against.
*/
typedef struct plexus_ctx plexus_ctx; /* opaque: one per agent instance */

typedef struct plexus_host {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* Deliver msg to msg->target without waiting for a reply (kind COMMAND or
    ** EVENT). Returns once the message is in the receiver's mailbox, or an
    ** error. msg is borrowed. Answers, in the order checked:
    **   INVALID_ARGUMENT  ctx or msg NULL; msg->struct_size below
    **                     PLEXUS_ENVELOPE_SIZE_1_0 (0 included); kind,
    **                     target_kind or priority out of range; flags != 0;
    **                     target NULL, empty, over PLEXUS_MAX_NAME_LEN bytes
    **                     or with a character outside [A-Za-z0-9_.:/@*>-];
    **                     content_type not printable ASCII or too long;
    **                     payload NULL with payload_len > 0; kind QUERY (use
    **                     request), RESPONSE or ERROR (use reply), CANCEL (use
    **                     cancel, 1.2); target_kind
    **                     REPLY; a topic with wildcards
    **   TOO_LARGE         payload_len over the host's payload limit
    **   EXPIRED           deadline_unix_ns already passed
    **   PERMISSION_DENIED the agent is not granted the target
    **   NO_SUCH_AGENT, NO_SUCH_CAPABILITY, MAILBOX_FULL, SHUTTING_DOWN,
    **   AGENT_CRASHED     (the receiver's circuit is open) */
    plexus_status (*send)(plexus_ctx *ctx, const plexus_envelope *msg);

    /* Send msg as a QUERY. Exactly one RESPONSE or ERROR envelope with
    ** correlation_id == *out_request_id later reaches this agent's handle():
    ** the reply, or an ERROR whose status says why none came (TIMEOUT,
    ** NO_SUCH_CAPABILITY, HANDLER_FAILED, EXPIRED, CANCELLED, ...). A plugin
    ** built for 1.2 or later may first receive partial RESPONSEs with
    ** PLEXUS_FLAG_MORE set (the responder's reply_partial), in order; the
    ** answer without the flag is the last. cancel() ends it early. timeout_ms == 0 uses
    ** msg->deadline_unix_ns, or the host's default when that is 0 too.
    ** If this call itself fails, no reply will ever arrive. msg is borrowed;
    ** out_request_id may be NULL. Answers as send(), except that kind is
    ** ignored (always QUERY) and a topic target is INVALID_ARGUMENT. */
    plexus_status (*request)(plexus_ctx *ctx, const plexus_envelope *msg,
                             uint32_t timeout_ms, plexus_id *out_request_id);

    /* Answer a QUERY. msg->correlation_id names the request (the id of the
    ** envelope that handle() received); msg->kind is RESPONSE, or ERROR with
    ** msg->status set (any kind other than ERROR is sent as a RESPONSE).
    ** Target fields are ignored: the host knows who asked.
    ** May be called later, from any thread, after handle() returned: a
    ** handler that returns OK without replying leaves the request open, and
    ** the caller hears TIMEOUT at its deadline unless a reply comes first.
    ** msg is borrowed. Answers, in the order checked:
    **   INVALID_ARGUMENT  ctx or msg NULL; struct_size below the 1.0 size
    **   NOT_A_REQUEST     no request with that id is pending for this agent:
    **                     already answered, or its deadline has passed (the
    **                     caller got TIMEOUT), in a worker as in the host
    **   INVALID_ARGUMENT, TOO_LARGE  the reply itself is refused (a field as
    **                     for send(), or payload_len over the limit): the
    **                     request is then over, and the caller gets an ERROR
    **                     with this same status at once, never its timeout */
    plexus_status (*reply)(plexus_ctx *ctx, const plexus_envelope *msg);

    /* Publish an EVENT to msg->target, a subject without wildcards. Every
    ** agent subscribed to a matching pattern gets its own copy. Returns OK
    ** when every subscriber accepted it (zero subscribers is OK); MAILBOX_FULL
    ** when at least one could not, in which case that copy is dead-lettered
    ** with the reason. msg is borrowed. Answers as send(); kind is ignored
    ** (always EVENT) and target_kind other than TOPIC is INVALID_ARGUMENT. */
    plexus_status (*publish)(plexus_ctx *ctx, const plexus_envelope *msg);

    /* Subscribe this agent to a subject pattern: tokens separated by '.',
    ** '*' matches exactly one token, '>' (last token only) one or more.
    ** pattern is borrowed. Subscribing twice to one pattern is a no-op.
    ** INVALID_ARGUMENT: ctx or pattern NULL, or not a valid pattern;
    ** PERMISSION_DENIED: not granted. unsubscribe answers INVALID_ARGUMENT
    ** for a pattern the agent is not subscribed to. */
    plexus_status (*subscribe)(plexus_ctx *ctx, const char *pattern);
    plexus_status (*unsubscribe)(plexus_ctx *ctx, const char *pattern);

    /* Write a line to the host's log, tagged with the agent's name.
    ** message is borrowed. A NULL ctx or message writes nothing; a level
    ** outside plexus_log_level is clamped into it. */
    void (*log)(plexus_ctx *ctx, int32_t level, const char *message);

    /* Memory that crosses the boundary: anything the host is to free is
    ** allocated with alloc; anything the host hands over as "owned" is freed
    ** with free. alloc returns NULL on failure, and for any size over
    ** PTRDIFF_MAX (alloc(UINT64_MAX) is NULL, never a crash); alloc(0)
    ** returns a unique pointer to free. free(NULL) is a no-op. */
    void *(*alloc)(uint64_t size);
    void  (*free)(void *ptr);

    /* The host's clock, CLOCK_REALTIME nanoseconds, for deadlines. */
    int64_t (*now_unix_ns)(void);

    /* This agent's name as the host registered it. Static for the agent's
    ** lifetime. NULL for a NULL ctx. */
    const char *(*agent_name)(plexus_ctx *ctx);
    /* added in 1.0 */

    /* KEY-VALUE (added in 1.1). A durable store the plugin keeps across
    ** restarts of its agents and of the host. Every instance of one plugin
    ** shares one namespace, named after the plugin (descriptor.name); no
    ** other plugin can read it (operators can: `plexus kv`). Every key has a
    ** version: 1 when created, one more on every write; 0 means absent.
    ** key: 1-512 bytes of UTF-8 without NUL, borrowed. A write returns once
    ** it is on disk (group-committed with the host's other writes).
    ** On hosts sharing the store over NATS (plexus.yaml nats.kv: jetstream)
    ** every host's instances share the namespace, a version only goes up
    ** (it is the JetStream KV revision, not a count of this key's writes),
    ** and a write returns once the NATS server has stored it.
    ** Answers, in the order checked: INVALID_ARGUMENT for ctx, key or an out
    ** pointer NULL, a key that is empty, over PLEXUS_KV_MAX_KEY bytes or not
    ** UTF-8, an expected_version other than PLEXUS_KV_ANY or >= 0, and value
    ** NULL with len > 0; TOO_LARGE for len over PLEXUS_KV_MAX_VALUE(limit)
    ** (checked before anything is allocated); then UNSUPPORTED when the host
    ** has no store; then CONFLICT. */

    /* Reads key. On OK, *out_version is its version (0: no such key, and
    ** *out_value is NULL) and *out_value (owned: release with free) holds
    ** *out_len bytes plus a NUL the length does not count. out_value,
    ** out_len and out_version must not be NULL. */
    plexus_status (*kv_get)(plexus_ctx *ctx, const char *key,
                            uint8_t **out_value, uint64_t *out_len, uint64_t *out_version);

    /* Writes value (borrowed; len may be 0) under key when the key is at
    ** expected_version: PLEXUS_KV_ANY writes whatever is there, 0 only
    ** creates, N replaces version N (compare-and-set). Otherwise returns
    ** CONFLICT and writes nothing. Any other negative expected_version is
    ** INVALID_ARGUMENT. On OK, *out_version (may be NULL) is the new
    ** version. TOO_LARGE when len exceeds PLEXUS_KV_MAX_VALUE(the host's
    ** payload limit). */
    plexus_status (*kv_put)(plexus_ctx *ctx, const char *key, const uint8_t *value, uint64_t len,
                            int64_t expected_version, uint64_t *out_version);

    /* Removes key when it is at expected_version (PLEXUS_KV_ANY: whatever
    ** is there; removing an absent key is then OK). CONFLICT otherwise;
    ** INVALID_ARGUMENT for a negative expected_version other than ANY. */
    plexus_status (*kv_delete)(plexus_ctx *ctx, const char *key, int64_t expected_version);
    /* added in 1.1 */

    /* STREAMING AND CANCELLATION (added in 1.2). */

    /* Send one partial answer to a QUERY: as reply(), but the request stays
    ** open, and the caller receives a RESPONSE with PLEXUS_FLAG_MORE set.
    ** Call it any number of times, then reply() once to end the stream (a
    ** RESPONSE, or an ERROR). Partials from one thread reach the caller in
    ** the order sent, before the final reply. The request's deadline covers
    ** the whole stream: past it the caller hears EXPIRED (TIMEOUT when no
    ** partial had come) and further partials answer NOT_A_REQUEST. A caller built before 1.2 (or a
    ** client reading single answers) never sees the partials, only the
    ** final reply. msg is borrowed; its kind, flags and target are
    ** ignored. Answers, in the order checked:
    **   INVALID_ARGUMENT  ctx or msg NULL; struct_size below the 1.0 size
    **   NOT_A_REQUEST     no request with that id is pending for this agent
    **                     (answered, cancelled, or past its deadline)
    **   INVALID_ARGUMENT, TOO_LARGE  the partial itself is refused (a field
    **                     as for send(), or payload_len over the limit): the
    **                     request stays open and nothing reaches the caller */
    plexus_status (*reply_partial)(plexus_ctx *ctx, const plexus_envelope *msg);

    /* Cancel a request this agent made with request() and that is still
    ** open. Its answer is then an ERROR with status CANCELLED, delivered to
    ** handle() like any answer (before this call returns, or just after);
    ** the handling agent receives a PLEXUS_KIND_CANCEL envelope whose
    ** correlation_id is the request's id, and any reply it still sends is
    ** dropped (dead-lettered with the reason). Answers:
    **   INVALID_ARGUMENT  ctx NULL, or request_id all zero
    **   NOT_A_REQUEST     no request of this agent's with that id is open
    **                     (answered already, timed out, cancelled) */
    plexus_status (*cancel)(plexus_ctx *ctx, plexus_id request_id);

    /* AGENTS THAT SPAWN AGENTS (added in 1.2). */

    /* Start a new agent from the loaded plugin plugin_name (its
    ** descriptor.name), with config_json as the configuration its init()
    ** receives, as a child of this agent. It runs as that plugin's sandbox
    ** mode says (a sandboxed plugin's child gets a worker of its own), with
    ** that plugin's grants (never more), providing its capabilities, and is
    ** supervised as this agent's child: `temporary` unless plexus.yaml says
    ** otherwise (plugins.SPAWNER.spawn.restart). When a child stops or dies
    ** for good, this agent's handle() receives an EVENT with target
    ** "plexus.agent.terminated" and sender "plexus", payload
    ** {"name", "reason", "exit"?, "status"?} (JSON). When this agent dies,
    ** is stopped or unloaded, its children are stopped too (linked).
    ** plugin_name, instance_name and config_json are borrowed.
    ** instance_name NULL or "" lets the host choose; the child's agent name
    ** is SPAWNER/INSTANCE (SPAWNER: this agent's name), so that no child
    ** can take a name another plugin may claim. On OK, when out_name is not
    ** NULL, the child's name (NUL-terminated) is written there;
    ** out_name_size must then be at least PLEXUS_MAX_NAME_LEN + 1. Blocks
    ** until the child's init() has returned. A plugin may spawn nothing
    ** unless plexus.yaml lists what it may spawn. Answers, in the order
    ** checked:
    **   INVALID_ARGUMENT  ctx or plugin_name NULL; plugin_name or
    **                     instance_name not a name ([A-Za-z0-9_.:@-],
    **                     1..PLEXUS_MAX_NAME_LEN bytes; no '/' in
    **                     instance_name); out_name not NULL with
    **                     out_name_size below PLEXUS_MAX_NAME_LEN + 1
    **   TOO_LARGE         config_json longer than the host's payload limit
    **                     (4 MiB by default, see PLEXUS_MAX_PAYLOAD_LEN): it
    **                     travels to a sandboxed child as one message
    **   INVALID_ARGUMENT  config_json not NULL (NULL means "{}") and not a
    **                     JSON object; the child's name over
    **                     PLEXUS_MAX_NAME_LEN bytes
    **   UNSUPPORTED       called inside this agent's first init(): it has
    **                     not joined the host yet, and a child linked to it
    **                     would outlive an init that fails; spawn from
    **                     handle() (its first message, a timer). A restarted
    **                     worker's init() may spawn.
    **   SHUTTING_DOWN     the host or this agent is stopping
    **   NO_SUCH_AGENT     no loaded plugin has that name
    **   PERMISSION_DENIED plexus.yaml does not let this agent's plugin
    **                     spawn that plugin (plugins.NAME.spawn.plugins)
    **   LIMIT_REACHED     this agent has spawn.max_children children, or
    **                     the host has its host-wide cap of spawned agents
    **   CONFLICT          an agent of that name exists
    **   the status of the child's failed start: what its init() returned,
    **   AGENT_CRASHED when its worker died starting, TIMEOUT when it did not
    **   become ready in time (nothing of the child is left then: no agent,
    **   no worker, its name free; only the event log may keep an
    **   agent.crashed entry for a worker that died starting).
    ** When an upgrade of the child's plugin commits, a sandboxed child's
    ** worker restarts onto the new version (same name, spawner, config and
    ** mailbox; what it had not finished is delivered again); this agent
    ** hears nothing of it. */
    plexus_status (*spawn)(plexus_ctx *ctx, const char *plugin_name, const char *instance_name,
                           const char *config_json, char *out_name, uint32_t out_name_size);

    /* Stop a child this agent spawned: it takes no new mail, what waits in
    ** its mailbox is answered SHUTTING_DOWN, what runs finishes within the
    ** host's shutdown grace; its own children stop with it. This agent then
    ** hears its agent.terminated EVENT. Blocks until it has stopped. name
    ** is borrowed. Answers, in the order checked:
    **   INVALID_ARGUMENT  ctx or name NULL, or name not a name
    **   NO_SUCH_AGENT     no agent has that name
    **   PERMISSION_DENIED the agent is not a child of this agent */
    plexus_status (*stop)(plexus_ctx *ctx, const char *name);
    /* added in 1.2 — append new functions below this line only */
} plexus_host;

/* expected_version for kv_put and kv_delete: no condition. */
#define PLEXUS_KV_ANY (-1)
/* The longest key, in bytes. */
#define PLEXUS_KV_MAX_KEY 512
/* The longest value for a payload limit (PLEXUS_MAX_PAYLOAD_LEN unless the
** host is configured lower): the limit less room for the longest key and
** the 13 bytes that frame a key-value call, so that a value fits a worker's
** channel exactly as it fits the host. */
#define PLEXUS_KV_MAX_VALUE(payload_limit) ((uint64_t)(payload_limit) - PLEXUS_KV_MAX_KEY - 13u)
/* sizeof(plexus_host) as ABI 1.0 compiled it: a plugin built for 1.0 states
** this in descriptor.host_size, and a host reads no further for it. */
#define PLEXUS_HOST_SIZE_1_0 96u
/* sizeof(plexus_host) as ABI 1.1 compiled it (kv_get, kv_put, kv_delete). */
#define PLEXUS_HOST_SIZE_1_1 120u
/* sizeof(plexus_host) as ABI 1.2 compiled it (reply_partial, cancel,
** spawn, stop). A plugin reads a 1.2 function only when host->struct_size
** says the host has it. */
#define PLEXUS_HOST_SIZE_1_2 152u
/* The size a draft of 1.2 stated (reply_partial and cancel, without spawn
** and stop): a plugin built with it still loads, and never calls spawn or
** stop, which lie past the table it knows. */
#define PLEXUS_HOST_SIZE_1_2_DRAFT 136u

/* ------------------------------------------------------------------------
** THE AGENT LIFECYCLE
**
** init      called once, before any handle(). config_json is the agent's
**           configuration as a JSON object (borrowed; "{}" when none). Store
**           host and ctx: they stay valid until shutdown returns. Set
**           *out_state to anything (it is passed back untouched). A non-OK
**           return refuses the agent; shutdown is then not called.
** handle    called for every message delivered to the agent, including the
**           RESPONSE/ERROR answers to its own requests. Built for 1.2 or
**           later, it also gets the partial RESPONSEs of its requests
**           (PLEXUS_FLAG_MORE) and a CANCEL for each request it is handling
**           whose caller cancelled it (its return status is then ignored).
**           msg is borrowed for the call. Returning non-OK for a QUERY that has not been replied
**           to answers the requester with HANDLER_FAILED.
** shutdown  called once, last; no handle() runs during or after it.
*/
typedef plexus_status (*plexus_init_fn)(const plexus_host *host, plexus_ctx *ctx,
                                        const char *config_json, void **out_state);
typedef plexus_status (*plexus_handle_fn)(void *state, plexus_ctx *ctx,
                                          const plexus_envelope *msg);
typedef void (*plexus_shutdown_fn)(void *state);

/* ------------------------------------------------------------------------
** THE DESCRIPTOR
*/

/* One capability the agent provides. Messages whose target is `name`
** (target_kind CAPABILITY) reach handle() with msg->target == name. */
typedef struct plexus_capability {
    uint32_t    struct_size;
    const char *name;          /* static; [A-Za-z0-9_.-], 1..255 bytes      */
    const char *description;   /* static; optional (NULL)                   */
    const char *input;         /* static; optional: what the payload holds  */
    const char *output;        /* static; optional: what the reply holds    */
    /* added in 1.0 */
} plexus_capability;

/* What the agent asks permission to reach. Patterns use the subject syntax
** ('*', '>'); the host decides whether to grant them. */
typedef enum plexus_permission_kind {
    PLEXUS_PERMIT_CALL      = 0, /* send/request to an agent or capability */
    PLEXUS_PERMIT_PUBLISH   = 1, /* publish to a subject                    */
    PLEXUS_PERMIT_SUBSCRIBE = 2  /* subscribe to a subject                  */
} plexus_permission_kind;

typedef struct plexus_permission {
    uint32_t    struct_size;
    uint32_t    kind;          /* plexus_permission_kind */
    const char *pattern;       /* static */
} plexus_permission;

/* Typed exports: plain C functions the host calls through libffi. The
** payload is a JSON array of arguments (or an object keyed by arg_names);
** the reply is {"result": value}. Types are stored as uint8_t. */
typedef enum plexus_type {
    PLEXUS_TYPE_VOID   = 0, /* return only                                         */
    PLEXUS_TYPE_BOOL   = 1, /* _Bool / uint8_t; JSON true/false                    */
    PLEXUS_TYPE_I32    = 2,
    PLEXUS_TYPE_I64    = 3,
    PLEXUS_TYPE_U32    = 4,
    PLEXUS_TYPE_U64    = 5,
    PLEXUS_TYPE_F32    = 6,
    PLEXUS_TYPE_F64    = 7,
    PLEXUS_TYPE_STRING = 8, /* const char*, NUL-terminated; borrowed for the call.
                               As a return: static, the host copies it.            */
    PLEXUS_TYPE_BUFFER = 9, /* argument only: two C parameters, (const uint8_t *data,
                               uint64_t len); JSON string (its UTF-8 bytes)        */
    PLEXUS_TYPE_STRING_OWNED = 10 /* return only: char* from malloc(); the host
                                     copies it, then calls free() on it            */
} plexus_type;

#define PLEXUS_MAX_EXPORT_ARGS 16

typedef struct plexus_export {
    uint32_t       struct_size;
    const char    *name;        /* static; the capability name it becomes */
    const char    *description; /* static; optional */
    void         (*function)(void); /* the C function, cast to this type */
    uint8_t        return_type; /* plexus_type */
    uint8_t        arg_count;   /* <= PLEXUS_MAX_EXPORT_ARGS */
    const uint8_t *arg_types;   /* static; arg_count plexus_type values */
    const char *const *arg_names; /* static; optional (NULL): arg_count names */
    /* added in 1.0 */
} plexus_export;

/* Descriptor flags. */
#define PLEXUS_PLUGIN_CONCURRENT 0x1u /* handle() may run on several threads at once */

typedef struct plexus_plugin_descriptor {
    uint32_t struct_size;        /* sizeof(plexus_plugin_descriptor) */
    uint16_t abi_major;          /* PLEXUS_ABI_MAJOR as compiled */
    uint16_t abi_minor;          /* PLEXUS_ABI_MINOR as compiled */
    uint32_t envelope_size;      /* sizeof(plexus_envelope) as compiled */
    uint32_t host_size;          /* sizeof(plexus_host) as compiled */
    const char *name;            /* static; the agent's name, unique per host */
    const char *version;         /* static; the plugin's own version, e.g. "1.2.0" */
    const char *description;     /* static; optional */
    uint32_t flags;              /* PLEXUS_PLUGIN_* */
    uint32_t capability_count;
    const plexus_capability *capabilities; /* static; capability_count entries */
    uint32_t permission_count;
    const plexus_permission *permissions;  /* static; optional */
    uint32_t export_count;
    const plexus_export *exports;          /* static; optional */
    plexus_init_fn     init;     /* required */
    plexus_handle_fn   handle;   /* required when capability_count > 0 */
    plexus_shutdown_fn shutdown; /* optional */
    /* added in 1.0 — append new fields below this line only */
} plexus_plugin_descriptor;

/* The entry symbol. It must only return a pointer to static data: the host
** calls it before any check, so it must not allocate, block, or start work.
** The descriptor and everything it points to must stay valid while the
** library is loaded. Arrays of capabilities, permissions and exports are
** walked with a stride of their first element's struct_size. */
typedef const plexus_plugin_descriptor *(*plexus_entry_fn)(void);

/* ------------------------------------------------------------------------
** DESCRIPTOR HELPERS (C)
*/
#define PLEXUS_CAPABILITY(name_, description_) \
    { sizeof(plexus_capability), (name_), (description_), NULL, NULL }
#define PLEXUS_PERMISSION(kind_, pattern_) \
    { sizeof(plexus_permission), (uint32_t)(kind_), (pattern_) }
#define PLEXUS_DESCRIPTOR_HEADER \
    sizeof(plexus_plugin_descriptor), PLEXUS_ABI_MAJOR, PLEXUS_ABI_MINOR, \
    sizeof(plexus_envelope), sizeof(plexus_host)

/* ------------------------------------------------------------------------
** SIZES AS ABI 1.0 LAID THEM OUT
**
** The smallest struct_size (and descriptor envelope_size/host_size) a host
** accepts. A struct_size above the size this header gives is accepted too:
** the reader ignores the tail it does not know (see "Growth" above).
*/
#define PLEXUS_ENVELOPE_SIZE_1_0    112u
#define PLEXUS_CAPABILITY_SIZE_1_0  40u
#define PLEXUS_PERMISSION_SIZE_1_0  16u
#define PLEXUS_EXPORT_SIZE_1_0      56u
#define PLEXUS_DESCRIPTOR_SIZE_1_0  112u

/* The layout checks: a compiler that lays these structs out differently
** (another data model, packing pragmas) fails here, not at run time. */
#if defined(__cplusplus)
#define PLEXUS_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define PLEXUS_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
PLEXUS_STATIC_ASSERT(sizeof(void *) == 8 && sizeof(uint64_t) == 8, "plexus.h: Plexus supports LP64 only");
PLEXUS_STATIC_ASSERT(sizeof(plexus_id) == 16, "plexus.h: plexus_id layout");
PLEXUS_STATIC_ASSERT(sizeof(plexus_envelope) == PLEXUS_ENVELOPE_SIZE_1_0, "plexus.h: plexus_envelope size");
PLEXUS_STATIC_ASSERT(offsetof(plexus_envelope, id) == 8 && offsetof(plexus_envelope, deadline_unix_ns) == 56 &&
                     offsetof(plexus_envelope, sender) == 64 && offsetof(plexus_envelope, payload_len) == 96 &&
                     offsetof(plexus_envelope, status) == 104 && offsetof(plexus_envelope, reserved) == 108,
                     "plexus.h: plexus_envelope field offsets");
PLEXUS_STATIC_ASSERT(offsetof(plexus_host, kv_get) == PLEXUS_HOST_SIZE_1_0, "plexus.h: plexus_host 1.0 size");
PLEXUS_STATIC_ASSERT(offsetof(plexus_host, reply_partial) == PLEXUS_HOST_SIZE_1_1, "plexus.h: plexus_host 1.1 size");
PLEXUS_STATIC_ASSERT(offsetof(plexus_host, spawn) == PLEXUS_HOST_SIZE_1_2_DRAFT, "plexus.h: plexus_host 1.2 draft size");
PLEXUS_STATIC_ASSERT(sizeof(plexus_host) == PLEXUS_HOST_SIZE_1_2, "plexus.h: plexus_host 1.2 size");
PLEXUS_STATIC_ASSERT(offsetof(plexus_host, send) == 8 && offsetof(plexus_host, agent_name) == 88,
                     "plexus.h: plexus_host field offsets");
PLEXUS_STATIC_ASSERT(sizeof(plexus_capability) == PLEXUS_CAPABILITY_SIZE_1_0, "plexus.h: plexus_capability size");
PLEXUS_STATIC_ASSERT(sizeof(plexus_permission) == PLEXUS_PERMISSION_SIZE_1_0, "plexus.h: plexus_permission size");
PLEXUS_STATIC_ASSERT(sizeof(plexus_export) == PLEXUS_EXPORT_SIZE_1_0 && offsetof(plexus_export, return_type) == 32 &&
                     offsetof(plexus_export, arg_types) == 40, "plexus.h: plexus_export layout");
PLEXUS_STATIC_ASSERT(sizeof(plexus_plugin_descriptor) == PLEXUS_DESCRIPTOR_SIZE_1_0 &&
                     offsetof(plexus_plugin_descriptor, name) == 16 && offsetof(plexus_plugin_descriptor, flags) == 40 &&
                     offsetof(plexus_plugin_descriptor, permissions) == 64 && offsetof(plexus_plugin_descriptor, exports) == 80 &&
                     offsetof(plexus_plugin_descriptor, init) == 88, "plexus.h: plexus_plugin_descriptor layout");

/* An envelope with struct_size set and everything else zero. */
static inline plexus_envelope plexus_envelope_init(void) {
    plexus_envelope e;
    unsigned char *p = (unsigned char *)&e;
    for (size_t i = 0; i < sizeof e; i++) p[i] = 0;
    e.struct_size = (uint32_t)sizeof e;
    e.priority = PLEXUS_PRIORITY_NORMAL;
    return e;
}

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_H */
