/* plexus_stream — a streamed call from C (ABI 1.2): prints each partial
** answer as it arrives, then the final one.
**     plexus_stream [--socket PATH] TARGET PAYLOAD [TIMEOUT_MS [CANCEL_AFTER]]
** Prints "partial: <payload>" per partial and "final: <payload>" at the end,
** exit 0; an ERROR answer (EXPIRED past the deadline, CANCELLED after a
** cancel) prints "NAME: why" on stderr, exit 1. With CANCEL_AFTER it
** cancels the call after that many partials. Build as plexus_call.c. */
#include "plexus_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { plexus_id id; int seen, cancel_after; } progress;

static void on_partial(plexus_client *c, const plexus_answer *p, void *user) {
    progress *g = user;
    printf("partial: %.*s\n", (int)p->payload_len, p->payload);
    fflush(stdout);
    if (++g->seen == g->cancel_after) plexus_client_cancel(c, g->id);
}

int main(int argc, char **argv) {
    const char *socket_path = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--socket") == 0) { socket_path = argv[2]; i = 3; }
    if (i + 1 >= argc) { fprintf(stderr, "usage: plexus_stream [--socket PATH] TARGET PAYLOAD [TIMEOUT_MS [CANCEL_AFTER]]\n"); return 2; }
    const char *target = argv[i], *payload = argv[i + 1];
    uint32_t timeout_ms = i + 2 < argc ? (uint32_t)strtoul(argv[i + 2], NULL, 10) : 10000;
    progress g = { { 0, 0 }, 0, i + 3 < argc ? atoi(argv[i + 3]) : -1 };
    char err[512];
    plexus_client *c;
    if (plexus_client_connect(socket_path, &c, err, sizeof err) != PLEXUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
    plexus_status s = plexus_client_submit_stream(c, PLEXUS_TARGET_CAPABILITY, target, "application/json", payload, strlen(payload),
                                                  timeout_ms, on_partial, &g, &g.id);
    plexus_answer *a = NULL;
    if (s == PLEXUS_OK) s = plexus_client_wait(c, g.id, timeout_ms + 1000, &a);
    int rc = 0;
    if (s != PLEXUS_OK) { fprintf(stderr, "%s: %s\n", plexus_status_name(s), plexus_client_last_error(c)); rc = 1; }
    else if (a->status != PLEXUS_OK) { fprintf(stderr, "%s: %s\n", plexus_status_name(a->status), plexus_client_last_error(c)); rc = 1; }
    else printf("final: %.*s\n", (int)a->payload_len, a->payload);
    if (a) plexus_answer_free(a);
    plexus_client_close(c);
    return rc;
}
