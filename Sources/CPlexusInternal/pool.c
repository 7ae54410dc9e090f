/* The shared depot behind the per-thread message caches (plexus_pool.h). */
#include "plexus_pool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

_Thread_local plexus_pool_cache plexus_pool_caches_[PLEXUS_POOL_CLASSES];

static struct depot {
    pthread_mutex_t lock;
    uint32_t count;
    void *items[PLEXUS_POOL_DEPOT];
} depots[PLEXUS_POOL_CLASSES] = { { PTHREAD_MUTEX_INITIALIZER, 0, { 0 } }, { PTHREAD_MUTEX_INITIALIZER, 0, { 0 } } };

static void (*_Atomic release_fn)(void *);
static _Atomic uint64_t flushed;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

void plexus_pool_set_release(void (*release)(void *)) { atomic_store(&release_fn, release); }

/* Moves up to n items from the top of c into the depot; returns how many moved. */
static uint32_t give(struct depot *d, plexus_pool_cache *c, uint32_t n) {
    pthread_mutex_lock(&d->lock);
    uint32_t room = PLEXUS_POOL_DEPOT - d->count;
    if (n > room) n = room;
    if (n > c->count) n = c->count;
    c->count -= n;
    memcpy(&d->items[d->count], &c->items[c->count], n * sizeof(void *));
    d->count += n;
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* The thread ends: its cache goes to the depot, the rest is released. */
static void flush_at_exit(void *unused) {
    (void)unused;
    void (*release)(void *) = atomic_load(&release_fn);
    for (unsigned cls = 0; cls < PLEXUS_POOL_CLASSES; cls++) {
        plexus_pool_cache *c = &plexus_pool_caches_[cls];
        atomic_fetch_add(&flushed, c->count);
        give(&depots[cls], c, c->count);
        while (c->count) {
            void *item = c->items[--c->count];
            if (release) release(item);   /* without one (never set) the item is leaked, not freed wrongly */
        }
    }
    plexus_pool_caches_[0].registered = 0;
}

static void make_key(void) { pthread_key_create(&exit_key, flush_at_exit); }

/* The first put on a thread arms the flush at its exit (a non-NULL value
** makes pthread call the key's destructor). */
static void arm(void) {
    pthread_once(&exit_once, make_key);
    pthread_setspecific(exit_key, (void *)1);
    plexus_pool_caches_[0].registered = 1;
}

int plexus_pool_spill(unsigned cls, void *item) {
    if (!plexus_pool_caches_[0].registered) arm();
    plexus_pool_cache *c = &plexus_pool_caches_[cls];
    if (c->count == PLEXUS_POOL_LOCAL && give(&depots[cls], c, PLEXUS_POOL_BATCH) == 0) return 0;
    c->items[c->count++] = item;
    return 1;
}

void *plexus_pool_refill(unsigned cls) {
    if (!plexus_pool_caches_[0].registered) arm();   /* what it takes and does not use is not lost at its exit */
    struct depot *d = &depots[cls];
    plexus_pool_cache *c = &plexus_pool_caches_[cls];
    pthread_mutex_lock(&d->lock);
    uint32_t n = d->count < PLEXUS_POOL_BATCH ? d->count : PLEXUS_POOL_BATCH;
    d->count -= n;
    memcpy(&c->items[c->count], &d->items[d->count], n * sizeof(void *));
    c->count += n;
    pthread_mutex_unlock(&d->lock);
    return c->count ? c->items[--c->count] : NULL;
}

uint32_t plexus_pool_depot_count(unsigned cls) {
    pthread_mutex_lock(&depots[cls].lock);
    uint32_t n = depots[cls].count;
    pthread_mutex_unlock(&depots[cls].lock);
    return n;
}

uint64_t plexus_pool_flushed(void) { return atomic_load(&flushed); }
