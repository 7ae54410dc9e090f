/*
** plexus_wire_internal.h — the codec's unchecked entry points, for code
** that built or already checked the frame itself: the host, the worker and
** the C client library. Private: not installed, never given to plugins or
** clients (a wrong call reads or writes out of bounds). Defined in
** Sources/CPlexus/wire.c.
*/
#ifndef PLEXUS_WIRE_INTERNAL_H
#define PLEXUS_WIRE_INTERNAL_H

#include "plexus_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Encode e, which must have passed plexus_wire_validate, into buf, which
** must hold plexus_wire_frame_size(e) bytes. Returns the frame size. For a
** host that validates once and encodes straight after; no check is repeated. */
uint64_t plexus_wire_encode_valid(const plexus_envelope *e, uint8_t *buf);

/* Fill *out from a frame that already passed plexus_wire_decode or was made
** by plexus_wire_encode in this process, without checking anything again.
** Never call it on bytes that came from outside: use plexus_wire_decode.
** Pointers in *out point into frame, as with plexus_wire_decode. */
void plexus_wire_view(const uint8_t *frame, plexus_envelope *out);

/* The bytes plexus_wire_validate accepts in a name (sender, target) and in
** a content type: 1 when c may appear. For saying where a refused one goes wrong. */
int plexus_wire_name_byte_ok(unsigned char c);
int plexus_wire_content_type_byte_ok(unsigned char c);

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_WIRE_INTERNAL_H */
