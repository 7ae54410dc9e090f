#define _GNU_SOURCE
#include "plexus_loop.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>

int plexus_loop_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int plexus_loop_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int plexus_loop_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev = {0};
    if (events & PLEXUS_LOOP_IN) ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & PLEXUS_LOOP_OUT) ev.events |= EPOLLOUT;
    ev.data.u64 = token;
    int o = op == 0 ? EPOLL_CTL_ADD : op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    return epoll_ctl(epfd, o, fd, &ev);
}

int plexus_loop_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t e = 0;
        /* A peer that shut its writing side is read to its end of file. */
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP)) e |= PLEXUS_LOOP_IN;
        if (evs[i].events & EPOLLOUT) e |= PLEXUS_LOOP_OUT;
        /* Reported even when not asked for: the connection is gone. */
        if (evs[i].events & (EPOLLHUP | EPOLLERR)) e |= PLEXUS_LOOP_HUP;
        tokens[i] = evs[i].data.u64;
        events[i] = e;
    }
    return n;
}

int plexus_loop_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int plexus_loop_raise_nofile(uint64_t *out_old, uint64_t *out_new) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return -1;
    *out_old = r.rlim_cur;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &r) != 0) return -1;
    }
    *out_new = r.rlim_cur;
    return 0;
}
