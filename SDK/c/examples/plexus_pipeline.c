/* plexus_pipeline — many queries in flight on one connection, from C.
**     plexus_pipeline [--socket PATH] TARGET N [WINDOW]
** Submits N queries to TARGET (a capability or agent:NAME that answers with
** the payload it got, like echo), keeping up to WINDOW (default N) in
** flight, and takes the answers in whatever order they come. Each payload
** is the query's number; an answer must carry the number of the query its
** id names, and every query must be answered exactly once. Prints
** "N answered, each once; M out of order" and exits 0, or exits 1 saying
** what went wrong. Build as plexus_call.c. */
#include "plexus_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *socket_path = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--socket") == 0) { socket_path = argv[2]; i = 3; }
    if (argc - i < 2) { fprintf(stderr, "usage: plexus_pipeline [--socket PATH] TARGET N [WINDOW]\n"); return 2; }
    const char *target = argv[i];
    long n = atol(argv[i + 1]), window = argc - i > 2 ? atol(argv[i + 2]) : n;
    if (n <= 0 || window <= 0) { fprintf(stderr, "N and WINDOW must be positive\n"); return 2; }
    plexus_target_kind kind = PLEXUS_TARGET_CAPABILITY;
    if (strncmp(target, "agent:", 6) == 0) { kind = PLEXUS_TARGET_AGENT; target += 6; }

    char err[512];
    plexus_client *c;
    if (plexus_client_connect_as(socket_path, getenv("PLEXUS_CLIENT"), getenv("PLEXUS_TOKEN"), &c, err, sizeof err) != PLEXUS_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    plexus_id *ids = calloc((size_t)n, sizeof *ids);
    char *seen = calloc((size_t)n, 1);
    long sent = 0, answered = 0, out_of_order = 0, expected = 0;
    int rc = 0;
    while (answered < n && rc == 0) {
        while (sent < n && sent - answered < window) {
            char body[32];
            int len = snprintf(body, sizeof body, "%ld", sent);
            plexus_status s = plexus_client_submit(c, kind, target, "application/json", body, (size_t)len, 30000, &ids[sent]);
            if (s != PLEXUS_OK) { fprintf(stderr, "submit %ld: %s: %s\n", sent, plexus_status_name(s), plexus_client_last_error(c)); rc = 1; break; }
            sent++;
        }
        if (rc) break;
        plexus_id id;
        plexus_answer *a;
        plexus_status s = plexus_client_wait_any(c, 30000, &id, &a);
        if (s != PLEXUS_OK) { fprintf(stderr, "wait: %s: %s\n", plexus_status_name(s), plexus_client_last_error(c)); rc = 1; break; }
        if (a->status != PLEXUS_OK) {
            fprintf(stderr, "answer: %s: %s\n", plexus_status_name(a->status), plexus_client_last_error(c));
            rc = 1;
        } else {
            long k = strtol((const char *)a->payload, NULL, 10);
            if (k < 0 || k >= sent || ids[k].hi != id.hi || ids[k].lo != id.lo) {
                fprintf(stderr, "the answer to request %llu carries %.*s, which is not its number\n",
                        (unsigned long long)id.lo, (int)a->payload_len, a->payload);
                rc = 1;
            } else if (seen[k]++) {
                fprintf(stderr, "request %ld was answered twice\n", k);
                rc = 1;
            } else if (k != expected++) {
                out_of_order++;
            }
        }
        plexus_answer_free(a);
        answered++;
    }
    if (rc == 0 && plexus_client_in_flight(c) != 0) { fprintf(stderr, "%zu requests still in flight\n", plexus_client_in_flight(c)); rc = 1; }
    if (rc == 0) printf("%ld answered, each once; %ld out of order\n", answered, out_of_order);
    free(ids);
    free(seen);
    plexus_client_close(c);
    return rc;
}
