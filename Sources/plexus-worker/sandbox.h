/* The worker's own confinement, applied before the plugin's bytes are mapped. */
#ifndef PLEXUS_WORKER_SANDBOX_H
#define PLEXUS_WORKER_SANDBOX_H

#include <stdint.h>

typedef struct worker_limits {
    uint64_t address_space;   /* RLIMIT_AS bytes, 0 = unlimited            */
    uint64_t cpu_soft;        /* RLIMIT_CPU seconds: SIGXCPU first          */
    uint64_t cpu_hard;        /*   then SIGKILL; 0 = unlimited              */
    uint64_t open_files;      /* RLIMIT_NOFILE, 0 = leave as is             */
    uint64_t file_size;       /* RLIMIT_FSIZE bytes, 0 = unlimited          */
} worker_limits;

/* Applies rlimits, RLIMIT_CORE=0, no-new-privileges, non-dumpable, and the
** seccomp allowlist the host compiled (read from filter_fd, plexus_filter.h;
** closed). Returns NULL, or a static text naming what failed. */
const char *sandbox_apply(const worker_limits *l, int filter_fd);

/* The system calls refused since the last call, as a comma-separated list
** of names in buf (empty when none). Safe to call from the main loop only. */
void sandbox_take_denied(char *buf, uint64_t cap);

#endif
