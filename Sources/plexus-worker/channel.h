/* The worker's end of its channel to the host: whole envelope frames in,
** buffered frames out. Every frame is validated before use. */
#ifndef PLEXUS_WORKER_CHANNEL_H
#define PLEXUS_WORKER_CHANNEL_H

#include "plexus.h"
#include <stdint.h>

/* One received frame, owned by the caller (free with frame_free). */
typedef struct frame {
    struct frame *next;
    uint64_t len;
    plexus_envelope env;   /* pointers into bytes */
    uint8_t bytes[];
} frame;

void channel_init(int fd, uint64_t max_payload);
/* Receives the shared-memory ring the host sends over the socket right after
** spawning (plexus_ring.h) and maps it; exits on failure. Before the filter. */
void channel_attach_ring(void);
/* The host's payload limit (--max-payload), which the host functions' checks use. */
uint64_t channel_payload_limit(void);

/* Reads the next frame, waiting for it when wait is set; NULL when none is
** ready (wait == 0). On end-of-file or a malformed frame the worker exits:
** the host owns the other end and never sends garbage. */
frame *channel_read(int wait);
void frame_free(frame *f);

/* Appends an encoded envelope to the output buffer; 0 on success, else a
** status (the envelope failed validation). */
plexus_status channel_queue(const plexus_envelope *e);
/* Writes everything buffered. */
void channel_flush(void);
/* True when output is buffered and not yet written. */
int channel_has_output(void);

/* A control envelope (kind EVENT to a PLEXUS_CONTROL_* topic) carrying payload (borrowed). */
plexus_envelope control_envelope(const char *topic, const void *payload, uint64_t len);

/* A control frame: topic = one of PLEXUS_CONTROL_*, with an optional payload. */
plexus_status channel_control(const char *topic, plexus_id correlation, int32_t status,
                              const void *payload, uint64_t len);

/* True when a whole frame, or some bytes of one, are waiting unread. */
int channel_has_input(void);

/* Sleeping for input without the lock: read the bell under the lock, release
** it, then sleep until the host publishes or channel_kick moves the bell. */
uint32_t channel_bell(void);
void channel_sleep(uint32_t seen);
/* Wakes the thread in channel_sleep (another thread queued work for it). */
void channel_kick(void);

#endif
