/* plexus_posix.h — the few POSIX/Linux calls Swift's Glibc module does not
** import (they need _GNU_SOURCE). Each returns -1 with errno set on failure. */
#ifndef PLEXUS_POSIX_H
#define PLEXUS_POSIX_H

#include <stdint.h>

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC). */
int plexus_posix_accept_cloexec(int fd);

/* The connected peer's credentials (SO_PEERCRED). */
int plexus_posix_peer_credentials(int fd, int32_t *out_pid, uint32_t *out_uid, uint32_t *out_gid);

/* Copies the regular file at path (at most max_bytes) into a sealed memfd
** (no write, grow, shrink or further seals), so the bytes a worker loads
** never change, whatever happens to the file afterwards. Computes the
** copy's SHA-256 into out_sha256 (32 bytes). Returns the descriptor
** (close-on-exec), or -1 with errno set and *out_what naming the problem. */
int plexus_posix_sealed_copy(const char *path, uint64_t max_bytes, uint8_t out_sha256[32],
                             const char **out_what);

/* SHA-256 of len bytes. */
void plexus_sha256(const uint8_t *data, uint64_t len, uint8_t out[32]);

/* Starts the worker helper at exe with argv (NULL-terminated) via
** posix_spawn: channel_fd becomes its descriptor 3 and plugin_fd its
** descriptor 4, stdout_fd/stderr_fd its 1 and 2, /dev/null its 0; every
** other descriptor is closed. It gets its own process group and default
** signal dispositions and mask. Returns 0 and *out_pid, or an errno value. */
int plexus_posix_spawn_worker(const char *exe, char *const argv[], int channel_fd, int plugin_fd,
                              int stdout_fd, int stderr_fd, int32_t *out_pid);

/* As plexus_posix_spawn_worker, with filter_fd (the seccomp filter the host
** compiled, plexus_filter.h) on descriptor 5 as well. */
int plexus_posix_spawn_worker_filtered(const char *exe, char *const argv[], int channel_fd, int plugin_fd,
                                       int filter_fd, int stdout_fd, int stderr_fd, int32_t *out_pid);

/* As plexus_posix_spawn_worker_filtered, with netns_fd (a network
** namespace the worker joins instead of creating its own) on descriptor 6;
** netns_fd -1: none, as plexus_posix_spawn_worker_filtered. */
int plexus_posix_spawn_worker_netns(const char *exe, char *const argv[], int channel_fd, int plugin_fd, int filter_fd,
                                    int netns_fd, int stdout_fd, int stderr_fd, int32_t *out_pid);

/* A new, empty network namespace (its loopback down), held by the returned
** descriptor (O_CLOEXEC); -1 when it cannot be made (no CAP_SYS_ADMIN). */
int plexus_posix_empty_netns(void);

/* pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)). */
int plexus_posix_pipe(int fds[2], int nonblocking);

/* socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): the channel to a worker. */
int plexus_posix_channel(int fds[2]);

/* waitpid(pid, WNOHANG when !block) decoded: returns the pid, 0 when still
** running, -1 on error. *out_code is the exit code or the signal number,
** *out_signaled says which, *out_core whether a core was dumped. */
int32_t plexus_posix_wait(int32_t pid, int block, int32_t *out_code, int32_t *out_signaled, int32_t *out_core);

/* The same, waiting at most timeout_ms for the child to exit (a pidfd
** becomes readable when it does): its exit is seen the moment it happens,
** not at the next tick of a polling loop. Returns 0 when it still runs. */
int32_t plexus_posix_wait_within(int32_t pid, int timeout_ms, int32_t *out_code, int32_t *out_signaled, int32_t *out_core);

/* Receives up to len bytes into buf. A message carrying descriptors
** (SCM_RIGHTS) has them closed at once and returns -2: a channel never
** accepts descriptors. Otherwise as recv(2). */
long plexus_posix_recv_nofds(int fd, void *buf, uint64_t len);

/* Pins a thread or process (0 = the calling thread) to one CPU, or back to
** every CPU when cpu < 0. For benchmarks that measure "on one core". */
int plexus_posix_pin(int32_t pid, int cpu);

/* Names the calling thread for `top -H`, `ps -L`, perf and gdb (the
** kernel keeps the first 15 bytes; longer names are cut, not refused). */
void plexus_posix_name_thread(const char *name);

/* The native number of the system call called name, or -1 if this
** architecture has none (libseccomp's table, as the worker's filter). */
int plexus_posix_syscall_number(const char *name);

#endif
