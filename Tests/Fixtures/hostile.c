/* hostile — a plugin that misbehaves on request, for the FAULTS.md tests.
** Each capability is one way of breaking; the tests check the host survives
** and what became of the messages. Built with -DAGENT_NAME, and optionally
** -DCTOR_EXIT / -DCTOR_CRASH / -DCTOR_SPIN (a constructor that misbehaves
** inside dlopen) or -DCRASH_AT_START (init crashes). */
#define _GNU_SOURCE
#include "plexus.h"
static plexus_status on_init(const char *config);
#define PLEXUS_AGENT_ON_INIT(config) on_init(config)
#include "plexus_agent.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef AGENT_NAME
#define AGENT_NAME "hostile"
#endif

#if defined(CTOR_EXIT) || defined(CTOR_CRASH) || defined(CTOR_SPIN)
__attribute__((constructor)) static void misbehave_in_dlopen(void) {
#if defined(CTOR_EXIT)
    _exit(3);
#elif defined(CTOR_CRASH)
    raise(SIGSEGV);   /* a NULL store here is UB an optimiser may delete */
#else
    for (;;) {}
#endif
}
#endif

static int is(const char *cap, const char *name) { return strcmp(cap, name) == 0; }

static plexus_status say(const plexus_envelope *m, long v) {
    char text[32];
    int n = snprintf(text, sizeof text, "%ld", v);
    return plexus_reply(m, "text/plain", text, (size_t)n);
}

static void *idle(void *arg) { (void)arg; pause(); return NULL; }

static plexus_status handle(const plexus_envelope *m) {
    const char *cap = m->target;
    if (is(cap, "hostile.ok")) return plexus_reply(m, "text/plain", "ok", 2);
    if (is(cap, "hostile.abort")) abort();
    if (is(cap, "hostile.exit")) exit(0);
    if (is(cap, "hostile.spin")) for (;;) {}
    if (is(cap, "hostile.sleep")) for (;;) pause();
    if (is(cap, "hostile.stop")) { raise(SIGSTOP); return plexus_reply(m, "text/plain", "resumed", 7); }
    if (is(cap, "hostile.ignore-term")) { signal(SIGTERM, SIG_IGN); for (;;) pause(); }
    if (is(cap, "hostile.malloc")) {            /* until the address-space limit says no */
        long mb = 0;
        while (mb < 1 << 20) {
            char *p = malloc(1 << 20);
            if (!p) break;
            memset(p, 1, 1 << 20);
            mb++;
        }
        return say(m, mb);
    }
    if (is(cap, "hostile.mmap")) {              /* shared mappings count too */
        long mb = 0;
        while (mb < 1 << 20 && mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) mb++;
        return say(m, mb);
    }
    if (is(cap, "hostile.threads")) {
        long n = 0;
        pthread_t t;
        while (n < 100000 && pthread_create(&t, NULL, idle, NULL) == 0) n++;
        return say(m, n);
    }
    if (is(cap, "hostile.fork")) { pid_t c = fork(); if (c == 0) _exit(0); return say(m, c < 0 ? -errno : c); }
    if (is(cap, "hostile.exec")) { char *argv[] = { "/bin/true", NULL }; execv("/bin/true", argv); return say(m, -errno); }
    if (is(cap, "hostile.socket")) { int fd = socket(AF_UNIX, SOCK_STREAM, 0); return say(m, fd < 0 ? -errno : fd); }
    if (is(cap, "hostile.ptrace")) { long r = ptrace(PTRACE_TRACEME, 0, NULL, NULL); return say(m, r < 0 ? -errno : r); }
    if (is(cap, "hostile.kill-host")) { int r = kill(getppid(), SIGKILL); return say(m, r < 0 ? -errno : r); }
    if (is(cap, "hostile.fill-disk")) {         /* RLIMIT_FSIZE stops it */
        signal(SIGXFSZ, SIG_IGN);
        char path[] = "/tmp/plexus-hostile-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) return say(m, -errno);
        unlink(path);
        static char block[1 << 16];
        long written = 0;
        for (;;) { ssize_t w = write(fd, block, sizeof block); if (w <= 0) break; written += w; }
        close(fd);
        return say(m, written);
    }
    if (is(cap, "hostile.fds")) {               /* until RLIMIT_NOFILE */
        long n = 0;
        while (open("/dev/null", O_RDONLY) >= 0) n++;
        return say(m, n);
    }
    if (is(cap, "hostile.close-channel")) { close(3); for (;;) pause(); }
    if (is(cap, "hostile.daemon")) {            /* double fork; the grandchild tries to leave the group */
        int fds[2];
        if (pipe(fds) != 0) return PLEXUS_INTERNAL;
        pid_t c = fork();
        if (c < 0) return PLEXUS_INTERNAL;
        if (c == 0) {
            if (fork() == 0) {
                int a = setsid() < 0 ? -errno : 0;
                int b = setpgid(0, 0) < 0 ? -errno : 0;
                char out[64];
                int n = snprintf(out, sizeof out, "%d %d %d", (int)getpid(), a, b);
                (void)!write(fds[1], out, (size_t)n);
                for (;;) pause();
            }
            _exit(0);
        }
        waitpid(c, NULL, 0);
        char buf[64] = { 0 };
        ssize_t n = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]); close(fds[1]);
        return plexus_reply(m, "text/plain", buf, n > 0 ? (size_t)n : 0);
    }
    if (is(cap, "hostile.flood")) {             /* 8 MB of output at once */
        static char line[1024];
        memset(line, 'y', sizeof line - 1);
        line[sizeof line - 1] = '\n';
        for (int i = 0; i < 8192; i++) (void)!write(1, line, sizeof line);
        return plexus_reply(m, "text/plain", "flooded", 7);
    }
    if (is(cap, "hostile.garbage")) { (void)!write(3, "this is not a frame at all", 26); for (;;) pause(); }
    if (is(cap, "hostile.half")) { (void)!write(3, "PLXF\x01\x01", 6); for (;;) pause(); }
    if (is(cap, "hostile.huge")) {              /* a header claiming 4 GB */
        unsigned char h[12] = { 'P', 'L', 'X', 'F', 1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff };
        (void)!write(3, h, sizeof h);
        for (;;) pause();
    }
    if (is(cap, "hostile.pass-fd")) {           /* SCM_RIGHTS over the channel */
        int fd = memfd_create("hostile-passed-fd", 0);  /* a name the test can look for */
        char byte = 0;
        struct iovec iov = { &byte, 1 };
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
        struct msghdr mh = { 0 };
        mh.msg_iov = &iov; mh.msg_iovlen = 1; mh.msg_control = u.b; mh.msg_controllen = sizeof u.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
        (void)!sendmsg(3, &mh, 0);
        for (;;) pause();
    }
    return PLEXUS_UNSUPPORTED;
}

static plexus_status on_init(const char *config) {
    (void)config;
#ifdef CRASH_AT_START
    raise(SIGSEGV);
#endif
    return PLEXUS_OK;
}

#define CAP(n) PLEXUS_CAPABILITY("hostile." n, NULL)
static const plexus_capability caps[] = {
    CAP("ok"), CAP("abort"), CAP("exit"), CAP("spin"), CAP("sleep"), CAP("stop"), CAP("ignore-term"),
    CAP("malloc"), CAP("mmap"), CAP("threads"), CAP("fork"), CAP("exec"), CAP("socket"), CAP("ptrace"),
    CAP("kill-host"), CAP("fill-disk"), CAP("fds"), CAP("close-channel"), CAP("flood"), CAP("garbage"), CAP("daemon"),
    CAP("half"), CAP("huge"), CAP("pass-fd"),
};

PLEXUS_AGENT(AGENT_NAME, "1.0.0", caps, handle)
