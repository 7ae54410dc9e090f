#define _GNU_SOURCE
#include "plexus_fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int) * PLEXUS_FDPASS_MAX)]; } control;

int plexus_fds_send(int sock, char tag, const int *fds, int n) {
    if (n < 1 || n > PLEXUS_FDPASS_MAX) return EINVAL;
    control ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = { &tag, 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    ssize_t sent;
    do { sent = sendmsg(sock, &mh, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    return sent == 1 ? 0 : (sent < 0 ? errno : EIO);
}

int plexus_fds_receive(int sock, char *out_tag, int *fds, int n) {
    if (n < 1 || n > PLEXUS_FDPASS_MAX) return EINVAL;
    control ctl;
    struct iovec iov = { out_tag, 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = sizeof ctl.space;
    ssize_t got;
    do { got = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); } while (got < 0 && errno == EINTR);
    if (got == 0) return -1;
    if (got < 0) return errno;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return EPROTO;
    size_t held = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (held != (size_t)n) {
        /* Close what came rather than leak it. */
        int extra[PLEXUS_FDPASS_MAX];
        size_t k = held < PLEXUS_FDPASS_MAX ? held : PLEXUS_FDPASS_MAX;
        memcpy(extra, CMSG_DATA(c), sizeof(int) * k);
        for (size_t i = 0; i < k; i++) close(extra[i]);
        return EPROTO;
    }
    memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n);
    return 0;
}
