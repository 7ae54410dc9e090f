/*
** plexus_pool.h — recycled message buffers, so the message path does not
** call malloc and free per message. Each thread keeps a small cache per
** size class (a load and a store to take or give one, no lock, no atomic);
** a thread whose cache runs dry takes a batch from a shared depot, and one
** whose cache fills gives a batch back: one lock per PLEXUS_POOL_BATCH
** messages, which is what lets a buffer made on one thread (a sender) and
** finished on another (a worker's I/O thread) come back without free()
** taking the allocator's arena lock per message. The depot is bounded;
** past it a buffer is freed as usual. Items are opaque here (+1 references
** to Swift Message objects); a thread's cache goes to the depot when the
** thread ends, and what does not fit is given to the release function.
** Private to the host.
*/
#ifndef PLEXUS_POOL_H
#define PLEXUS_POOL_H

#include <stdint.h>
#include "plexus_tls.h"   /* PLEXUS_TLS_MODEL */

#define PLEXUS_POOL_CLASSES 2
#define PLEXUS_POOL_LOCAL 64
#define PLEXUS_POOL_BATCH 32
#define PLEXUS_POOL_DEPOT 8192

typedef struct {
    void *items[PLEXUS_POOL_LOCAL];
    uint32_t count;
    uint32_t registered;   /* the thread-exit flush is armed (cls 0's word serves all) */
} plexus_pool_cache;

extern _Thread_local plexus_pool_cache plexus_pool_caches_[PLEXUS_POOL_CLASSES] PLEXUS_TLS_MODEL;

/* Slow paths (pool.c). */
void *plexus_pool_refill(unsigned cls);
int plexus_pool_spill(unsigned cls, void *item);

/* An item of class cls, or NULL when neither this thread nor the depot has one. */
static inline void *plexus_pool_get(unsigned cls) {
    plexus_pool_cache *c = &plexus_pool_caches_[cls];
    if (c->count) return c->items[--c->count];
    return plexus_pool_refill(cls);
}

/* Keeps item; 0 when the pool is full (the caller frees it). */
static inline int plexus_pool_put(unsigned cls, void *item) {
    plexus_pool_cache *c = &plexus_pool_caches_[cls];
    if (c->count < PLEXUS_POOL_LOCAL && plexus_pool_caches_[0].registered) {
        c->items[c->count++] = item;
        return 1;
    }
    return plexus_pool_spill(cls, item);
}

/* How a thread's leftover items are freed when it ends and the depot is full. */
void plexus_pool_set_release(void (*release)(void *item));

/* Items in the depot of class cls (tests). */
uint32_t plexus_pool_depot_count(unsigned cls);
/* Items handed on (to the depot or released) by threads that ended (tests). */
uint64_t plexus_pool_flushed(void);
/* Items in this thread's cache of class cls (tests). */
static inline uint32_t plexus_pool_local_count(unsigned cls) { return plexus_pool_caches_[cls].count; }

#endif
