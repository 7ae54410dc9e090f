/* The span ring (plexus_span_ring.h): one atomic add per record, a
** sequence number per slot so readers skip slots being overwritten. */
#define _POSIX_C_SOURCE 200809L   /* strnlen */
#include "plexus_span_ring.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(plexus_span_record) == 184, "a record is 184 bytes: with its sequence number, a 192-byte slot");

typedef struct slot {
    _Atomic uint64_t seq;   /* 2*index+1 while written, 2*index+2 once written, 0 never */
    plexus_span_record rec;
} slot;

struct plexus_span_ring {
    uint64_t mask;
    slot *slots;
    _Alignas(64) _Atomic uint64_t next;   /* its own cache line: the one word writers share */
};

plexus_span_ring *plexus_span_ring_create(uint64_t capacity) {
    uint64_t n = 16;
    while (n < capacity && n < (1ull << 40)) n <<= 1;
    plexus_span_ring *r = aligned_alloc(64, sizeof *r);
    if (!r) return NULL;
    r->slots = calloc(n, sizeof(slot));
    if (!r->slots) { free(r); return NULL; }
    memset(r->slots, 0, n * sizeof(slot));   /* resident now: the host's size does not creep as it records */
    r->mask = n - 1;
    atomic_init(&r->next, 0);
    return r;
}

void plexus_span_ring_destroy(plexus_span_ring *r) {
    if (!r) return;
    free(r->slots);
    free(r);
}

uint64_t plexus_span_ring_capacity(const plexus_span_ring *r) { return r->mask + 1; }

uint64_t plexus_span_ring_written(const plexus_span_ring *r) {
    return atomic_load_explicit(&((plexus_span_ring *)r)->next, memory_order_relaxed);
}

static void copy_name(char *dst, const char *src, size_t cap) {
    if (!src) { dst[0] = 0; return; }
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

void plexus_span_ring_put(plexus_span_ring *r, const plexus_span_record *fixed,
                          const char *name, const char *agent, const char *sender) {
    uint64_t i = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
    slot *s = &r->slots[i & r->mask];
    atomic_store_explicit(&s->seq, 2 * i + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(&s->rec, fixed, offsetof(plexus_span_record, name));
    copy_name(s->rec.name, name, sizeof s->rec.name);
    copy_name(s->rec.agent, agent, sizeof s->rec.agent);
    copy_name(s->rec.sender, sender, sizeof s->rec.sender);
    atomic_store_explicit(&s->seq, 2 * i + 2, memory_order_release);
}

int plexus_span_ring_get(const plexus_span_ring *r, uint64_t index, plexus_span_record *out) {
    const slot *s = &r->slots[index & r->mask];
    uint64_t want = 2 * index + 2;
    if (atomic_load_explicit(&((slot *)s)->seq, memory_order_acquire) != want) return 0;
    memcpy(out, &s->rec, sizeof *out);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&((slot *)s)->seq, memory_order_relaxed) != want) return 0;
    out->name[sizeof out->name - 1] = 0;
    out->agent[sizeof out->agent - 1] = 0;
    out->sender[sizeof out->sender - 1] = 0;
    return 1;
}

int plexus_span_ring_state(const plexus_span_ring *r, uint64_t index) {
    uint64_t seq = atomic_load_explicit(&((slot *)&r->slots[index & r->mask])->seq, memory_order_acquire);
    uint64_t want = 2 * index + 2;
    return seq == want ? 1 : seq > want ? -1 : 0;
}
