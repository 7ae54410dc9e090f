/* natspeer — a hostile NATS client for the cluster tests: publishes one
** envelope frame (a COMMAND to a capability) on a subject of its choosing,
** as a peer host that knows the subject layout might.
**     natspeer URL SUBJECT CAPABILITY SENDER PAYLOAD */
#include "plexus.h"
#include "plexus_wire.h"
#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: natspeer URL SUBJECT CAPABILITY SENDER PAYLOAD\n"); return 2; }
    plexus_envelope e = plexus_envelope_init();
    e.kind = PLEXUS_KIND_COMMAND;
    e.target_kind = PLEXUS_TARGET_CAPABILITY;
    e.target = argv[3];
    e.sender = argv[4];
    e.content_type = "application/json";
    e.payload = (const uint8_t *)argv[5];
    e.payload_len = strlen(argv[5]);
    e.id.lo = 1;
    uint8_t frame[4096];
    uint64_t len = 0;
    const char *what = NULL;
    if (plexus_wire_encode(&e, 4096, frame, sizeof frame, &len, &what) != PLEXUS_OK) { fprintf(stderr, "encode: %s\n", what); return 1; }
    natsConnection *nc = NULL;
    if (natsConnection_ConnectTo(&nc, argv[1]) != NATS_OK) { fprintf(stderr, "cannot connect to %s\n", argv[1]); return 1; }
    natsStatus s = natsConnection_Publish(nc, argv[2], frame, (int)len);
    if (s == NATS_OK) s = natsConnection_Flush(nc);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : 1;
}
