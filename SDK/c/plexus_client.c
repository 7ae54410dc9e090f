/* plexus_client.c — see plexus_client.h. libc and the frame codec only. */
#define _GNU_SOURCE
#include "plexus_client.h"
#include "plexus_wire.h"
#include "plexus_wire_internal.h"   /* private, compiled in: encode_valid for frames built here */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 30000u
/* What the client accepts from the host: the ABI's payload limit. */
#define MAX_PAYLOAD PLEXUS_MAX_PAYLOAD_LEN

/* A received frame kept for plexus_client_receive, and the delivery view of
** it, in one allocation (the delivery comes first so it can be freed). */
typedef struct delivery_box {
    plexus_delivery delivery;
    struct delivery_box *next;
    uint8_t frame[];
} delivery_box;

/* An answer and the frame its pointers point into, in one allocation. */
typedef struct answer_box {
    plexus_answer answer;            /* first: a plexus_answer * is its box */
    plexus_id trace;                 /* the answer's trace id (plexus_answer_trace_id) */
    uint8_t frame[];
} answer_box;

/* A request sent and not yet handed back: found by its id in a chained hash
** table; once its answer arrived it is also on the ready list (oldest
** first), which plexus_client_wait_any takes from. */
typedef struct waiter {
    plexus_id id;
    answer_box *box;                 /* NULL until the answer arrives */
    plexus_client_partial_fn on_partial;  /* a stream's partial answers (NULL: dropped) */
    void *partial_user;
    struct waiter *next;             /* hash chain */
    struct waiter *ready_prev, *ready_next;
} waiter;

#define WAIT_BUCKETS 4096u           /* a power of two; ids count up, so lo spreads them */
#define OUT_FLUSH_AT (64u * 1024u)   /* submitted frames are written once this many bytes wait */
#define IN_CHUNK (64u * 1024u)       /* bytes asked of each read */

struct plexus_client {
    int fd;
    uint64_t next_id;
    delivery_box *head, *tail;       /* messages read while a call waited */
    waiter *table[WAIT_BUCKETS];
    waiter *ready_head, *ready_tail;
    size_t in_flight;
    uint8_t *out;                    /* frames submitted and not yet written */
    size_t out_len, out_cap;
    uint8_t *in;                     /* bytes read and not yet taken as frames */
    size_t in_start, in_end, in_cap;
    plexus_status refused;           /* the host refused the connection: why (0: it did not) */
    char refusal[512];
    int broken;                      /* the connection broke; error says how */
    char error[512];
    plexus_id trace;                 /* the traceparent joined (0: none) */
    uint64_t parent_span;
};

const char *plexus_client_default_socket(char *buf, size_t cap) {
    const char *s = getenv("PLEXUS_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (s && *s) n = snprintf(buf, cap, "%s", s);
    else if (xdg && *xdg) n = snprintf(buf, cap, "%s/plexus.sock", xdg);
    else n = snprintf(buf, cap, "/tmp/plexus-%u/plexus.sock", (unsigned)getuid());
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

static void say(char *err, size_t cap, const char *fmt, const char *a, const char *b) {
    if (err && cap) snprintf(err, cap, fmt, a, b);
}

plexus_status plexus_client_connect(const char *socket_path, plexus_client **out, char *err, size_t err_cap) {
    char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (!out) return PLEXUS_INVALID_ARGUMENT;
    *out = NULL;
    const char *path = socket_path ? socket_path : plexus_client_default_socket(def, sizeof def);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (!path || strlen(path) >= sizeof addr.sun_path) {
        say(err, err_cap, "the socket path %s%s is longer than 107 bytes", path ? path : "(default)", "");
        return PLEXUS_INVALID_ARGUMENT;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { say(err, err_cap, "socket: %s%s", strerror(errno), ""); return PLEXUS_UNAVAILABLE; }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        say(err, err_cap, "no Plexus host answers at %s (%s); start one with `plexus run`", path, strerror(e));
        return PLEXUS_UNAVAILABLE;
    }
    plexus_client *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return PLEXUS_NO_MEMORY; }
    c->fd = fd;
    c->next_id = 1;
    *out = c;
    return PLEXUS_OK;
}

void plexus_client_close(plexus_client *c) {
    if (!c) return;
    close(c->fd);
    while (c->head) { delivery_box *n = c->head->next; free(c->head); c->head = n; }
    for (size_t b = 0; b < WAIT_BUCKETS; b++)
        for (waiter *w = c->table[b], *n; w; w = n) { n = w->next; free(w->box); free(w); }
    free(c->out);
    free(c->in);
    free(c);
}

const char *plexus_client_last_error(const plexus_client *c) { return c ? c->error : "no client"; }

void plexus_answer_free(plexus_answer *a) { free(a); }   /* the box starts with the answer */

size_t plexus_client_in_flight(const plexus_client *c) { return c ? c->in_flight : 0; }

static int64_t now_ns(int clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static plexus_status broken(plexus_client *c, const char *what) {
    if (!c->broken) snprintf(c->error, sizeof c->error, "the connection to the host broke: %s", what);
    c->broken = 1;
    return PLEXUS_UNAVAILABLE;
}

/* What a client that can no longer be used says, or OK. */
static plexus_status unusable(plexus_client *c) {
    if (c->refused) { snprintf(c->error, sizeof c->error, "%s", c->refusal); return c->refused; }
    if (c->broken) return PLEXUS_UNAVAILABLE;
    return PLEXUS_OK;
}

static int same_id(plexus_id a, plexus_id b) { return a.hi == b.hi && a.lo == b.lo; }

static waiter **slot_of(plexus_client *c, plexus_id id) {
    waiter **p = &c->table[(id.lo ^ id.hi) & (WAIT_BUCKETS - 1)];
    while (*p && !same_id((*p)->id, id)) p = &(*p)->next;
    return p;
}

/* Unlinks w from the table (and the ready list) and frees it; returns its answer box. */
static answer_box *take_waiter(plexus_client *c, waiter **p) {
    waiter *w = *p;
    *p = w->next;
    if (w->box) {
        if (w->ready_prev) w->ready_prev->ready_next = w->ready_next; else c->ready_head = w->ready_next;
        if (w->ready_next) w->ready_next->ready_prev = w->ready_prev; else c->ready_tail = w->ready_prev;
    }
    answer_box *box = w->box;
    free(w);
    c->in_flight--;
    return box;
}

static plexus_status room(plexus_client *c, size_t need);

/* Moves every byte the host has sent so far into the input buffer, unread
** (frames are parsed later, in order, by read_frame). */
static plexus_status absorb(plexus_client *c) {
    for (;;) {
        plexus_status s = room(c, 0);
        if (s != PLEXUS_OK) return s;
        ssize_t got = recv(c->fd, c->in + c->in_end, c->in_cap - c->in_end, MSG_DONTWAIT);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return PLEXUS_OK;
        if (got == 0) return broken(c, "the host closed it");
        if (got < 0) return broken(c, strerror(errno));
        c->in_end += (size_t)got;
    }
}

/* Writes every submitted frame. While the socket is full it also takes in
** what the host sends: the host stops reading a connection whose answers
** wait to be written (more than 4,096, SDK/PROTOCOL.md), so a client that
** only wrote while thousands of requests are in flight would wait for the
** host while the host waits for it. */
static plexus_status flush_out(plexus_client *c) {
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t w = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) { done += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { c->fd, POLLOUT | POLLIN, 0 };
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR) { c->out_len = 0; return broken(c, strerror(errno)); }
            if (pfd.revents & POLLIN) {
                plexus_status s = absorb(c);
                if (s != PLEXUS_OK) { c->out_len = 0; return s; }
            }
            continue;
        }
        c->out_len = 0;
        return broken(c, w == 0 ? "the host stopped reading" : strerror(errno));
    }
    c->out_len = 0;
    return PLEXUS_OK;
}

plexus_status plexus_client_flush(plexus_client *c) {
    if (!c) return PLEXUS_INVALID_ARGUMENT;
    plexus_status s = unusable(c);
    return s != PLEXUS_OK ? s : flush_out(c);
}

/* Encodes e (with a fresh id) after the frames waiting to be written. */
static plexus_status queue_frame(plexus_client *c, plexus_envelope *e) {
    e->id = (plexus_id){ 0, c->next_id++ };
    const char *what = NULL;
    plexus_status s = plexus_wire_validate(e, MAX_PAYLOAD, &what);
    if (s != PLEXUS_OK) {
        snprintf(c->error, sizeof c->error, "%s", what ? what : "invalid envelope");
        return s;
    }
    uint64_t size = plexus_wire_frame_size(e);
    if (c->out_len + size > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + size) cap *= 2;
        uint8_t *grown = realloc(c->out, cap);
        if (!grown) return PLEXUS_NO_MEMORY;
        c->out = grown;
        c->out_cap = cap;
    }
    plexus_wire_encode_valid(e, c->out + c->out_len);
    c->out_len += size;
    return PLEXUS_OK;
}

/* Makes room in the input buffer for at least `need` unread bytes and a
** read of IN_CHUNK more after what it holds. */
static plexus_status room(plexus_client *c, size_t need) {
    size_t have = c->in_end - c->in_start;
    if (c->in_start > 0 && (have == 0 || c->in_cap - c->in_end < IN_CHUNK)) {
        memmove(c->in, c->in + c->in_start, have);
        c->in_start = 0;
        c->in_end = have;
    }
    size_t want = need > have + IN_CHUNK ? need : have + IN_CHUNK;
    if (c->in_cap < want) {
        uint8_t *grown = realloc(c->in, want);
        if (!grown) return PLEXUS_NO_MEMORY;
        c->in = grown;
        c->in_cap = want;
    }
    return PLEXUS_OK;
}

/* Reads more bytes into the input buffer, keeping room for at least `need`
** unread bytes, by the monotonic deadline (0: none). */
static plexus_status fill(plexus_client *c, size_t need, int64_t deadline) {
    plexus_status s = room(c, need);
    if (s != PLEXUS_OK) return s;
    for (;;) {
        int wait_ms = -1;
        if (deadline) {
            int64_t left = deadline - now_ns(CLOCK_MONOTONIC);
            if (left <= 0) return PLEXUS_TIMEOUT;
            wait_ms = (int)(left / 1000000) + 1;
        }
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        int r = poll(&pfd, 1, wait_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return broken(c, strerror(errno));
        if (r == 0) continue;   /* the deadline check above ends it */
        ssize_t got = recv(c->fd, c->in + c->in_end, c->in_cap - c->in_end, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got == 0) return broken(c, "the host closed it");
        if (got < 0) return broken(c, strerror(errno));
        c->in_end += (size_t)got;
        return PLEXUS_OK;
    }
}

/* Reads one frame and checks it entirely; on success *out owns it. */
static plexus_status read_frame(plexus_client *c, int64_t deadline, answer_box **out, plexus_envelope *env) {
    plexus_status s = unusable(c);
    if (s != PLEXUS_OK) return s;
    while (c->in_end - c->in_start < PLEXUS_WIRE_HEADER_LEN)
        if ((s = fill(c, PLEXUS_WIRE_HEADER_LEN, deadline)) != PLEXUS_OK) return s;
    uint8_t type;
    uint32_t body;
    const char *what = NULL;
    if (plexus_wire_decode_header(c->in + c->in_start, PLEXUS_WIRE_HEADER_LEN, plexus_wire_max_body(MAX_PAYLOAD),
                                  &type, &body, &what) != PLEXUS_OK)
        return broken(c, what ? what : "a malformed frame header");
    uint64_t len = PLEXUS_WIRE_HEADER_LEN + (uint64_t)body;
    /* Once a header is read the rest follows at once; a timeout mid-frame
    ** would leave the stream out of step, so the rest has no deadline. */
    while (c->in_end - c->in_start < len)
        if ((s = fill(c, (size_t)len, 0)) != PLEXUS_OK) return s;
    answer_box *box = malloc(sizeof *box + len + 1);
    if (!box) return PLEXUS_NO_MEMORY;
    memcpy(box->frame, c->in + c->in_start, len);
    c->in_start += len;
    if (plexus_wire_decode(box->frame, len, MAX_PAYLOAD, env, &what) != PLEXUS_OK) {
        free(box);
        return broken(c, what ? what : "a malformed frame");
    }
    box->frame[len] = 0;
    *out = box;
    return PLEXUS_OK;
}

/* A message for the client read while waiting for an answer: queued for
** plexus_client_receive. Returns 1 if kept. */
static int keep_delivery(plexus_client *c, answer_box *box, const plexus_envelope *e) {
    if (e->kind != PLEXUS_KIND_EVENT && e->kind != PLEXUS_KIND_COMMAND && e->kind != PLEXUS_KIND_QUERY &&
        e->kind != PLEXUS_KIND_CANCEL) return 0;
    uint64_t len = plexus_wire_frame_size(e);
    delivery_box *d = malloc(sizeof *d + len + 1);
    if (!d) return 0;
    memcpy(d->frame, box->frame, len + 1);
    plexus_envelope v;
    plexus_wire_decode(d->frame, len, MAX_PAYLOAD, &v, NULL);   /* checked when first read */
    d->delivery = (plexus_delivery){ (plexus_kind)v.kind, v.id, v.target ? v.target : "", v.sender ? v.sender : "",
                                     v.content_type ? v.content_type : "", v.payload ? v.payload : (const uint8_t *)"",
                                     v.payload_len, v.correlation_id };
    d->next = NULL;
    if (c->tail) c->tail->next = d; else c->head = d;
    c->tail = d;
    free(box);
    return 1;
}

static void error_text(char *dst, size_t cap, const plexus_envelope *a);

/* Files a frame just read: the answer to a request in flight (kept for its
** waiter), a message for the client (kept for plexus_client_receive), or
** the host's refusal of the connection. An answer nobody waits for any
** more (a call that gave up) is dropped. Takes box. */
static void file_frame(plexus_client *c, answer_box *box, const plexus_envelope *e) {
    if (e->kind == PLEXUS_KIND_RESPONSE && (e->flags & PLEXUS_FLAG_MORE)) {
        /* A partial answer: handed to its stream's callback now, in order;
        ** a plain call (no callback) waits for the final answer alone. */
        waiter *w = *slot_of(c, e->correlation_id);
        if (w && !w->box && w->on_partial) {
            plexus_answer a = { PLEXUS_OK, e->content_type ? e->content_type : "",
                                e->payload ? e->payload : (const uint8_t *)"", e->payload_len, e->sender ? e->sender : "" };
            w->on_partial(c, &a, w->partial_user);
        }
        free(box);
        return;
    }
    if (e->kind == PLEXUS_KIND_RESPONSE || e->kind == PLEXUS_KIND_ERROR) {
        waiter *w = *slot_of(c, e->correlation_id);
        if (w && !w->box) {
            w->box = box;
            w->ready_prev = c->ready_tail;
            w->ready_next = NULL;
            if (c->ready_tail) c->ready_tail->ready_next = w; else c->ready_head = w;
            c->ready_tail = w;
            return;
        }
        /* An ERROR answering nothing means the host refused the connection. */
        if (e->kind == PLEXUS_KIND_ERROR && e->correlation_id.hi == 0 && e->correlation_id.lo == 0) {
            error_text(c->refusal, sizeof c->refusal, e);
            c->refused = e->status ? e->status : PLEXUS_UNAVAILABLE;
        }
        free(box);
        return;
    }
    if (!keep_delivery(c, box, e)) free(box);
}

/* Submits e (a fresh id) and remembers it as in flight. */
static plexus_status submit(plexus_client *c, plexus_envelope *e, plexus_id *out_id) {
    plexus_status s = unusable(c);
    if (s != PLEXUS_OK) return s;
    waiter *w = calloc(1, sizeof *w);
    if (!w) return PLEXUS_NO_MEMORY;
    size_t mark = c->out_len;
    s = queue_frame(c, e);
    if (s != PLEXUS_OK) { free(w); c->out_len = mark; return s; }
    w->id = e->id;
    waiter **p = slot_of(c, e->id);
    *p = w;
    c->in_flight++;
    if (out_id) *out_id = e->id;
    if (c->out_len >= OUT_FLUSH_AT) return flush_out(c);
    return PLEXUS_OK;
}

/* The answer to request id (or, with any, to whichever comes first), read
** by the monotonic deadline. On TIMEOUT the request stays in flight. */
static plexus_status await(plexus_client *c, const plexus_id *id, int64_t deadline, answer_box **out,
                           plexus_envelope *answer, plexus_id *out_id) {
    plexus_status s = flush_out(c);
    /* A host that refused the connection closed it; its reason may be unread. */
    if (s != PLEXUS_OK) { deadline = now_ns(CLOCK_MONOTONIC) + 1000000000; c->broken = 0; }
    for (;;) {
        waiter **p = id ? slot_of(c, *id) : NULL;
        if (id && !*p) {
            snprintf(c->error, sizeof c->error, "no request %016llx%016llx is in flight on this client",
                     (unsigned long long)id->hi, (unsigned long long)id->lo);
            return PLEXUS_INVALID_ARGUMENT;
        }
        if (!id && !c->ready_head && c->in_flight == 0) {
            snprintf(c->error, sizeof c->error, "no request is in flight on this client");
            return PLEXUS_INVALID_ARGUMENT;
        }
        waiter *w = id ? *p : c->ready_head;
        if (w && w->box) {
            if (out_id) *out_id = w->id;
            answer_box *box = take_waiter(c, slot_of(c, w->id));
            plexus_wire_view(box->frame, answer);   /* checked when it was read */
            *out = box;
            return PLEXUS_OK;
        }
        answer_box *box = NULL;
        plexus_envelope e;
        plexus_status r = read_frame(c, deadline, &box, &e);
        if (r != PLEXUS_OK) {
            if (s != PLEXUS_OK && !c->refused) { c->broken = 1; return s; }
            return r;
        }
        file_frame(c, box, &e);
    }
}

/* Sends e with a fresh id and waits for the frame that answers it. A call
** that gives up forgets its request: its answer is dropped when it comes. */
static plexus_status exchange(plexus_client *c, plexus_envelope *e, int64_t deadline, answer_box **out,
                              plexus_envelope *answer) {
    if (!c) return PLEXUS_INVALID_ARGUMENT;
    c->error[0] = 0;
    plexus_id id;
    plexus_status s = submit(c, e, &id);
    if (s != PLEXUS_OK) return s;
    s = await(c, &id, deadline, out, answer, NULL);
    if (s != PLEXUS_OK) {
        waiter **p = slot_of(c, id);
        if (*p) free(take_waiter(c, p));
    }
    return s;
}

static plexus_envelope outgoing(plexus_kind kind, plexus_target_kind tk, const char *target,
                                const char *content_type, const void *payload, size_t len) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = (uint8_t)kind;
    e.target_kind = (uint8_t)tk;
    e.target = target;
    e.content_type = content_type;
    e.payload = (const uint8_t *)payload;
    e.payload_len = len;
    return e;
}

/* An ERROR answer's text into the last error: the "message" of its JSON
** body ({"error": NAME, "message": TEXT}, SDK/PROTOCOL.md), unescaped, or
** the body as it is when it has none. */
static void error_text(char *dst, size_t cap, const plexus_envelope *a) {
    const char *p = a->payload ? (const char *)a->payload : "";
    size_t n = (size_t)a->payload_len, out = 0;
    static const char key[] = "\"message\":\"";
    const char *m = NULL;
    for (size_t i = 0; i + sizeof key - 1 <= n && !m; i++)
        if (memcmp(p + i, key, sizeof key - 1) == 0) m = p + i + sizeof key - 1;
    if (!m) { snprintf(dst, cap, "%.*s", (int)n, p); return; }
    for (const char *q = m; q < p + n && *q != '"' && out + 1 < cap; q++) {
        char ch = *q;
        if (ch == '\\' && q + 1 < p + n) {
            ch = *++q;
            if (ch == 'n') ch = '\n'; else if (ch == 't') ch = '\t';
            else if (ch == 'u') { ch = '?'; q += q + 4 < p + n ? 4 : 0; }   /* beyond ASCII: not needed for names */
        }
        dst[out++] = ch;
    }
    dst[out] = 0;
}

/* Fills the answer view of a box from its envelope. */
static plexus_answer *to_answer(plexus_client *c, answer_box *box, const plexus_envelope *a) {
    box->answer.status = a->kind == PLEXUS_KIND_ERROR ? (a->status ? a->status : PLEXUS_INTERNAL) : PLEXUS_OK;
    box->answer.content_type = a->content_type ? a->content_type : "";
    box->answer.payload = a->payload ? a->payload : (const uint8_t *)"";
    box->answer.payload_len = a->payload_len;
    box->answer.sender = a->sender ? a->sender : "";
    box->trace = a->trace_id;
    if (box->answer.status != PLEXUS_OK) error_text(c->error, sizeof c->error, a);
    return &box->answer;
}

/* The joined trace: its id, and on a query the parent span in
** correlation_id's low half (SDK/PROTOCOL.md, "Tracing"). */
static void carry_trace(const plexus_client *c, plexus_envelope *e) {
    e->trace_id = c->trace;
    e->correlation_id = (plexus_id){ 0, c->parent_span };
}

static plexus_envelope query(plexus_target_kind target_kind, const char *target, const char *content_type,
                             const void *payload, size_t len, uint32_t timeout_ms) {
    plexus_envelope e = outgoing(PLEXUS_KIND_QUERY, target_kind, target, content_type, payload, len);
    e.deadline_unix_ns = now_ns(CLOCK_REALTIME) + (int64_t)timeout_ms * 1000000;
    return e;
}

plexus_status plexus_client_call(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                 const char *content_type, const void *payload, size_t len,
                                 uint32_t timeout_ms, plexus_answer **out) {
    if (!c || !out) return PLEXUS_INVALID_ARGUMENT;
    *out = NULL;
    if (timeout_ms == 0) timeout_ms = DEFAULT_TIMEOUT_MS;
    plexus_envelope e = query(target_kind, target, content_type, payload, len, timeout_ms);
    carry_trace(c, &e);
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000;
    answer_box *box = NULL;
    plexus_envelope a;
    plexus_status s = exchange(c, &e, deadline, &box, &a);
    if (s == PLEXUS_TIMEOUT) snprintf(c->error, sizeof c->error, "no answer from '%s' within %u ms", target ? target : "", timeout_ms);
    if (s != PLEXUS_OK) return s;
    *out = to_answer(c, box, &a);
    return PLEXUS_OK;
}

/* ---- pipelining ---------------------------------------------------------- */

plexus_status plexus_client_submit(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                   const char *content_type, const void *payload, size_t len,
                                   uint32_t timeout_ms, plexus_id *out_id) {
    if (!c) return PLEXUS_INVALID_ARGUMENT;
    c->error[0] = 0;
    plexus_envelope e = query(target_kind, target, content_type, payload, len, timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);
    carry_trace(c, &e);
    return submit(c, &e, out_id);
}

/* ---- streams and cancellation (ABI 1.2) ---------------------------------- */

plexus_status plexus_client_submit_stream(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                          const char *content_type, const void *payload, size_t len,
                                          uint32_t timeout_ms, plexus_client_partial_fn on_partial, void *user,
                                          plexus_id *out_id) {
    plexus_id id;
    plexus_status s = plexus_client_submit(c, target_kind, target, content_type, payload, len, timeout_ms, &id);
    if (s != PLEXUS_OK) return s;
    waiter *w = *slot_of(c, id);
    w->on_partial = on_partial;
    w->partial_user = user;
    if (out_id) *out_id = id;
    return PLEXUS_OK;
}

plexus_status plexus_client_call_stream(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                        const char *content_type, const void *payload, size_t len,
                                        uint32_t timeout_ms, plexus_client_partial_fn on_partial, void *user,
                                        plexus_answer **out) {
    if (!c || !out) return PLEXUS_INVALID_ARGUMENT;
    *out = NULL;
    if (timeout_ms == 0) timeout_ms = DEFAULT_TIMEOUT_MS;
    plexus_id id;
    plexus_status s = plexus_client_submit_stream(c, target_kind, target, content_type, payload, len, timeout_ms,
                                                  on_partial, user, &id);
    if (s != PLEXUS_OK) return s;
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000;
    answer_box *box = NULL;
    plexus_envelope a;
    s = await(c, &id, deadline, &box, &a, NULL);
    if (s != PLEXUS_OK) {
        waiter **p = slot_of(c, id);
        if (*p) free(take_waiter(c, p));
        if (s == PLEXUS_TIMEOUT) snprintf(c->error, sizeof c->error, "no final answer from '%s' within %u ms", target ? target : "", timeout_ms);
        return s;
    }
    *out = to_answer(c, box, &a);
    return PLEXUS_OK;
}

plexus_status plexus_client_cancel(plexus_client *c, plexus_id id) {
    if (!c) return PLEXUS_INVALID_ARGUMENT;
    if (!*slot_of(c, id)) {
        snprintf(c->error, sizeof c->error, "no request %016llx%016llx is in flight on this client",
                 (unsigned long long)id.hi, (unsigned long long)id.lo);
        return PLEXUS_INVALID_ARGUMENT;
    }
    plexus_envelope e = outgoing(PLEXUS_KIND_CANCEL, PLEXUS_TARGET_REPLY, NULL, NULL, NULL, 0);
    e.correlation_id = id;
    plexus_status s = unusable(c);
    if (s == PLEXUS_OK) s = queue_frame(c, &e);
    return s != PLEXUS_OK ? s : flush_out(c);
}

plexus_status plexus_client_reply_partial(plexus_client *c, const plexus_delivery *d,
                                          const char *content_type, const void *payload, size_t len) {
    if (!c || !d || d->kind != PLEXUS_KIND_QUERY) return PLEXUS_INVALID_ARGUMENT;
    plexus_envelope e = outgoing(PLEXUS_KIND_RESPONSE, PLEXUS_TARGET_REPLY, NULL, content_type, payload, len);
    e.flags = PLEXUS_FLAG_MORE;
    e.correlation_id = d->id;
    plexus_status s = unusable(c);
    if (s == PLEXUS_OK) s = queue_frame(c, &e);
    return s != PLEXUS_OK ? s : flush_out(c);
}

static plexus_status wait_for(plexus_client *c, const plexus_id *id, uint32_t timeout_ms, plexus_id *out_id,
                              plexus_answer **out) {
    if (!c || !out) return PLEXUS_INVALID_ARGUMENT;
    *out = NULL;
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)(timeout_ms ? timeout_ms : 1) * 1000000;
    answer_box *box = NULL;
    plexus_envelope a;
    plexus_status s = await(c, id, deadline, &box, &a, out_id);
    if (s == PLEXUS_TIMEOUT) snprintf(c->error, sizeof c->error, "no answer within %u ms (the request is still in flight)", timeout_ms);
    if (s != PLEXUS_OK) return s;
    *out = to_answer(c, box, &a);
    return PLEXUS_OK;
}

plexus_status plexus_client_wait(plexus_client *c, plexus_id id, uint32_t timeout_ms, plexus_answer **out) {
    return wait_for(c, &id, timeout_ms, NULL, out);
}

plexus_status plexus_client_wait_any(plexus_client *c, uint32_t timeout_ms, plexus_id *out_id, plexus_answer **out) {
    return wait_for(c, NULL, timeout_ms, out_id, out);
}

/* The status of an ERROR answer; its text becomes the last error. */
static plexus_status refusal(plexus_client *c, const plexus_envelope *a) {
    error_text(c->error, sizeof c->error, a);
    return a->status ? a->status : PLEXUS_INTERNAL;
}

plexus_status plexus_client_send(plexus_client *c, plexus_target_kind target_kind, const char *target,
                                 const char *content_type, const void *payload, size_t len,
                                 plexus_id *out_id) {
    if (!c) return PLEXUS_INVALID_ARGUMENT;
    plexus_kind kind = target_kind == PLEXUS_TARGET_TOPIC ? PLEXUS_KIND_EVENT : PLEXUS_KIND_COMMAND;
    plexus_envelope e = outgoing(kind, target_kind, target, content_type, payload, len);
    carry_trace(c, &e);
    e.correlation_id = (plexus_id){ 0, 0 };   /* a command or event carries the trace id alone */
    answer_box *box = NULL;
    plexus_envelope a;
    plexus_status s = exchange(c, &e, now_ns(CLOCK_MONOTONIC) + (int64_t)DEFAULT_TIMEOUT_MS * 1000000, &box, &a);
    if (s != PLEXUS_OK) return s;
    if (a.kind == PLEXUS_KIND_ERROR) {
        s = refusal(c, &a);
    } else if (out_id) {
        /* The host answers {"id":"<32 hex digits>"}: hi then lo. */
        const char *h = strstr((const char *)a.payload, "\"id\":\"");
        unsigned long long hi = 0, lo = 0;
        if (h && sscanf(h + 6, "%16llx%16llx", &hi, &lo) == 2) *out_id = (plexus_id){ hi, lo };
    }
    free(box);
    return s;
}

/* ---- subscribing and serving as an agent -------------------------------- */

/* Appends s to a JSON document as a string; names never need more than
** escaping quotes and backslashes (the host refuses control characters). */
static int json_append(char *buf, size_t cap, size_t *at, const char *s) {
    if (*at + 1 >= cap) return 0;
    buf[(*at)++] = '"';
    for (; *s; s++) {
        if (*at + 3 >= cap) return 0;
        if (*s == '"' || *s == '\\') buf[(*at)++] = '\\';
        buf[(*at)++] = *s;
    }
    buf[(*at)++] = '"';
    buf[*at] = 0;
    return 1;
}

/* Asks the host to carry out a session operation with a JSON argument. */
static plexus_status operate(plexus_client *c, const char *op, const char *json) {
    plexus_envelope e = outgoing(PLEXUS_KIND_QUERY, PLEXUS_TARGET_CAPABILITY, op, "application/json", json, strlen(json));
    answer_box *box = NULL;
    plexus_envelope a;
    plexus_status s = exchange(c, &e, now_ns(CLOCK_MONOTONIC) + (int64_t)DEFAULT_TIMEOUT_MS * 1000000, &box, &a);
    if (s == PLEXUS_OK && a.kind == PLEXUS_KIND_ERROR) s = refusal(c, &a);
    free(box);
    return s;
}

static plexus_status one_field(plexus_client *c, const char *op, const char *key, const char *value) {
    if (!c || !value) return PLEXUS_INVALID_ARGUMENT;
    char json[600];
    size_t at = (size_t)snprintf(json, sizeof json, "{\"%s\":", key);
    if (!json_append(json, sizeof json, &at, value) || at + 2 > sizeof json) return PLEXUS_TOO_LARGE;
    strcat(json, "}");
    return operate(c, op, json);
}

plexus_status plexus_client_hello(plexus_client *c, const char *client, const char *token) {
    if (!c || !client) return PLEXUS_INVALID_ARGUMENT;
    char json[1200];
    size_t at = (size_t)snprintf(json, sizeof json, "{\"client\":");
    if (!json_append(json, sizeof json, &at, client)) return PLEXUS_TOO_LARGE;
    if (token) {
        if (at + 10 > sizeof json) return PLEXUS_TOO_LARGE;
        strcat(json, ",\"token\":");
        at = strlen(json);
        if (!json_append(json, sizeof json, &at, token)) return PLEXUS_TOO_LARGE;
    }
    if (at + 2 > sizeof json) return PLEXUS_TOO_LARGE;
    strcat(json, "}");
    return operate(c, "plexus.hello", json);
}

plexus_status plexus_client_connect_as(const char *socket_path, const char *client, const char *token,
                                       plexus_client **out, char *err, size_t err_cap) {
    plexus_status s = plexus_client_connect(socket_path, out, err, err_cap);
    if (s != PLEXUS_OK || !client || !*client) return s;
    s = plexus_client_hello(*out, client, token);
    if (s != PLEXUS_OK) {
        if (err && err_cap) snprintf(err, err_cap, "%s: %s", plexus_status_name(s), plexus_client_last_error(*out));
        plexus_client_close(*out);
        *out = NULL;
    }
    return s;
}

plexus_status plexus_client_subscribe(plexus_client *c, const char *pattern) {
    return one_field(c, "plexus.subscribe", "pattern", pattern);
}

plexus_status plexus_client_unsubscribe(plexus_client *c, const char *pattern) {
    return one_field(c, "plexus.unsubscribe", "pattern", pattern);
}

plexus_status plexus_client_unregister(plexus_client *c, const char *name) {
    return one_field(c, "plexus.unregister", "name", name);
}

plexus_status plexus_client_register(plexus_client *c, const char *name, const char *const *caps, size_t n) {
    if (!c || !name || (n && !caps)) return PLEXUS_INVALID_ARGUMENT;
    size_t cap = 64 + 2 * (strlen(name) + 1);
    for (size_t i = 0; i < n; i++) cap += 2 * (strlen(caps[i]) + 1) + 1;
    char *json = malloc(cap);
    if (!json) return PLEXUS_NO_MEMORY;
    size_t at = (size_t)snprintf(json, cap, "{\"name\":");
    json_append(json, cap, &at, name);
    at += (size_t)snprintf(json + at, cap - at, ",\"capabilities\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) json[at++] = ',';
        json_append(json, cap, &at, caps[i]);
    }
    snprintf(json + at, cap - at, "]}");
    plexus_status s = operate(c, "plexus.register", json);
    free(json);
    return s;
}

plexus_status plexus_client_receive(plexus_client *c, uint32_t timeout_ms, plexus_delivery **out) {
    if (!c || !out) return PLEXUS_INVALID_ARGUMENT;
    *out = NULL;
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)(timeout_ms ? timeout_ms : 1) * 1000000;
    if (c->out_len && flush_out(c) != PLEXUS_OK) return PLEXUS_UNAVAILABLE;   /* submitted queries go out first */
    while (!c->head) {
        answer_box *box = NULL;
        plexus_envelope e;
        plexus_status s = read_frame(c, deadline, &box, &e);
        if (s == PLEXUS_TIMEOUT) snprintf(c->error, sizeof c->error, "no message within %u ms", timeout_ms);
        if (s != PLEXUS_OK) return s;
        file_frame(c, box, &e);   /* an answer is kept for its waiter; a late one to a call that gave up is dropped */
    }
    delivery_box *d = c->head;
    c->head = d->next;
    if (!c->head) c->tail = NULL;
    *out = &d->delivery;
    return PLEXUS_OK;
}

plexus_status plexus_client_dispatch(plexus_client *c, uint32_t timeout_ms, plexus_client_handler fn, void *user) {
    if (!fn) return PLEXUS_INVALID_ARGUMENT;
    plexus_delivery *d = NULL;
    plexus_status s = plexus_client_receive(c, timeout_ms, &d);
    if (s != PLEXUS_OK) return s;
    fn(c, d, user);
    plexus_delivery_free(d);
    return PLEXUS_OK;
}

plexus_status plexus_client_reply(plexus_client *c, const plexus_delivery *d, plexus_status status,
                                  const char *content_type, const void *payload, size_t len) {
    if (!c || !d || d->kind != PLEXUS_KIND_QUERY) return PLEXUS_INVALID_ARGUMENT;
    plexus_envelope e = outgoing(status == PLEXUS_OK ? PLEXUS_KIND_RESPONSE : PLEXUS_KIND_ERROR, PLEXUS_TARGET_REPLY,
                                 NULL, content_type, payload, len);
    e.status = status;
    e.correlation_id = d->id;
    plexus_status s = unusable(c);
    if (s == PLEXUS_OK) s = queue_frame(c, &e);
    return s != PLEXUS_OK ? s : flush_out(c);
}

void plexus_delivery_free(plexus_delivery *d) { free(d); }   /* the box starts with the delivery */

/* ---- tracing ------------------------------------------------------------- */

static int hex_field(const char *s, size_t n, uint64_t *hi, uint64_t *lo) {
    *hi = 0; *lo = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        unsigned v = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0') : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10) : 16u;
        if (v == 16) return 0;
        if (n == 32 && i < 16) *hi = (*hi << 4) | v; else *lo = (*lo << 4) | v;
    }
    return 1;
}

plexus_status plexus_client_set_traceparent(plexus_client *c, const char *tp) {
    if (!c) return PLEXUS_INVALID_ARGUMENT;
    if (!tp || !*tp) { c->trace = (plexus_id){ 0, 0 }; c->parent_span = 0; return PLEXUS_OK; }
    uint64_t th, tl, ph, pl, fh, fl;
    if (strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || strncmp(tp, "00", 2) != 0 ||
        !hex_field(tp + 3, 32, &th, &tl) || !hex_field(tp + 36, 16, &ph, &pl) || !hex_field(tp + 53, 2, &fh, &fl) ||
        (th == 0 && tl == 0) || pl == 0) {
        snprintf(c->error, sizeof c->error,
                 "traceparent '%.60s' is malformed: expected 00-<32 lowercase hex trace id, not all zero>-<16 lowercase hex parent id, not all zero>-<2 hex flags>", tp);
        return PLEXUS_INVALID_ARGUMENT;
    }
    c->trace = (plexus_id){ th, tl };
    c->parent_span = pl;
    return PLEXUS_OK;
}

plexus_id plexus_answer_trace_id(const plexus_answer *a) {
    if (!a) return (plexus_id){ 0, 0 };
    return ((const answer_box *)(const void *)a)->trace;
}
