/* intruder — a plugin that tries to reach outside its worker, for the
** confinement tests (FAULTS 37-39). One capability, intruder.try, takes
** "ACTION ARG [ARG]" and answers the errno the attempt met ("0" when it
** worked), so the tests can assert exactly what a plugin sees. Built with
** -DAGENT_NAME. */
#define _GNU_SOURCE
#include "plexus.h"
#include "plexus_agent.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef AGENT_NAME
#define AGENT_NAME "intruder"
#endif

static plexus_status say(const plexus_envelope *m, const char *text) {
    return plexus_reply(m, "text/plain", text, strlen(text));
}

static plexus_status result(const plexus_envelope *m, long rc) {
    char text[32];
    snprintf(text, sizeof text, "%d", rc < 0 ? errno : 0);
    return say(m, text);
}

/* socket(domain, type) then connect (or sendto for UDP) to addr. */
static long reach(int domain, int type, const struct sockaddr *a, socklen_t len) {
    int s = socket(domain, type | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    long rc = type == SOCK_DGRAM ? (long)sendto(s, "x", 1, 0, a, len) : connect(s, a, len);
    int e = errno;
    close(s);
    errno = e;
    return rc < 0 ? -1 : 0;
}

static long reach_port(int type, int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return reach(AF_INET, type, (struct sockaddr *)&a, sizeof a);
}

static long reach_unix(const char *path, int abstract) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t n = strlen(path);
    if (n + 2 > sizeof a.sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(a.sun_path + (abstract ? 1 : 0), path, n);
    return reach(AF_UNIX, SOCK_STREAM, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0)));
}

/* "eff=0 prm=0 inh=0 bnd=0 amb=0": capability sets as counts of bits. */
static plexus_status capabilities(const plexus_envelope *m) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0xff, sizeof d);
    if (syscall(SYS_capget, &h, d) != 0) return result(m, -1);
    int eff = __builtin_popcount(d[0].effective) + __builtin_popcount(d[1].effective);
    int prm = __builtin_popcount(d[0].permitted) + __builtin_popcount(d[1].permitted);
    int inh = __builtin_popcount(d[0].inheritable) + __builtin_popcount(d[1].inheritable);
    int bnd = 0, amb = 0;
    for (int c = 0; c < 64; c++) {
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) bnd++;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) amb++;
    }
    char text[96];
    snprintf(text, sizeof text, "eff=%d prm=%d inh=%d bnd=%d amb=%d", eff, prm, inh, bnd, amb);
    return say(m, text);
}

static plexus_status handle(const plexus_envelope *m) {
    char cmd[600] = { 0 }, arg[512] = { 0 };
    long x = 0, y = 0;
    size_t n = m->payload_len < sizeof cmd - 1 ? m->payload_len : sizeof cmd - 1;
    memcpy(cmd, m->payload, n);
    char action[32] = { 0 };
    if (sscanf(cmd, "%31s %511s", action, arg) < 1) return PLEXUS_INVALID_ARGUMENT;
    sscanf(arg, "%ld", &x);
    sscanf(cmd, "%*s %*s %ld", &y);
    if (!strcmp(action, "open")) { int fd = open(arg, O_RDONLY | O_CLOEXEC); if (fd >= 0) close(fd); return result(m, fd); }
    if (!strcmp(action, "openrw")) { int fd = open(arg, O_RDWR | O_CLOEXEC); if (fd >= 0) close(fd); return result(m, fd); }
    if (!strcmp(action, "creat")) {
        int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return result(m, -1);
        long w = write(fd, "intruder\n", 9);
        close(fd);
        return result(m, w == 9 ? 0 : -1);
    }
    if (!strcmp(action, "cat")) {
        char buf[256];
        int fd = open(arg, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return result(m, -1);
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r < 0) return result(m, -1);
        buf[r] = 0;
        return say(m, buf);
    }
    if (!strcmp(action, "kill")) return result(m, kill((pid_t)x, (int)y));
    if (!strcmp(action, "renice")) return result(m, setpriority(PRIO_PROCESS, (id_t)x, (int)y));      /* renice PID NICE */
    if (!strcmp(action, "renice_user")) return result(m, setpriority(PRIO_USER, (id_t)x, (int)y));   /* renice_user UID NICE */
    if (!strcmp(action, "tkill")) return result(m, syscall(SYS_tkill, x, y));
    if (!strcmp(action, "tgkill")) return result(m, syscall(SYS_tgkill, x, x, y));
    if (!strcmp(action, "sigqueue") || !strcmp(action, "tgsigqueue")) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        si.si_signo = (int)y;
        si.si_code = SI_QUEUE;
        si.si_pid = getpid();
        if (!strcmp(action, "sigqueue")) return result(m, syscall(SYS_rt_sigqueueinfo, x, y, &si));
        return result(m, syscall(SYS_rt_tgsigqueueinfo, x, x, y, &si));
    }
    if (!strcmp(action, "pidfd_open")) {
        long fd = syscall(SYS_pidfd_open, x, 0);
        if (fd >= 0) close((int)fd);
        return result(m, fd);
    }
    if (!strcmp(action, "pidfd_send_signal")) return result(m, syscall(SYS_pidfd_send_signal, 3, (int)y, NULL, 0));
    if (!strcmp(action, "io_uring_setup")) {
        char params[120];
        memset(params, 0, sizeof params);
        long fd = syscall(SYS_io_uring_setup, 4, params);
        if (fd >= 0) close((int)fd);
        return result(m, fd);
    }
    if (!strcmp(action, "tcp")) return result(m, reach_port(SOCK_STREAM, (int)x));
    if (!strcmp(action, "udp")) return result(m, reach_port(SOCK_DGRAM, (int)x));
    if (!strcmp(action, "unix")) return result(m, reach_unix(arg, 0));
    if (!strcmp(action, "abstract")) return result(m, reach_unix(arg, 1));
    if (!strcmp(action, "caps")) return capabilities(m);
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = { PLEXUS_CAPABILITY(AGENT_NAME ".try", NULL) };

PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
