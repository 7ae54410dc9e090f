/*
** plexus_wire.h — the one wire format for plexus_envelope.
**
** Every transport (worker IPC, the host's Unix socket, NATS) carries the same
** frames, produced and checked by these functions. Plugins never need this
** header; hosts, clients and SDKs do. Every function here checks what it is
** given; the host's unchecked fast paths are in its private
** plexus_wire_internal.h (Sources/CPlexusInternal), not installed.
**
** FRAME (all integers little-endian)
**
**   offset size  field
**   0      4     magic "PLXF"
**   4      1     version (PLEXUS_WIRE_VERSION)
**   5      1     frame type (plexus_frame_type)
**   6      2     reserved, 0
**   8      4     body length in bytes (after this 12-byte header)
**
** ENVELOPE BODY (frame type PLEXUS_FRAME_ENVELOPE)
**
**   0   1  kind          1  1 target_kind   2  1 priority   3  1 flags
**   4   4  status (int32)
**   8  16  id (hi, lo)   24 16 correlation_id   40 16 trace_id
**   56  8  deadline_unix_ns (int64)
**   64  2  sender length S     66 2 target length T
**   68  2  content type length C    70 2 reserved (0)
**   72  4  payload length P
**   76     sender[S] NUL  target[T] NUL  content_type[C] NUL  payload[P]
**
** flags: bit 0 is PLEXUS_FLAG_MORE (wire 1.2 of the ABI: a partial answer,
** valid on a RESPONSE only; more answers to the same correlation_id
** follow). Every other bit must be 0: a frame with one set, or with MORE
** on another kind, is refused (MALFORMED_FRAME), as before. kind 5 is
** PLEXUS_KIND_CANCEL (see plexus.h).
**
** The body length must equal 76 + S+1 + T+1 + C+1 + P exactly. Each string is
** followed by a NUL and contains none, so a decoded envelope points straight
** into the frame: decoding allocates nothing and copies nothing.
*/
#ifndef PLEXUS_WIRE_H
#define PLEXUS_WIRE_H

#include "plexus.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PLEXUS_WIRE_MAGIC        0x46584C50u /* "PLXF" read as little-endian */
#define PLEXUS_WIRE_VERSION      1u
#define PLEXUS_WIRE_HEADER_LEN   12u
#define PLEXUS_WIRE_ENVELOPE_FIXED_LEN 76u

typedef enum plexus_frame_type {
    PLEXUS_FRAME_ENVELOPE = 1  /* body is one encoded envelope */
} plexus_frame_type;

/* The largest body an envelope with a payload of max_payload bytes can need. */
static inline uint64_t plexus_wire_max_body(uint64_t max_payload) {
    return PLEXUS_WIRE_ENVELOPE_FIXED_LEN + 3u * (PLEXUS_MAX_NAME_LEN + 1u) + max_payload;
}

/* Check every field of e as a sender would submit it: enumerations in range,
** flags zero but for PLEXUS_FLAG_MORE on a RESPONSE, strings no longer than PLEXUS_MAX_NAME_LEN and made of allowed
** characters, target present unless target_kind is REPLY, payload_len <=
** max_payload and payload non-NULL when payload_len > 0. On failure returns
** INVALID_ARGUMENT or TOO_LARGE and sets *out_what (if non-NULL) to a static
** string naming the field and the problem. e is borrowed. */
plexus_status plexus_wire_validate(const plexus_envelope *e, uint64_t max_payload,
                                   const char **out_what);

/* The exact size of e's frame, header included. e must have passed
** plexus_wire_validate. */
uint64_t plexus_wire_frame_size(const plexus_envelope *e);

/* Validate e, then encode it as one frame into buf (cap bytes, borrowed).
** On success *out_len is the frame size. TOO_LARGE when cap is too small
** (*out_len then holds the size needed). Nothing is written on failure. */
plexus_status plexus_wire_encode(const plexus_envelope *e, uint64_t max_payload,
                                 uint8_t *buf, uint64_t cap, uint64_t *out_len,
                                 const char **out_what);

/* Check the 12-byte frame header at buf (len bytes available, borrowed):
** magic, version, known type, reserved zero, and body length <= max_body.
** Call this before allocating room for the body. On success sets *out_type
** and *out_body_len. MALFORMED_FRAME (or TOO_LARGE for the length) with
** *out_what naming the problem otherwise; INVALID_ARGUMENT if len < 12. */
plexus_status plexus_wire_decode_header(const uint8_t *buf, uint64_t len, uint64_t max_body,
                                        uint8_t *out_type, uint32_t *out_body_len,
                                        const char **out_what);

/* Decode one whole envelope frame (header + body, exactly len bytes) into
** *out. Every pointer in *out points into frame, so *out is valid only while
** frame is. Validates the header, every length against the body, NUL
** terminators, and every field as plexus_wire_validate does. */
plexus_status plexus_wire_decode(const uint8_t *frame, uint64_t len, uint64_t max_payload,
                                 plexus_envelope *out, const char **out_what);

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_WIRE_H */
