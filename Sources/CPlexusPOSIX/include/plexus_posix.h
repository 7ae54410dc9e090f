/* plexus_posix.h — the few POSIX/Linux calls Swift's Glibc module does not
** import (they need _GNU_SOURCE). Each returns -1 with errno set on failure. */
#ifndef PLEXUS_POSIX_H
#define PLEXUS_POSIX_H

#include <stdint.h>

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC). */
int plexus_posix_accept_cloexec(int fd);

/* The connected peer's credentials (SO_PEERCRED). */
int plexus_posix_peer_credentials(int fd, int32_t *out_pid, uint32_t *out_uid, uint32_t *out_gid);

#endif
