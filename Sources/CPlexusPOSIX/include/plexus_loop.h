/* plexus_loop.h — epoll, eventfd and the descriptor limit for the socket
** server's event loop (Swift's Glibc module imports epoll_event, a packed
** struct, unreliably). Each returns -1 with errno set on failure. */
#ifndef PLEXUS_LOOP_H
#define PLEXUS_LOOP_H

#include <stdint.h>

/* Interest and readiness bits. */
#define PLEXUS_LOOP_IN 1u
#define PLEXUS_LOOP_OUT 2u
#define PLEXUS_LOOP_HUP 4u

/* epoll_create1(EPOLL_CLOEXEC). */
int plexus_loop_create(void);

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
int plexus_loop_eventfd(void);

/* epoll_ctl: op 0 adds, 1 modifies, 2 removes fd; events is IN|OUT
** (level-triggered), token comes back from plexus_loop_wait. */
int plexus_loop_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);

/* epoll_wait for up to max events (at most 256): tokens[i] and events[i]
** (IN|OUT|HUP) for each. Returns how many, 0 on timeout (-1 = forever). */
int plexus_loop_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK). */
int plexus_loop_accept(int fd);

/* Raises RLIMIT_NOFILE's soft limit to its hard limit; *out_old and
** *out_new are the soft limit before and after. */
int plexus_loop_raise_nofile(uint64_t *out_old, uint64_t *out_new);

#endif
