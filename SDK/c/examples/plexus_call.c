/* plexus_call — calls an agent in a running host from C and prints the reply.
**     plexus_call [--socket PATH] TARGET [PAYLOAD]
** TARGET is a capability ("echo"), agent:NAME or topic:SUBJECT (published,
** not called). Exits 0 with the reply on stdout, or 1 with the reason on
** stderr. With $PLEXUS_CLIENT (and $PLEXUS_TOKEN) set, it says hello as that
** client of the host's plexus.yaml first. With $PLEXUS_TRACEPARENT set (a
** W3C traceparent) the call joins that trace, and the answer's trace id is
** printed on stderr as "trace: <32 hex digits>". Build:
**     cc -I include -I Sources/CPlexusInternal/include -I SDK/c SDK/c/examples/plexus_call.c SDK/c/plexus_client.c \
**        Sources/CPlexus/wire.c -o plexus_call */
#include "plexus_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *socket_path = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--socket") == 0) { socket_path = argv[2]; i = 3; }
    if (i >= argc) { fprintf(stderr, "usage: plexus_call [--socket PATH] TARGET [PAYLOAD]\n"); return 2; }
    const char *target = argv[i];
    const char *payload = i + 1 < argc ? argv[i + 1] : "";
    plexus_target_kind kind = PLEXUS_TARGET_CAPABILITY;
    if (strncmp(target, "agent:", 6) == 0) { kind = PLEXUS_TARGET_AGENT; target += 6; }
    else if (strncmp(target, "topic:", 6) == 0) { kind = PLEXUS_TARGET_TOPIC; target += 6; }

    char err[512];
    plexus_client *c;
    /* As a client of the host's plexus.yaml when $PLEXUS_CLIENT is set. */
    if (plexus_client_connect_as(socket_path, getenv("PLEXUS_CLIENT"), getenv("PLEXUS_TOKEN"), &c, err, sizeof err) != PLEXUS_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char *tp = getenv("PLEXUS_TRACEPARENT");
    if (tp && plexus_client_set_traceparent(c, tp) != PLEXUS_OK) {
        fprintf(stderr, "$PLEXUS_TRACEPARENT: %s\n", plexus_client_last_error(c));
        plexus_client_close(c);
        return 2;
    }
    int rc = 0;
    if (kind == PLEXUS_TARGET_TOPIC) {
        plexus_status s = plexus_client_send(c, kind, target, "application/json", payload, strlen(payload), NULL);
        if (s != PLEXUS_OK) { fprintf(stderr, "%s: %s\n", plexus_status_name(s), plexus_client_last_error(c)); rc = 1; }
    } else {
        plexus_answer *a;
        plexus_status s = plexus_client_call(c, kind, target, "application/json", payload, strlen(payload), 10000, &a);
        if (s != PLEXUS_OK) { fprintf(stderr, "%s: %s\n", plexus_status_name(s), plexus_client_last_error(c)); rc = 1; }
        else if (a->status != PLEXUS_OK) { fprintf(stderr, "%s: %s\n", plexus_status_name(a->status), plexus_client_last_error(c)); rc = 1; }
        else printf("%.*s\n", (int)a->payload_len, a->payload);
        if (s == PLEXUS_OK && tp) {
            plexus_id t = plexus_answer_trace_id(a);
            fprintf(stderr, "trace: %016llx%016llx\n", (unsigned long long)t.hi, (unsigned long long)t.lo);
        }
        if (s == PLEXUS_OK) plexus_answer_free(a);
    }
    plexus_client_close(c);
    return rc;
}
