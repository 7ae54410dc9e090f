/* find_ring.h — how a test plugin finds its worker's shared-memory ring
** (Sources/CPlexusInternal/include/plexus_ring.h) from inside the worker,
** for the fixtures that attack it (ringbreaker.c, ringattack.c).
**
** The plugin is given no handle on the ring and /proc is hidden, so it finds
** the mapping as any code in the worker could: it walks its own address
** space a page at a time outward from its own code, asking the kernel whether
** each page is readable (access() on the page fails with EFAULT when it is
** not, without a fault here), and looks for the ring's magic at a page start. */
#ifndef FIND_RING_H
#define FIND_RING_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define MAGIC 0x31474e4952584c50ull   /* "PLXRING1" */
#define HEADER 4096u
/* Offsets of the shared words (plexus_ring.h's layout). */
#define TO_WORKER_TAIL (64 + 64)
#define TO_HOST_HEAD 192
#define TO_HOST_BELL 196
#define TO_HOST_SLEEPING 200
#define TO_HOST_TAIL 256

static int readable(const char *page) { return !(access(page, F_OK) < 0 && errno == EFAULT); }

/* Outward from its own code, a page above then a page below: the loader may
** have put the plugin in a gap above the ring or below it. */
static uint8_t *find_ring(void) {
    uintptr_t start = (uintptr_t)&find_ring & ~(uintptr_t)4095;
    for (uintptr_t k = 1; k < (1u << 20); k++) {   /* 4 GiB either way */
        for (int side = 0; side < 2; side++) {
            uintptr_t a = side == 0 ? start + k * 4096 : start - k * 4096;
            const char *p = (const char *)a;
            if (!readable(p)) continue;
            uint64_t magic;
            uint32_t capacity;
            memcpy(&magic, p, 8);
            memcpy(&capacity, p + 8, 4);
            if (magic == MAGIC && capacity >= 4096 && (capacity & (capacity - 1)) == 0) return (uint8_t *)a;
        }
    }
    return NULL;
}

#endif
