#define _GNU_SOURCE
#include "channel.h"
#include "plexus_channel.h"
#include "plexus_ring.h"
#include "plexus_wire_internal.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int chan = -1;
static uint64_t max_payload;

/* Frames travel on the shared-memory ring (plexus_ring.h); the socket only
** brought it, and its end of file is how the host sees this process die. */
static plexus_ring ring;
static int bell_fd = -1;   /* eventfd: rings the host's I/O thread */

/* Input: bytes read but not yet consumed. */
static uint8_t *in;
static uint64_t in_len, in_cap, in_off;

/* Output: frames encoded but not yet written. */
static uint8_t *out;
static uint64_t out_len, out_cap;

void channel_init(int fd, uint64_t maxp) {
    chan = fd;
    max_payload = maxp;
}

uint64_t channel_payload_limit(void) { return max_payload; }

static void die(void) { _exit(PLEXUS_WORKER_EXIT_CHANNEL); }

void channel_attach_ring(void) {
    int memfd = -1;
    if (plexus_ring_receive_fds(chan, &memfd, &bell_fd) != 0) die();
    struct stat st;
    if (fstat(memfd, &st) != 0 || st.st_size <= 0) die();
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED) die();
    close(memfd);   /* the mapping stays; the plugin gets no handle on the file */
    if (plexus_ring_open(&ring, base, (uint64_t)st.st_size, 0, NULL) != 0) die();
}

static void ring_host(void) {
    uint64_t one = 1;
    (void)!write(bell_fd, &one, sizeof one);
}

static void grow(uint8_t **buf, uint64_t *cap, uint64_t need) {
    if (need <= *cap) return;
    uint64_t c = *cap ? *cap : 65536;
    while (c < need) c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p) die();
    *buf = p;
    *cap = c;
}

/* Takes whatever the host has published (sleeping for at least one byte
** when wait). Called with the caller's lock held, like every reader. */
static int fill(int wait) {
    if (in_off > 0 && in_off == in_len) in_off = in_len = 0;
    if (in_off > (1u << 20) && in_off * 2 > in_len) {   /* compact */
        memmove(in, in + in_off, in_len - in_off);
        in_len -= in_off;
        in_off = 0;
    }
    grow(&in, &in_cap, in_len + 65536);
    for (;;) {
        int wake = 0;
        uint32_t seen = plexus_ring_bell(&ring);
        int64_t n = plexus_ring_read(&ring, in + in_len, in_cap - in_len, &wake, NULL, 0);
        if (n < 0) die();
        if (wake) ring_host();   /* the host waits for room to write more */
        if (n > 0) { in_len += (uint64_t)n; return 1; }
        if (!wait) return 0;
        plexus_ring_sleep(&ring, seen, -1);   /* the host's death kills this process (PDEATHSIG) */
    }
}

int channel_has_input(void) { return in_len > in_off || plexus_ring_readable(&ring); }

uint32_t channel_bell(void) { return plexus_ring_bell(&ring); }
void channel_sleep(uint32_t seen) { plexus_ring_sleep(&ring, seen, -1); }
void channel_kick(void) { plexus_ring_kick(&ring); }

frame *channel_read(int wait) {
    for (;;) {
        uint64_t avail = in_len - in_off;
        if (avail >= PLEXUS_WIRE_HEADER_LEN) {
            uint8_t type;
            uint32_t body;
            const char *what = NULL;
            if (plexus_wire_decode_header(in + in_off, avail, plexus_wire_max_body(max_payload), &type, &body, &what) != PLEXUS_OK)
                die();
            uint64_t total = PLEXUS_WIRE_HEADER_LEN + (uint64_t)body;
            if (avail >= total) {
                frame *f = malloc(sizeof *f + total);
                if (!f) die();
                memcpy(f->bytes, in + in_off, total);
                in_off += total;
                f->len = total;
                f->next = NULL;
                if (plexus_wire_decode(f->bytes, total, max_payload, &f->env, &what) != PLEXUS_OK) die();
                return f;
            }
            grow(&in, &in_cap, in_off + total);
        }
        if (!fill(wait)) return NULL;
    }
}

void frame_free(frame *f) { free(f); }

plexus_status channel_queue(const plexus_envelope *e) {
    const char *what = NULL;
    plexus_status s = plexus_wire_validate(e, max_payload, &what);
    if (s != PLEXUS_OK) return s;
    uint64_t size = plexus_wire_frame_size(e);
    grow(&out, &out_cap, out_len + size);
    plexus_wire_encode_valid(e, out + out_len);
    out_len += size;
    return PLEXUS_OK;
}

int channel_has_output(void) { return out_len > 0; }

void channel_flush(void) {
    uint64_t off = 0;
    while (off < out_len) {
        int wake = 0;
        int64_t n = plexus_ring_write(&ring, out + off, out_len - off, &wake, NULL, 0);
        if (n < 0) die();
        if (wake) plexus_ring_wake_host(&ring, (uint32_t)wake, bell_fd);
        off += (uint64_t)n;
        if (off < out_len) plexus_ring_wait_room(&ring, 100);   /* full: the host drains it */
    }
    out_len = 0;
}

plexus_envelope control_envelope(const char *topic, const void *payload, uint64_t len) {
    plexus_envelope e = plexus_envelope_init();
    e.kind = PLEXUS_KIND_EVENT;
    e.target_kind = PLEXUS_TARGET_TOPIC;
    e.target = topic;
    e.payload = payload;
    e.payload_len = len;
    return e;
}

plexus_status channel_control(const char *topic, plexus_id correlation, int32_t status,
                              const void *payload, uint64_t len) {
    plexus_envelope e = control_envelope(topic, payload, len);
    e.correlation_id = correlation;
    e.status = status;
    return channel_queue(&e);
}
