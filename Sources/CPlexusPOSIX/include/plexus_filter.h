/* plexus_filter.h — the worker's seccomp filter as the host compiles it and
** the worker installs it. Shared by the host (CPlexusPOSIX/filter.c) and the
** worker (plexus-worker/sandbox.c), which reads it from descriptor 5.
**
** Layout of the sealed memfd: a header, n_patches instruction indexes (u32),
** then n_insns struct sock_filter. At each patched index is a BPF_JEQ|BPF_K
** comparing an argument with placeholder; the worker sets k to its pid. */
#ifndef PLEXUS_FILTER_H
#define PLEXUS_FILTER_H

#include <stdint.h>

#define PLEXUS_FILTER_MAGIC 0x46425850u   /* "PXBF" */
#define PLEXUS_FILTER_MAX_INSNS 4096      /* BPF_MAXINSNS */
#define PLEXUS_FILTER_MAX_PATCHES 64

typedef struct plexus_filter_header {
    uint32_t magic;
    uint32_t n_insns;
    uint32_t n_patches;
    uint32_t placeholder;
} plexus_filter_header;

/* What a plugin's syscalls: grants add to the base allowlist. */
typedef struct plexus_filter_grants {
    int allow_fork, allow_exec, allow_socket, allow_ptrace;
    const char *const *extra;   /* further calls by name */
    int n_extra;
} plexus_filter_grants;

/* Compiles the filter for g (libseccomp, twice, to locate the pid rules)
** into a sealed memfd (close-on-exec) and returns it, or -1 with errno set
** and *out_what naming the step that failed. */
int plexus_posix_filter_build(const plexus_filter_grants *g, const char **out_what);

#endif
