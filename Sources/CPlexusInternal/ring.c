/* The shared-memory rings between the host and a worker (plexus_ring.h). */
#define _GNU_SOURCE
#include "plexus_ring.h"
#include "plexus_fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct plexus_ring_dir {
    _Atomic uint32_t head;
    _Atomic uint32_t bell;
    _Atomic uint32_t sleeping;
    uint8_t pad0[52];
    _Atomic uint32_t tail;
    _Atomic uint32_t blocked;
    uint8_t pad1[56];
};

typedef struct ring_header {
    uint64_t magic;
    uint32_t capacity;
    uint32_t reserved;
    uint8_t pad[48];
    plexus_ring_dir to_worker;
    plexus_ring_dir to_host;
} ring_header;

_Static_assert(sizeof(plexus_ring_dir) == 128, "a direction is two cache lines");
_Static_assert(sizeof(ring_header) == 320, "the layout in plexus_ring.h");
_Static_assert(sizeof(ring_header) <= PLEXUS_RING_HEADER, "the header fits its page");

/* The spin before sleeping is bounded in time, not iterations: a pause costs
** 10 ns on some processors and 80 ns on this project's machines. */
#define SPIN_MAX_NS 4000u     /* a few microseconds: about one sleep and wake-up saved */
#define SPIN_START_NS 1000u
#define SPIN_PROBE_NS 500u    /* one wait in 32 while the budget is zero */

uint64_t plexus_ring_size(uint32_t capacity) { return PLEXUS_RING_HEADER + 2 * (uint64_t)capacity; }

static int valid_capacity(uint64_t c) { return c >= 4096 && c <= (1u << 30) && (c & (c - 1)) == 0; }

int plexus_ring_create(uint32_t capacity, int *out_fd, void **out_base) {
    if (!valid_capacity(capacity)) return EINVAL;
    int fd = memfd_create("plexus-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return errno;
    uint64_t size = plexus_ring_size(capacity);
    int rc = 0;
    if (ftruncate(fd, (off_t)size) != 0) rc = errno;
    /* Sealed at its size: a worker holding the descriptor can neither shrink
    ** the file under the host's mapping (SIGBUS in the host) nor grow it. */
    else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) rc = errno;
    void *base = MAP_FAILED;
    if (rc == 0) {
        base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) rc = errno;
    }
    if (rc) { close(fd); return rc; }
    ring_header *h = base;   /* the file is zero-filled: indices start at 0 */
    h->capacity = capacity;
    h->magic = PLEXUS_RING_MAGIC;
    *out_fd = fd;
    *out_base = base;
    return 0;
}

int plexus_ring_open(plexus_ring *r, void *base, uint64_t size, int host, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    memset(r, 0, sizeof *r);
    if (size < PLEXUS_RING_HEADER) { *why = "the mapping is smaller than the ring's header"; return -1; }
    ring_header *h = base;
    uint32_t capacity = h->capacity;   /* read once: everything after uses this copy */
    if (h->magic != PLEXUS_RING_MAGIC) { *why = "the mapping does not start with the ring's magic"; return -1; }
    if (!valid_capacity(capacity)) { *why = "the ring's capacity is not a power of two between 4 KiB and 1 GiB"; return -1; }
    if (plexus_ring_size(capacity) != size) { *why = "the ring's capacity does not match the mapping's size"; return -1; }
    uint8_t *data = (uint8_t *)base + PLEXUS_RING_HEADER;
    r->capacity = capacity;
    r->tx = host ? &h->to_worker : &h->to_host;
    r->rx = host ? &h->to_host : &h->to_worker;
    r->tx_data = host ? data : data + capacity;
    r->rx_data = host ? data + capacity : data;
    r->spin = SPIN_START_NS;
    return 0;
}

int64_t plexus_ring_read(plexus_ring *r, void *dst, uint64_t max, int *wake_producer, char *why, uint64_t why_len) {
    *wake_producer = 0;
    uint32_t head = atomic_load_explicit(&r->rx->head, memory_order_acquire);   /* the peer's: read once */
    uint32_t avail = head - r->rx_tail;
    if (avail > r->capacity) {
        if (why) snprintf(why, why_len, "write index %u is %u bytes past the read index %u (capacity %u)",
                          head, avail, r->rx_tail, r->capacity);
        return -1;
    }
    uint64_t n = avail < max ? avail : max;
    if (n == 0) return 0;
    uint32_t mask = r->capacity - 1, at = r->rx_tail & mask;
    uint64_t first = r->capacity - at < n ? r->capacity - at : n;
    memcpy(dst, r->rx_data + at, first);
    if (n > first) memcpy((uint8_t *)dst + first, r->rx_data, n - first);
    /* Atomic: the host looks at it (plexus_ring_readable) from threads
    ** that do not hold the reading turn. */
    __atomic_store_n(&r->rx_tail, r->rx_tail + (uint32_t)n, __ATOMIC_RELEASE);
    atomic_store_explicit(&r->rx->tail, r->rx_tail, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);   /* tail published, then look for a producer waiting */
    if (atomic_load_explicit(&r->rx->blocked, memory_order_relaxed)) *wake_producer = 1;
    return (int64_t)n;
}

int64_t plexus_ring_write(plexus_ring *r, const void *src, uint64_t n, int *wake_consumer, char *why, uint64_t why_len) {
    *wake_consumer = 0;
    uint32_t tail = atomic_load_explicit(&r->tx->tail, memory_order_acquire);   /* the peer's: read once */
    uint32_t used = r->tx_head - tail;
    if (used > r->capacity) {
        if (why) snprintf(why, why_len, "read index %u is not within %u bytes before the write index %u",
                          tail, r->capacity, r->tx_head);
        return -1;
    }
    uint64_t room = r->capacity - used, k = n < room ? n : room;
    if (k == 0) return 0;
    uint32_t mask = r->capacity - 1, at = r->tx_head & mask;
    uint64_t first = r->capacity - at < k ? r->capacity - at : k;
    memcpy(r->tx_data + at, src, first);
    if (k > first) memcpy(r->tx_data, (const uint8_t *)src + first, k - first);
    r->tx_head += (uint32_t)k;
    atomic_store_explicit(&r->tx->head, r->tx_head, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);   /* head published, then look for a sleeper */
    uint32_t sleeping = atomic_load_explicit(&r->tx->sleeping, memory_order_relaxed);
    *wake_consumer = (int)(sleeping & 0x7fffffffu);   /* nonzero when asleep, whatever the peer wrote */
    return (int64_t)k;
}

int plexus_ring_readable(const plexus_ring *r) {
    return atomic_load_explicit(&r->rx->head, memory_order_acquire) != __atomic_load_n(&r->rx_tail, __ATOMIC_ACQUIRE);
}

/* The worker's threads share one consumer; the tail in the mapping is the
** one they all advance (the worker trusts its own memory). */
static int pending_shared(const plexus_ring *r) {
    return atomic_load_explicit(&r->rx->head, memory_order_acquire) !=
           atomic_load_explicit(&r->rx->tail, memory_order_relaxed);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* vDSO: no system call, allowed in the worker */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The budget (ns) is advisory and may be adjusted by two worker threads at
** once: relaxed atomics, no lock. It doubles after a spin that paid and
** halves after one that did not, to zero below 250 ns. */
static int spin_for(plexus_ring *r, int (*ready)(const plexus_ring *)) {
    uint32_t budget = __atomic_load_n(&r->spin, __ATOMIC_RELAXED);
    if (budget == 0) {
        if (__atomic_add_fetch(&r->probes, 1, __ATOMIC_RELAXED) % 32 != 0) return 0;
        budget = SPIN_PROBE_NS;   /* has the peer moved to another core? */
    }
    uint64_t end = now_ns() + budget;
    for (uint32_t i = 1;; i++) {
        if (ready(r)) {
            __atomic_store_n(&r->spin, budget * 2 < SPIN_MAX_NS ? budget * 2 : SPIN_MAX_NS, __ATOMIC_RELAXED);
            return 1;
        }
        cpu_relax();
        if (i % 4 == 0 && now_ns() >= end) break;
    }
    __atomic_store_n(&r->spin, budget / 2 >= 250 ? budget / 2 : 0, __ATOMIC_RELAXED);
    return 0;
}

int plexus_ring_spin(plexus_ring *r) { return spin_for(r, plexus_ring_readable); }

void plexus_ring_set_sleeping(plexus_ring *r, int on) {
    if (on) {
        atomic_fetch_or_explicit(&r->rx->sleeping, PLEXUS_RING_POLLING, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);   /* flag set, then the caller's last look */
    } else {
        atomic_fetch_and_explicit(&r->rx->sleeping, ~PLEXUS_RING_POLLING, memory_order_relaxed);
    }
}

void plexus_ring_set_caller_waiting(plexus_ring *r, int on) {
    if (on) {
        atomic_fetch_add_explicit(&r->rx->sleeping, PLEXUS_RING_CALLER, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);   /* counted, then the caller's last look */
    } else {
        atomic_fetch_sub_explicit(&r->rx->sleeping, PLEXUS_RING_CALLER, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);   /* uncounted, then a look for bytes the worker left to a caller */
    }
}

void plexus_ring_set_blocked(plexus_ring *r, int on) {
    atomic_store_explicit(&r->tx->blocked, on ? 1u : 0u, memory_order_relaxed);
    if (on) atomic_thread_fence(memory_order_seq_cst);
}

/* Shared (not FUTEX_PRIVATE): the words live in a mapping of two processes. */
static void futex_wake(_Atomic uint32_t *w) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static void futex_wait(_Atomic uint32_t *w, uint32_t expected, int timeout_ms) {
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, timeout_ms < 0 ? NULL : &ts, NULL, 0);
}

void plexus_ring_wake_consumer(plexus_ring *r) {
    atomic_fetch_add_explicit(&r->tx->bell, 1, memory_order_release);
    futex_wake(&r->tx->bell);
}

void plexus_ring_wake_producer(plexus_ring *r) { futex_wake(&r->rx->tail); }

void plexus_ring_wait_bell(plexus_ring *r, uint32_t seen, int timeout_ms) { futex_wait(&r->rx->bell, seen, timeout_ms); }

void plexus_ring_wake_host(plexus_ring *r, uint32_t sleeping, int bell_fd) {
    if (sleeping >= PLEXUS_RING_CALLER) {   /* a caller reads its own answer: the I/O thread sleeps on */
        plexus_ring_wake_consumer(r);
        return;
    }
    uint64_t one = 1;
    (void)!write(bell_fd, &one, sizeof one);
}

void plexus_ring_kick(plexus_ring *r) {
    atomic_fetch_add_explicit(&r->rx->bell, 1, memory_order_release);
    futex_wake(&r->rx->bell);
}

uint32_t plexus_ring_bell(const plexus_ring *r) { return atomic_load_explicit(&r->rx->bell, memory_order_acquire); }

void plexus_ring_sleep(plexus_ring *r, uint32_t seen, int timeout_ms) {
    if (spin_for(r, pending_shared)) return;
    atomic_fetch_add_explicit(&r->rx->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);   /* counted, then the last look */
    if (!pending_shared(r)) futex_wait(&r->rx->bell, seen, timeout_ms);
    atomic_fetch_sub_explicit(&r->rx->sleeping, 1, memory_order_relaxed);
}

void plexus_ring_wait_room(plexus_ring *r, int timeout_ms) {
    uint32_t tail = atomic_load_explicit(&r->tx->tail, memory_order_acquire);
    if (r->tx_head - tail < r->capacity) return;
    atomic_fetch_add_explicit(&r->tx->blocked, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->tx->tail, memory_order_acquire) == tail) futex_wait(&r->tx->tail, tail, timeout_ms);
    atomic_fetch_sub_explicit(&r->tx->blocked, 1, memory_order_relaxed);
}

int plexus_ring_send_fds(int sock, int memfd, int bell) {
    int fds[2] = { memfd, bell };
    return plexus_fds_send(sock, 'R', fds, 2);
}

int plexus_ring_receive_fds(int sock, int *out_memfd, int *out_bell) {
    char tag = 0;
    int fds[2];
    int rc = plexus_fds_receive(sock, &tag, fds, 2);
    if (rc != 0) return rc < 0 ? EPROTO : rc;
    if (tag != 'R') { close(fds[0]); close(fds[1]); return EPROTO; }
    *out_memfd = fds[0];
    *out_bell = fds[1];
    return 0;
}

int plexus_ring_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

void plexus_ring_unmap(void *base, uint32_t capacity) { munmap(base, plexus_ring_size(capacity)); }
