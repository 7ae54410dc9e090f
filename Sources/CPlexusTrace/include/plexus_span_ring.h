/* A bounded ring of span records that many threads append to without a lock.
** Private to the host (never installed): the tracer's storage.
**
** A writer takes the next index with one atomic add and fills its slot; a
** slot's sequence number is odd while it is being written and says which
** index it holds once written, so a reader copying a slot that a writer is
** overwriting (the ring wrapped) sees the mismatch and skips it. Old records
** are overwritten, never waited for: recording never blocks. */
#ifndef PLEXUS_SPAN_RING_H
#define PLEXUS_SPAN_RING_H

#include <stdint.h>

#define PLEXUS_SPAN_NAME_LEN   40u
#define PLEXUS_SPAN_AGENT_LEN  33u   /* 32 characters: a run id or a task id fits */

/* What a record describes. Stored in a uint8_t. */
typedef enum plexus_span_record_kind {
    PLEXUS_SPAN_MESSAGE  = 0, /* one delivery: route, wait in mailbox, handle  */
    PLEXUS_SPAN_REPLY    = 1, /* a reply handed to a caller's callback          */
    PLEXUS_SPAN_CLIENT   = 2, /* a socket client's request, as the session saw it */
    PLEXUS_SPAN_RUN      = 3, /* a workflow run                                 */
    PLEXUS_SPAN_STEP     = 4, /* a workflow step                                */
    PLEXUS_SPAN_ATTEMPT  = 5, /* one attempt of a workflow step                 */
    PLEXUS_SPAN_REFUSED  = 6  /* a message routed but not admitted              */
} plexus_span_record_kind;

/* The fixed part of a record. Times are CLOCK_MONOTONIC nanoseconds. */
typedef struct plexus_span_record {
    uint64_t trace_hi, trace_lo;
    uint64_t span;        /* the record's own span id (a message's spans derive from it) */
    uint64_t parent;      /* the span it belongs under; 0: a root */
    int64_t  t_route;     /* route began (a message), or the span's start */
    int64_t  t_routed;    /* the message was in the mailbox */
    int64_t  t_start;     /* the handler began */
    int64_t  t_end;       /* the handler (or the span) ended */
    int32_t  status;      /* plexus_status: what it ended with */
    uint8_t  kind;        /* plexus_span_record_kind */
    uint8_t  message_kind;/* plexus_kind of the message */
    uint16_t attempt;     /* a workflow attempt's number */
    char name[PLEXUS_SPAN_NAME_LEN];    /* target, step or workflow name; truncated */
    char agent[PLEXUS_SPAN_AGENT_LEN];  /* who handled it */
    char sender[PLEXUS_SPAN_AGENT_LEN]; /* who sent it; an attempt's task id */
} plexus_span_record;

typedef struct plexus_span_ring plexus_span_ring;

/* A ring of capacity records (rounded up to a power of two, at least 16),
** its memory touched now so that recording never grows the process;
** NULL when memory is short. */
plexus_span_ring *plexus_span_ring_create(uint64_t capacity);
void plexus_span_ring_destroy(plexus_span_ring *r);
uint64_t plexus_span_ring_capacity(const plexus_span_ring *r);

/* Records written so far (the next index), including those overwritten since. */
uint64_t plexus_span_ring_written(const plexus_span_ring *r);

/* Appends fixed with the three strings (each may be NULL; copied, truncated). */
void plexus_span_ring_put(plexus_span_ring *r, const plexus_span_record *fixed,
                          const char *name, const char *agent, const char *sender);

/* Copies record number index into *out. 0 when it was overwritten, is being
** written, or was never written. */
int plexus_span_ring_get(const plexus_span_ring *r, uint64_t index, plexus_span_record *out);

/* Whether record `index` can be read: 1 written, 0 reserved and still being
** written (a reader following the ring waits for it), -1 overwritten by a
** later record. */
int plexus_span_ring_state(const plexus_span_ring *r, uint64_t index);

#endif
