/*
** plexus_client.h — call agents in a running Plexus host from any C program.
**
** Depends on libc only. Build it into your program with the frame codec:
**     cc -I include -I Sources/CPlexusInternal/include -I SDK/c my_program.c SDK/c/plexus_client.c Sources/CPlexus/wire.c
**
** The protocol (SDK/PROTOCOL.md): every frame the client sends is
** one envelope of include/plexus_wire.h, and the host answers each with
** exactly one RESPONSE or ERROR frame whose correlation_id is the id the
** client gave its frame. The host takes the client's identity from the
** connection (its pid), never from the frame.
**
** Messages for the client — events of its subscriptions, commands and
** queries for agents it registered — are frames of kind EVENT, COMMAND or
** QUERY. Those that arrive while a call waits are kept, in order, for
** plexus_client_receive. A query is answered with plexus_client_reply.
** SDK/PROTOCOL.md describes the whole protocol.
**
** Pipelining: plexus_client_submit sends a query without waiting, so one
** connection can keep many (thousands) in flight; plexus_client_wait takes
** the answer to one of them by its id, plexus_client_wait_any whichever
** came first. Answers that arrive for other requests meanwhile are kept
** for their own wait, so the order of waits never has to match the order
** in which agents answer. plexus_client_call is submit + wait.
**
** Threads: a plexus_client is used by one thread at a time (calls are
** synchronous). Use one client per thread, or a lock around each call.
**
** Ownership: every pointer given to a function is borrowed for that call.
** A plexus_answer returned by plexus_client_call belongs to the caller and
** is freed with plexus_answer_free; a plexus_delivery from
** plexus_client_receive is freed with plexus_delivery_free. Their pointers
** live as long as they do.
*/
#ifndef PLEXUS_CLIENT_H
#define PLEXUS_CLIENT_H

#include "plexus.h"
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plexus_client plexus_client;   /* opaque: one connection */

/* What a call came back with. status is PLEXUS_OK for a RESPONSE; for an
** ERROR it is the reason, and payload is {"error":NAME,"message":TEXT}. */
typedef struct plexus_answer {
    plexus_status status;
    const char *content_type;   /* "" when unspecified */
    const uint8_t *payload;     /* payload_len bytes, followed by a NUL */
    uint64_t payload_len;
    const char *sender;         /* the agent that answered, or "plexus" */
} plexus_answer;

/* The socket a host listens on by default: $PLEXUS_SOCKET, else
** $XDG_RUNTIME_DIR/plexus.sock, else /tmp/plexus-UID/plexus.sock. Writes it into
** buf (cap bytes); returns buf, or NULL when it does not fit. */
const char *plexus_client_default_socket(char *buf, size_t cap);

/* Connects to the host at socket_path (NULL: the default). On success
** *out is a new client (close it with plexus_client_close). On failure
** returns UNAVAILABLE or INVALID_ARGUMENT and, when err is not NULL,
** writes a sentence naming the path and the reason into err (err_cap bytes). */
plexus_status plexus_client_connect(const char *socket_path, plexus_client **out,
                                    char *err, size_t err_cap);

void plexus_client_close(plexus_client *c);

/* Says hello as `client`, a client named in the host's plexus.yaml, with its
** token (NULL when that client is admitted by uid alone): its grants then
** decide what this connection may do. Must be the connection's first
** request. PERMISSION_DENIED for an unknown client, a wrong uid or token
** (the host then closes the connection); plexus_client_last_error says which. */
plexus_status plexus_client_hello(plexus_client *c, const char *client, const char *token);

/* plexus_client_connect, then plexus_client_hello when client is neither
** NULL nor empty (the examples pass $PLEXUS_CLIENT and $PLEXUS_TOKEN). A
** refused hello closes the client, sets *out to NULL, and writes the
** host's reason ("PERMISSION_DENIED: ...") into err. */
plexus_status plexus_client_connect_as(const char *socket_path, const char *client, const char *token,
                                       plexus_client **out, char *err, size_t err_cap);

/* Sends a QUERY to target and waits for the answer up to timeout_ms (0: 30 s;
** the host gets the same deadline). target_kind is CAPABILITY, AGENT or TOPIC.
** Returns PLEXUS_OK with *out set when an answer came (check (*out)->status:
** an agent's ERROR is an answer too); TIMEOUT when none came in time;
** UNAVAILABLE when the connection broke (the client is then unusable). */
plexus_status plexus_client_call(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                 const char *content_type, const void *payload, size_t len,
                                 uint32_t timeout_ms, plexus_answer **out);

/* Sends a COMMAND to a capability or agent (kind COMMAND) or an EVENT to a
** subject (target_kind TOPIC), and waits for the host to accept it. Returns
** PLEXUS_OK once accepted, or the reason it was refused (NO_SUCH_CAPABILITY,
** MAILBOX_FULL, TOO_LARGE...). *out_id, when not NULL, gets the host's id. */
plexus_status plexus_client_send(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                 const char *content_type, const void *payload, size_t len,
                                 plexus_id *out_id);

/* The text of the last refusal or error this client saw (never NULL); for
** an ERROR answer, its message (the "message" of its JSON body). */
const char *plexus_client_last_error(const plexus_client *c);

void plexus_answer_free(plexus_answer *a);

/* ---- pipelining: many requests in flight on one connection --------------- */

/* Sends a QUERY like plexus_client_call but does not wait: *out_id (when not
** NULL) is its id, for plexus_client_wait. Frames are written in batches:
** each wait, receive or plexus_client_flush writes what was submitted, and
** so does a submit once 64 KiB wait. Returns INVALID_ARGUMENT or TOO_LARGE
** for an envelope the host would refuse (nothing is sent), UNAVAILABLE when
** the connection broke, or the host's status when it refused the connection. */
plexus_status plexus_client_submit(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                   const char *content_type, const void *payload, size_t len,
                                   uint32_t timeout_ms, plexus_id *out_id);

/* Writes every submitted frame now. */
plexus_status plexus_client_flush(plexus_client *c);

/* The answer to the submitted query id, waiting up to timeout_ms (0: only
** what already arrived). PLEXUS_OK with *out set (free it with
** plexus_answer_free; check (*out)->status). TIMEOUT: not yet, and the
** request stays in flight, to be waited for again (the host answers it
** with TIMEOUT at the latest at its deadline). INVALID_ARGUMENT when id is
** not in flight (never submitted, or its answer was already taken).
** Messages for the client read meanwhile are kept for plexus_client_receive. */
plexus_status plexus_client_wait(plexus_client *c, plexus_id id, uint32_t timeout_ms, plexus_answer **out);

/* As plexus_client_wait, for whichever request in flight is answered first
** (answers already read come oldest first); *out_id (when not NULL) says
** which. INVALID_ARGUMENT when nothing is in flight. */
plexus_status plexus_client_wait_any(plexus_client *c, uint32_t timeout_ms, plexus_id *out_id, plexus_answer **out);

/* How many submitted queries have not been handed back by a wait. */
size_t plexus_client_in_flight(const plexus_client *c);

/* ---- subscribing and serving as an agent -------------------------------- */

/* A message for this client. kind is EVENT (target is the subject), COMMAND
** or QUERY (target is the agent name or capability it was sent to). */
typedef struct plexus_delivery {
    plexus_kind kind;
    plexus_id id;               /* a QUERY's id: what plexus_client_reply answers */
    const char *target;
    const char *sender;
    const char *content_type;
    const uint8_t *payload;     /* payload_len bytes, followed by a NUL */
    uint64_t payload_len;
    plexus_id correlation_id;   /* kind CANCEL (ABI 1.2): the id of the QUERY its caller
                                   cancelled; a reply to it is now dropped */
} plexus_delivery;

/* Events whose subject matches pattern ("*" one token, ">" the rest) are
** delivered to this client from now on. INVALID_ARGUMENT for a bad pattern. */
plexus_status plexus_client_subscribe(plexus_client *c, const char *pattern);
plexus_status plexus_client_unsubscribe(plexus_client *c, const char *pattern);

/* Joins the host as agent `name` providing the n capabilities in caps; what
** it is sent is delivered to this client until it unregisters or the
** connection closes. INVALID_ARGUMENT when the name is taken or malformed
** (plexus_client_last_error says which). */
plexus_status plexus_client_register(plexus_client *c, const char *name, const char *const *caps, size_t n);
plexus_status plexus_client_unregister(plexus_client *c, const char *name);

/* The next message for this client, waiting up to timeout_ms (0: do not
** wait). PLEXUS_OK with *out set; TIMEOUT when none came; UNAVAILABLE when
** the connection broke. */
plexus_status plexus_client_receive(plexus_client *c, uint32_t timeout_ms, plexus_delivery **out);

/* Callback form: receives one message (waiting up to timeout_ms) and hands
** it to fn, then frees it. Returns what plexus_client_receive returned. */
typedef void (*plexus_client_handler)(plexus_client *c, const plexus_delivery *d, void *user);
plexus_status plexus_client_dispatch(plexus_client *c, uint32_t timeout_ms, plexus_client_handler fn, void *user);

/* Answers the QUERY d with a RESPONSE (status PLEXUS_OK) or an ERROR (any
** other status; payload should then be {"error":NAME,"message":TEXT}). The
** host does not acknowledge replies; one that matches no waiting request
** (already timed out) is dropped by the host with an ERROR this client skips. */
plexus_status plexus_client_reply(plexus_client *c, const plexus_delivery *d, plexus_status status,
                                  const char *content_type, const void *payload, size_t len);

void plexus_delivery_free(plexus_delivery *d);

/* ---- streaming replies and cancellation (ABI 1.2) ------------------------ */

/* Called for each partial answer of a stream, in order, as it is read
** (inside the call or wait that reads it). partial is borrowed for the
** call; its status is PLEXUS_OK. It may call plexus_client_cancel. */
typedef void (*plexus_client_partial_fn)(plexus_client *c, const plexus_answer *partial, void *user);

/* As plexus_client_call, for an answer that may come as a stream: each
** partial answer goes to on_partial, then *out is the final one (RESPONSE,
** or an ERROR: EXPIRED when the deadline passes mid-stream, CANCELLED
** after a cancel). Without a callback, partials are dropped. */
plexus_status plexus_client_call_stream(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                        const char *content_type, const void *payload, size_t len,
                                        uint32_t timeout_ms, plexus_client_partial_fn on_partial, void *user,
                                        plexus_answer **out);

/* As plexus_client_submit, with on_partial for its partial answers; wait
** for the final answer with plexus_client_wait. */
plexus_status plexus_client_submit_stream(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                          const char *content_type, const void *payload, size_t len,
                                          uint32_t timeout_ms, plexus_client_partial_fn on_partial, void *user,
                                          plexus_id *out_id);

/* Cancels the request id still in flight on this client: its final answer
** becomes an ERROR with status PLEXUS_CANCELLED, and the agent handling it
** receives a CANCEL delivery. INVALID_ARGUMENT for an id not in flight. */
plexus_status plexus_client_cancel(plexus_client *c, plexus_id id);

/* As an agent: sends one partial answer to the QUERY d; the request stays
** open for more, and for plexus_client_reply's final answer. A CANCEL
** delivery (kind PLEXUS_KIND_CANCEL, d->correlation_id naming the query)
** says its caller gave up: stop, and send nothing more for it. */
plexus_status plexus_client_reply_partial(plexus_client *c, const plexus_delivery *d,
                                          const char *content_type, const void *payload, size_t len);

/* ---- tracing (added with issue 15) -------------------------------------- */

/* Joins a W3C trace: every later call, submit and send of this client
** carries traceparent's trace id, and its queries its parent id, so the
** host records them as part of that trace (`plexus trace ID`).
** traceparent is "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>";
** NULL or "" stops (the host then starts a trace per request).
** INVALID_ARGUMENT when it is malformed (plexus_client_last_error says how;
** the previous one stays). */
plexus_status plexus_client_set_traceparent(plexus_client *c, const char *traceparent);

/* The trace id an answer carries: the one its request joined, or the one
** the host started for it (all zero for an answer made by the host alone,
** such as a TIMEOUT, when the request joined no trace). */
plexus_id plexus_answer_trace_id(const plexus_answer *a);

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_CLIENT_H */
