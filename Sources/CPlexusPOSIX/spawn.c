/* Starting worker processes and talking to them: the parts of posix_spawn,
** pipe2, socketpair, waitpid and recvmsg that Swift cannot call directly. */
#define _GNU_SOURCE
#include "plexus_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Spawns exe with from[i] on descriptor to[i] (n of them, targets 0..top-1
** at most) and every other descriptor closed. */
static int spawn_placed(const char *exe, char *const argv[], const int *from, const int *to, int n, int top,
                        int32_t *out_pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) return rc;
    posix_spawnattr_init(&at);
    /* Each source is first copied, in the parent, to a fresh descriptor above
    ** every source and every target (0 to top-1). The child's dup2 sequence then
    ** reads only those copies, so no placement of the sources (a source
    ** already on 1, 3, 4, or on another's target) can clobber one before it is
    ** read. dup2 clears close-on-exec on the targets; closefrom drops the copies. */
    int floor = top;
    for (int i = 0; i < n; i++) if (from[i] >= floor) floor = from[i] + 1;
    int high[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
    for (int i = 0; i < n && rc == 0; i++) {
        high[i] = fcntl(from[i], F_DUPFD_CLOEXEC, floor);
        if (high[i] < 0) rc = errno;
    }
    for (int i = 0; i < n && rc == 0; i++) rc = posix_spawn_file_actions_adddup2(&fa, high[i], to[i]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, top);

    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    pid_t pid = 0;
    extern char **environ;
    if (rc == 0) rc = posix_spawn(&pid, exe, &fa, &at, argv, environ);
    for (int i = 0; i < n; i++) if (high[i] >= 0) close(high[i]);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc == 0 && out_pid) *out_pid = pid;
    return rc;
}

int plexus_posix_spawn_worker(const char *exe, char *const argv[], int channel_fd, int plugin_fd,
                              int stdout_fd, int stderr_fd, int32_t *out_pid) {
    const int from[4] = { channel_fd, plugin_fd, stdout_fd, stderr_fd }, to[4] = { 3, 4, 1, 2 };
    return spawn_placed(exe, argv, from, to, 4, 5, out_pid);
}

int plexus_posix_spawn_worker_filtered(const char *exe, char *const argv[], int channel_fd, int plugin_fd,
                                       int filter_fd, int stdout_fd, int stderr_fd, int32_t *out_pid) {
    const int from[5] = { channel_fd, plugin_fd, filter_fd, stdout_fd, stderr_fd }, to[5] = { 3, 4, 5, 1, 2 };
    return spawn_placed(exe, argv, from, to, 5, 6, out_pid);
}

int plexus_posix_spawn_worker_netns(const char *exe, char *const argv[], int channel_fd, int plugin_fd, int filter_fd,
                                    int netns_fd, int stdout_fd, int stderr_fd, int32_t *out_pid) {
    if (netns_fd < 0) return plexus_posix_spawn_worker_filtered(exe, argv, channel_fd, plugin_fd, filter_fd, stdout_fd, stderr_fd, out_pid);
    const int from[6] = { channel_fd, plugin_fd, filter_fd, netns_fd, stdout_fd, stderr_fd }, to[6] = { 3, 4, 5, 6, 1, 2 };
    return spawn_placed(exe, argv, from, to, 6, 7, out_pid);
}

int plexus_posix_empty_netns(void) {
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) != 0) return -1;
    /* Like fork (the child shares nothing it could change: it only reads
    ** and exits), but into a new network namespace. */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        char b;
        close(gate[1]);
        while (read(gate[0], &b, 1) < 0 && errno == EINTR) {}
        _exit(0);
    }
    close(gate[0]);
    int fd = -1;
    if (pid > 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    close(gate[1]);   /* the child may go: the descriptor keeps the namespace */
    if (pid > 0) while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return fd;
}

int plexus_posix_pipe(int fds[2], int nonblocking) {
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

int plexus_posix_channel(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }

int32_t plexus_posix_wait(int32_t pid, int block, int32_t *out_code, int32_t *out_signaled, int32_t *out_core) {
    int st = 0;
    pid_t r;
    do { r = waitpid(pid, &st, block ? 0 : WNOHANG); } while (r < 0 && errno == EINTR);
    if (r <= 0) return r;
    if (WIFSIGNALED(st)) {
        *out_code = WTERMSIG(st); *out_signaled = 1; *out_core = WCOREDUMP(st) ? 1 : 0;
    } else {
        *out_code = WEXITSTATUS(st); *out_signaled = 0; *out_core = 0;
    }
    return r;
}

int32_t plexus_posix_wait_within(int32_t pid, int timeout_ms, int32_t *out_code, int32_t *out_signaled, int32_t *out_core) {
    int32_t r = plexus_posix_wait(pid, 0, out_code, out_signaled, out_core);
    if (r != 0) return r;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {   /* no pidfd (an old kernel): look every millisecond */
        for (int i = 0; i < timeout_ms && r == 0; i++) {
            usleep(1000);
            r = plexus_posix_wait(pid, 0, out_code, out_signaled, out_core);
        }
        return r;
    }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n;
    do { n = poll(&p, 1, timeout_ms); } while (n < 0 && errno == EINTR);
    close(fd);
    return plexus_posix_wait(pid, 0, out_code, out_signaled, out_core);
}

long plexus_posix_recv_nofds(int fd, void *buf, uint64_t len) {
    union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int) * 16)]; } ctl;
    struct iovec iov = { buf, len };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = sizeof ctl.space;
    ssize_t n;
    do { n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    int passed = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int *fds = (int *)CMSG_DATA(c);
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) close(fds[i]);
            passed = 1;
        }
    }
    if (passed || (mh.msg_flags & MSG_CTRUNC)) return -2;
    return n;
}

int plexus_posix_pin(int32_t pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0) CPU_SET(cpu, &set);
    else for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &set);
    return sched_setaffinity(pid, sizeof set, &set);
}
