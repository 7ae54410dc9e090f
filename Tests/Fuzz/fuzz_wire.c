/* libFuzzer target for the frame decoder: whatever bytes arrive on a channel
** or a socket, decoding must never crash, read out of bounds or accept a
** frame that does not re-encode to the same bytes. Built and run by run.sh. */
#include "plexus_wire.h"
#include "plexus_wire_internal.h"   /* private, compiled in: encode_valid for frames built here */
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t type;
    uint32_t body;
    if (plexus_wire_decode_header(data, size, plexus_wire_max_body(PLEXUS_MAX_PAYLOAD_LEN), &type, &body, NULL) != PLEXUS_OK)
        return 0;
    uint64_t total = (uint64_t)PLEXUS_WIRE_HEADER_LEN + body;
    if (total > size) return 0;
    /* Copy to an exact-size buffer so ASan sees any read past the frame. */
    uint8_t *frame = malloc(total);
    memcpy(frame, data, total);
    plexus_envelope e;
    if (plexus_wire_decode(frame, total, PLEXUS_MAX_PAYLOAD_LEN, &e, NULL) == PLEXUS_OK) {
        uint64_t n = plexus_wire_frame_size(&e);
        uint8_t *again = malloc(n);
        uint64_t len = 0;
        if (plexus_wire_encode(&e, PLEXUS_MAX_PAYLOAD_LEN, again, n, &len, NULL) != PLEXUS_OK) abort();
        if (len != total || memcmp(again, frame, total) != 0) abort();   /* decode then encode is the identity */
        plexus_envelope v;
        plexus_wire_view(frame, &v);
        if (v.payload_len != e.payload_len || strcmp(v.target, e.target) != 0) abort();
        free(again);
    }
    free(frame);
    return 0;
}
