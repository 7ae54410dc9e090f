/*
** plexus_ring.h — the shared-memory channel between the host and a worker:
** two single-producer single-consumer byte rings in one sealed memfd, one per
** direction, carrying plexus_wire.h frames back to back exactly as the socket
** did (a frame larger than the ring goes through in pieces, as through a
** socket's buffer). Private to the host and the worker.
**
** Layout (little-endian, one page of header, then the two data areas):
**
**   0     magic "PLXRING1", capacity (u32, per direction, a power of two)
**   64    to_worker: head | bell | sleeping        (host writes, worker reads)
**   128              tail | blocked
**   192   to_host:   head | bell | sleeping        (worker writes, host reads)
**   256              tail | blocked
**   4096  to_worker data (capacity bytes), then to_host data
**
** head and tail count bytes ever written and read (mod 2^32). A consumer
** about to sleep counts itself in `sleeping`, then looks at head once more;
** a producer publishes head, then looks at `sleeping` (a full fence on both
** sides, so one of the two always sees the other: no wake-up is lost). A
** producer that finds no room counts itself in `blocked` the same way. The
** worker sleeps on futexes (the `bell` word; the tail for room); the host's
** I/O thread sleeps in poll() with the worker's death, its output and its
** own wake-ups, so the worker rings the host through an eventfd instead.
**
** The host's `sleeping` word (to_host) holds two things: bit 0, the I/O
** thread asleep in poll(), rung through the eventfd; above it, a count of
** host threads that wait for an answer of this worker and read the ring
** themselves (a blocked `call`), asleep on the `bell` futex. A worker whose
** write finds callers asleep wakes them and not the I/O thread: the answer
** then costs two switches on a shared core, as a pipe does, where waking the
** I/O thread to wake the caller cost four.
**
** The host trusts nothing in the mapping: it keeps its own head and tail,
** reads the worker's index once per call and checks it against the capacity
** and its own, copies bytes out before decoding them, and only ever wakes or
** is woken through these words (a worker that clears the host's `sleeping`
** delays itself, nothing else). A bad index is an error, never a wait.
*/
#ifndef PLEXUS_RING_H
#define PLEXUS_RING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLEXUS_RING_MAGIC 0x31474e4952584c50ull   /* "PLXRING1" */
#define PLEXUS_RING_HEADER 4096u
/* Bytes per direction: about 1,700 small deliveries, more than a worker's window. */
#define PLEXUS_RING_CAPACITY (256u * 1024u)

/* The shared words (layout above) are defined in ring.c only: _Atomic
** fields stay out of what Swift imports. */
typedef struct plexus_ring_dir plexus_ring_dir;

/* One side's view. The indices it owns are kept here, privately, and only
** published to the mapping; the peer's are read from it and checked. */
typedef struct plexus_ring {
    plexus_ring_dir *tx, *rx;
    uint8_t *tx_data, *rx_data;
    uint32_t capacity;   /* read once when opened */
    uint32_t tx_head;    /* what this side has published */
    uint32_t rx_tail;    /* what this side has taken */
    uint32_t spin;       /* adaptive spin budget before sleeping (ns) */
    uint32_t probes;     /* waits since the budget fell to zero */
} plexus_ring;

/* The mapping's size for capacity bytes per direction. */
uint64_t plexus_ring_size(uint32_t capacity);

/* Host: a sealed memfd (it cannot shrink under the host: no SIGBUS) of
** plexus_ring_size(capacity) bytes, mapped shared at *out_base and
** initialised. 0, or an errno (nothing left open). */
int plexus_ring_create(uint32_t capacity, int *out_fd, void **out_base);

/* Sets up r over a mapping of size bytes; host: 1 for the host's side.
** 0, or -1 when the header is not a ring of that size (why names it). */
int plexus_ring_open(plexus_ring *r, void *base, uint64_t size, int host, const char **why);

/* Copies up to max bytes the peer has published into dst and releases them.
** Returns the count (0: nothing yet), or -1 when the peer's head is not
** within capacity of what was taken (why: a text of at least 160 bytes).
** *wake_producer is set when the peer waits for room. */
int64_t plexus_ring_read(plexus_ring *r, void *dst, uint64_t max, int *wake_producer, char *why, uint64_t why_len);

/* Copies as much of src as there is room for and publishes it. Returns the
** count (may be less than n, 0 when full), or -1 when the peer's tail is
** past what was written. *wake_consumer is the peer's `sleeping` word when
** it sleeps, else 0 (the worker tells the host's sleepers apart by it). */
int64_t plexus_ring_write(plexus_ring *r, const void *src, uint64_t n, int *wake_consumer, char *why, uint64_t why_len);

/* 1 when the peer has published bytes this side has not taken. */
int plexus_ring_readable(const plexus_ring *r);

/* Spins up to the adaptive budget (at most 4 us) for the peer to publish;
** 1 if it did. The budget doubles after a spin that paid and halves after
** one that did not (at zero, one wait in 32 probes for 0.5 us): on one core,
** where the peer cannot run while this side spins, spinning soon stops. */
int plexus_ring_spin(plexus_ring *r);

/* The host's I/O thread's sleep flag (bit 0 of to_host's `sleeping`), set
** before a last look and cleared after waking, around its poll. */
void plexus_ring_set_sleeping(plexus_ring *r, int on);

/* to_host's `sleeping`: the I/O thread in poll, and one caller asleep. */
#define PLEXUS_RING_POLLING 1u
#define PLEXUS_RING_CALLER 2u

/* Host: counts (on) or uncounts a caller that waits for an answer and
** reads the ring itself, from before it sends its query until it has its
** answer; it sleeps with plexus_ring_wait_bell. Uncounted, it looks for
** bytes left behind (a full fence between). */
void plexus_ring_set_caller_waiting(plexus_ring *r, int on);
/* Host: sleeps until the bell moves from seen (plexus_ring_bell, read before
** counting itself), or timeout_ms. */
void plexus_ring_wait_bell(plexus_ring *r, uint32_t seen, int timeout_ms);
/* Worker: wakes the host after a write whose *wake_consumer was nonzero:
** callers asleep on the bell, else the I/O thread through bell_fd. */
void plexus_ring_wake_host(plexus_ring *r, uint32_t sleeping, int bell_fd);
/* The producer's "waiting for room" flag (host, around its outbox). */
void plexus_ring_set_blocked(plexus_ring *r, int on);

/* Wakes the consumer of what this side writes (futex wake on its bell),
** after a write that said so. */
void plexus_ring_wake_consumer(plexus_ring *r);
/* Wakes the producer of what this side reads, waiting for room (futex wake
** on the tail), after a read that said so. */
void plexus_ring_wake_producer(plexus_ring *r);
/* Wakes this side's own threads asleep on its incoming bell (worker: its
** thread in plexus_ring_sleep, when another queued work for it; host: the
** callers in plexus_ring_wait_bell, when their answer came another way). */
void plexus_ring_kick(plexus_ring *r);
/* The incoming bell's value, read before sleeping on it (worker: under
** the caller's lock). */
uint32_t plexus_ring_bell(const plexus_ring *r);

/* Worker: sleeps until the host publishes or the bell moves from seen
** (read before the caller released its lock), or timeout_ms (< 0: none). */
void plexus_ring_sleep(plexus_ring *r, uint32_t seen, int timeout_ms);
/* Worker: sleeps until the host takes some bytes, or timeout_ms. */
void plexus_ring_wait_room(plexus_ring *r, int timeout_ms);

/* Passing the ring over the channel socket at start-up: the host sends the
** memfd and its eventfd with one byte; the worker receives them. 0 or errno. */
int plexus_ring_send_fds(int sock, int memfd, int bell);
int plexus_ring_receive_fds(int sock, int *out_memfd, int *out_bell);

/* Host: the eventfd the worker rings (non-blocking, close-on-exec), or -1. */
int plexus_ring_eventfd(void);
/* Host: unmaps what plexus_ring_create mapped. */
void plexus_ring_unmap(void *base, uint32_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* PLEXUS_RING_H */
