/* plexus_serve — a C program outside the host that joins it as an agent or
** a subscriber.
**     plexus_serve [--socket PATH] serve NAME CAPABILITY COUNT
**         registers agent NAME providing CAPABILITY and answers COUNT queries
**         with their payload reversed (callback form: plexus_client_dispatch)
**     plexus_serve [--socket PATH] listen PATTERN COUNT
**         subscribes to PATTERN and prints COUNT events as "SUBJECT SENDER PAYLOAD"
**         (blocking form: plexus_client_receive)
** Prints "ready" once the host has taken the registration or subscription.
** Build:
**     cc -I include -I Sources/CPlexusInternal/include -I SDK/c SDK/c/examples/plexus_serve.c SDK/c/plexus_client.c \
**        Sources/CPlexus/wire.c -o plexus_serve */
#include "plexus_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reverse(plexus_client *c, const plexus_delivery *d, void *user) {
    int *answered = user;
    if (d->kind != PLEXUS_KIND_QUERY) return;
    char *out = malloc(d->payload_len + 1);
    if (!out) return;
    for (uint64_t i = 0; i < d->payload_len; i++) out[i] = (char)d->payload[d->payload_len - 1 - i];
    if (plexus_client_reply(c, d, PLEXUS_OK, "text/plain", out, d->payload_len) == PLEXUS_OK) (*answered)++;
    free(out);
}

static int fail(plexus_client *c, plexus_status s) {
    fprintf(stderr, "%s: %s\n", plexus_status_name(s), plexus_client_last_error(c));
    plexus_client_close(c);
    return 1;
}

int main(int argc, char **argv) {
    const char *socket_path = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--socket") == 0) { socket_path = argv[2]; i = 3; }
    int serve = argc - i == 4 && strcmp(argv[i], "serve") == 0;
    int listen = argc - i == 3 && strcmp(argv[i], "listen") == 0;
    if (!serve && !listen) {
        fprintf(stderr, "usage: plexus_serve [--socket PATH] serve NAME CAPABILITY COUNT | listen PATTERN COUNT\n");
        return 2;
    }
    char err[512];
    plexus_client *c;
    /* As a client of the host's plexus.yaml when $PLEXUS_CLIENT is set. */
    if (plexus_client_connect_as(socket_path, getenv("PLEXUS_CLIENT"), getenv("PLEXUS_TOKEN"), &c, err, sizeof err) != PLEXUS_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int count = atoi(argv[argc - 1]);
    plexus_status s;
    if (serve) {
        const char *caps[] = { argv[i + 2] };
        if ((s = plexus_client_register(c, argv[i + 1], caps, 1)) != PLEXUS_OK) return fail(c, s);
        printf("ready\n");
        fflush(stdout);
        int answered = 0;
        while (answered < count)
            if ((s = plexus_client_dispatch(c, 30000, reverse, &answered)) != PLEXUS_OK) return fail(c, s);
    } else {
        if ((s = plexus_client_subscribe(c, argv[i + 1])) != PLEXUS_OK) return fail(c, s);
        printf("ready\n");
        fflush(stdout);
        for (int n = 0; n < count; n++) {
            plexus_delivery *d;
            if ((s = plexus_client_receive(c, 30000, &d)) != PLEXUS_OK) return fail(c, s);
            printf("%s %s %.*s\n", d->target, d->sender, (int)d->payload_len, (const char *)d->payload);
            plexus_delivery_free(d);
        }
    }
    plexus_client_close(c);
    return 0;
}
