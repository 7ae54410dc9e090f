#define _GNU_SOURCE
#include "plexus_posix.h"

#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

void plexus_posix_name_thread(const char *name) {
    char cut[16];
    strncpy(cut, name, sizeof cut - 1);
    cut[sizeof cut - 1] = 0;
    prctl(PR_SET_NAME, cut, 0, 0, 0);
}

int plexus_posix_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

int plexus_posix_peer_credentials(int fd, int32_t *out_pid, uint32_t *out_uid, uint32_t *out_gid) {
    struct ucred c;
    socklen_t len = sizeof c;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return -1;
    if (out_pid) *out_pid = c.pid;
    if (out_uid) *out_uid = c.uid;
    if (out_gid) *out_gid = c.gid;
    return 0;
}
