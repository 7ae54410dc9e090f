#define _GNU_SOURCE
#include "channel.h"
#include "plexus_channel.h"
#include "plexus_wire_internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int chan = -1;
static uint64_t max_payload;

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

static void grow(uint8_t **buf, uint64_t *cap, uint64_t need) {
    if (need <= *cap) return;
    uint64_t c = *cap ? *cap : 65536;
    while (c < need) c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p) die();
    *buf = p;
    *cap = c;
}

/* Reads whatever is available (blocking for at least one byte when wait). */
static int fill(int wait) {
    if (in_off > 0 && in_off == in_len) in_off = in_len = 0;
    if (in_off > (1u << 20) && in_off * 2 > in_len) {   /* compact */
        memmove(in, in + in_off, in_len - in_off);
        in_len -= in_off;
        in_off = 0;
    }
    grow(&in, &in_cap, in_len + 65536);
    for (;;) {
        ssize_t n = recv(chan, in + in_len, in_cap - in_len, wait ? 0 : MSG_DONTWAIT);
        if (n > 0) { in_len += (uint64_t)n; return 1; }
        if (n == 0) die();                       /* the host went away */
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        die();
    }
}

int channel_has_input(void) {
    if (in_len > in_off) return 1;
    struct pollfd p = { chan, POLLIN, 0 };
    return poll(&p, 1, 0) > 0;
}

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
        ssize_t n = send(chan, out + off, out_len - off, MSG_NOSIGNAL);
        if (n > 0) { off += (uint64_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { chan, POLLOUT, 0 };
            poll(&p, 1, -1);
            continue;
        }
        die();
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
