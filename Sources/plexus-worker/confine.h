/* What a worker can see and who it is: user, mount, network and IPC
** namespaces, an empty root with only what the plugin needs, Landlock, and no
** capabilities. Applied before any thread starts and before the plugin's
** bytes are mapped; the syscall filter (sandbox.c) comes after it. */
#ifndef PLEXUS_WORKER_CONFINE_H
#define PLEXUS_WORKER_CONFINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFINE_PATHS_MAX 64

typedef struct confine_spec {
    int rlimits_only_ok;      /* may run without namespaces and Landlock     */
    int network;              /* keep the host's network (no new netns)      */
    int netns_fd;             /* +1: a namespace to join instead (0: none)    */
    uint64_t tmp_size;        /* bytes of the private /tmp                   */
    const char *read[CONFINE_PATHS_MAX];   /* bound read-only (and executable) */
    int n_read;
    const char *write[CONFINE_PATHS_MAX];  /* bound read-write               */
    int n_write;
    int without_namespaces;   /* tests: act as if the kernel refused them    */
    int without_landlock;     /* tests: act as if Landlock were missing      */
} confine_spec;

/* Where the plugin image (the sealed memfd) appears inside the new root. */
#define CONFINE_PLUGIN_DIR "/.plexus"
#define CONFINE_PLUGIN_PATH CONFINE_PLUGIN_DIR "/plugin.so"

/* Confines the calling process (single-threaded, still root or its own
** user) in two steps. confine_prepare needs no plugin: it enters the
** namespaces and builds the new root (sized for image_size bytes of image)
** and pivots into it; a warm worker does this before its image arrives.
** confine_finish copies the image in, makes the root read-only, becomes
** nobody and adds Landlock. parent is the host's pid, re-checked after the
** credential change. On success *mechanism names what runs
** ("mount-namespace+landlock", "mount-namespace", "landlock",
** "rlimits-only") and *plugin_path where to dlopen the plugin. Each returns
** NULL, or a static text saying exactly what failed and why (the host
** reports it). */
const char *confine_prepare(const confine_spec *s, uint64_t image_size);
const char *confine_finish(const confine_spec *s, int plugin_fd, pid_t parent,
                           const char **mechanism, const char **plugin_path);

/* Drops every capability (bounding, ambient, inheritable, permitted,
** effective) and locks root out of regaining them. Last step before seccomp. */
const char *confine_drop_capabilities(void);

#endif
