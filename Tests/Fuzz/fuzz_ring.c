/* libFuzzer target for the host's side of a worker's shared-memory ring
** (plexus_ring.h): the worker owns every word of the mapping, so the input
** plays the worker, setting the ring's indices, flags and bytes to anything
** between the host's reads and writes. The host's reads must never copy more
** than was asked or than the ring holds, never read or write outside the
** mapping, report a bad index instead of trusting it, and the frames taken
** out go through the same decoder as a socket's. Built and run by run.sh. */
#include "plexus_ring.h"
#include "plexus_wire.h"
#include "plexus_wire_internal.h"
#include <stdlib.h>
#include <string.h>

#define CAP 4096u
/* Offsets in the mapping (plexus_ring.h): the worker's words. */
#define TO_WORKER 64
#define TO_HOST 192
#define HEAD 0
#define SLEEPING 8
#define TAIL 64
#define BLOCKED 68

static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void set32(uint8_t *base, size_t off, uint32_t v) { memcpy(base + off, &v, 4); }

/* What the host does with bytes it took: whole frames are decoded; a bad
** header ends the stream, as it kills the worker. */
static uint8_t stream[8 * CAP];
static size_t stream_len;
static int stream_dead;

static void take(const uint8_t *p, size_t n) {
    if (stream_dead) return;
    if (n > sizeof stream - stream_len) { stream_dead = 1; return; }
    memcpy(stream + stream_len, p, n);
    stream_len += n;
    for (;;) {
        uint8_t type;
        uint32_t body;
        if (stream_len < PLEXUS_WIRE_HEADER_LEN) return;
        if (plexus_wire_decode_header(stream, stream_len, plexus_wire_max_body(PLEXUS_MAX_PAYLOAD_LEN), &type, &body, NULL) != PLEXUS_OK) {
            stream_dead = 1;
            return;
        }
        uint64_t total = (uint64_t)PLEXUS_WIRE_HEADER_LEN + body;
        if (total > stream_len) { if (total > sizeof stream) stream_dead = 1; return; }
        uint8_t *frame = malloc(total);   /* exact size: ASan sees a read past it */
        memcpy(frame, stream, total);
        plexus_envelope e;
        (void)plexus_wire_decode(frame, total, PLEXUS_MAX_PAYLOAD_LEN, &e, NULL);
        free(frame);
        memmove(stream, stream + total, stream_len - total);
        stream_len -= total;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t map_size = plexus_ring_size(CAP);
    uint8_t *base = aligned_alloc(4096, map_size);
    if (!base) return 0;
    memset(base, 0, map_size);
    uint64_t magic = PLEXUS_RING_MAGIC;
    memcpy(base, &magic, 8);
    set32(base, 8, CAP);
    plexus_ring r;
    if (plexus_ring_open(&r, base, map_size, 1, NULL) != 0) abort();
    stream_len = 0;
    stream_dead = 0;
    char why[200];
    uint8_t out[CAP + 64];
    /* Each step: an op byte, then its operands. */
    size_t i = 0;
    while (i + 5 <= size) {
        uint8_t op = data[i] % 6;
        uint32_t v = u32(data + i + 1);
        i += 5;
        switch (op) {
        case 0: set32(base, TO_HOST + HEAD, v); break;                     /* the worker's write index */
        case 1: set32(base, TO_WORKER + TAIL, v); break;                   /* the worker's read index */
        case 2: set32(base, TO_HOST + BLOCKED, v); set32(base, TO_WORKER + SLEEPING, v >> 16); break;
        case 3: {                                                          /* bytes into the data area */
            size_t n = v % 512;
            if (n > size - i) n = size - i;
            uint8_t *area = base + PLEXUS_RING_HEADER + CAP;
            size_t at = (v >> 9) % CAP;
            for (size_t k = 0; k < n; k++) area[(at + k) % CAP] = data[i + k];
            i += n;
            break;
        }
        case 4: {                                                          /* the host reads */
            uint64_t max = v % (CAP + 64);
            uint32_t before = r.rx_tail;
            int wake = 0;
            uint8_t *dst = malloc(max ? max : 1);
            int64_t n = plexus_ring_read(&r, dst, max, &wake, why, sizeof why);
            if (n < -1 || (n >= 0 && ((uint64_t)n > max || (uint64_t)n > CAP))) abort();
            if (n < 0 && r.rx_tail != before) abort();                     /* a refused read takes nothing */
            if (n >= 0 && r.rx_tail != before + (uint32_t)n) abort();
            if (n > 0) take(dst, (size_t)n);
            free(dst);
            break;
        }
        case 5: {                                                          /* the host writes */
            uint64_t n = v % sizeof out;
            memset(out, 0x5a, n);
            uint32_t before = r.tx_head;
            int wake = 0;
            int64_t k = plexus_ring_write(&r, out, n, &wake, why, sizeof why);
            if (k < -1 || (k >= 0 && (uint64_t)k > n)) abort();
            if (k >= 0 && r.tx_head != before + (uint32_t)k) abort();
            if (k < 0 && r.tx_head != before) abort();
            break;
        }
        }
        (void)plexus_ring_readable(&r);
    }
    free(base);
    return 0;
}
