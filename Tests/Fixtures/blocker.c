/* blocker — test.block takes a file path: when no file is there it answers
** "quick" at once; otherwise it writes the name of the thread it runs on
** into PATH.started and answers that name only once PATH is gone. Used to
** hold an agent in its handler for as long as a test wants, and to see
** which thread of the host ran it (plexus-socket: the socket's event loop). */
#define _GNU_SOURCE
#include "plexus_agent.h"
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static plexus_status handle(const plexus_envelope *m) {
    if (!plexus_is(m, "test.block")) return PLEXUS_UNSUPPORTED;
    char path[512];
    if (m->payload_len >= sizeof path - 16) return plexus_reply_error(m, PLEXUS_TOO_LARGE, "the path is too long");
    memcpy(path, m->payload, m->payload_len);
    path[m->payload_len] = 0;
    if (access(path, F_OK) != 0) return plexus_reply(m, "text/plain", "quick", 5);
    char name[16] = "?", started[560];
    pthread_getname_np(pthread_self(), name, sizeof name);
    snprintf(started, sizeof started, "%s.started", path);
    FILE *f = fopen(started, "w");
    if (f) { fputs(name, f); fclose(f); }
    struct timespec tick = { 0, 1000000 };
    while (access(path, F_OK) == 0) nanosleep(&tick, NULL);
    return plexus_reply(m, "text/plain", name, strlen(name));
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY("test.block", "answers once the file named by the payload is gone") };
PLEXUS_AGENT("blocker", "1.0.0", caps, handle)
