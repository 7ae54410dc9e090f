/* The worker's syscall filter, compiled by the host once per distinct set of
** grants instead of by libseccomp in every worker at every start (about 1 ms
** of a worker's start went there). The worker installs the ready program
** with seccomp(2) after patching in its own pid.
**
** The filter is an allowlist: every call not listed traps (SIGSYS) into the
** worker's handler, which makes it fail with EPERM and reports it. The rules
** that name the worker itself (signals to itself, its own scheduling and
** priority) compare an argument with its pid, which only the worker knows:
** the program is compiled twice, with two placeholder pids above any real
** one (pid_max is at most 2^22), and the instructions that differ are the
** ones the worker patches. Anything else differing, or a placeholder found
** elsewhere, refuses the program, so a patch never touches another rule. */
#define _GNU_SOURCE
#include "plexus_posix.h"
#include "plexus_filter.h"
#include "plexus_syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define PID_A 0x40000001u
#define PID_B 0x40000002u

/* What every plugin may call: memory, threads, futexes, time, file I/O on
** what its root holds, polling, eventfd/timerfd/signalfd, signals to itself,
** and the socket calls that work on descriptors it already has (the channel).
** The calls with an argument check (clone, kill, ...) are added by build. */
static const char *const base_calls[] = {
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "membarrier", "memfd_create",
    "mlock", "munlock", "get_mempolicy",
    /* threads and synchronisation */
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address", "rseq", "sched_yield",
    "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sched_get_priority_min", "sched_get_priority_max",
    "getcpu", "arch_prctl", "exit", "exit_group", "restart_syscall",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete", "getitimer", "setitimer", "alarm",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    /* files and descriptors (reach is set by the mount namespace and Landlock) */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "fstat", "stat", "lstat", "newfstatat", "statx",
    "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
    "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "umask", "truncate", "ftruncate",
    "fallocate", "utimensat", "fsync", "fdatasync", "sync_file_range", "fadvise64", "readahead", "flock", "fcntl",
    "dup", "dup2", "dup3", "pipe", "pipe2", "ioctl", "copy_file_range", "sendfile", "splice", "tee",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    /* waiting */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
    /* signals to itself */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend",
    "sigaltstack", "pause",
    /* sockets it already holds */
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername",
    "getsockopt", "setsockopt",
    /* who and where it is */
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "getpgrp", "getpgid", "getsid", "getrlimit", "setrlimit", "getrusage", "times", "sysinfo", "uname", "getrandom",
    "capget", "seccomp",
};

/* Granted per plugin by syscalls: [fork | exec | socket | ptrace]. */
static const char *const fork_calls[] = { "fork", "vfork", "wait4", "waitid" };
static const char *const exec_calls[] = { "execve", "execveat" };
static const char *const socket_calls[] = { "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4" };
static const char *const ptrace_calls[] = { "ptrace", "process_vm_readv", "process_vm_writev" };

static int allow(scmp_filter_ctx f, const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return 0;   /* not on this architecture */
    return seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
}

static int allow_all(scmp_filter_ctx f, const char *const *names, size_t n) {
    int rc = 0;
    for (size_t i = 0; i < n; i++) rc |= allow(f, names[i]);
    return rc;
}
#define ALLOW_ALL(f, list) allow_all(f, list, sizeof list / sizeof *list)

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)

/* The rules, with self standing for the worker's pid. */
static scmp_filter_ctx build(const plexus_filter_grants *g, scmp_datum_t self) {
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    if (!f) return NULL;
    /* A binary tree over ~200 allowed calls instead of a linear list: every
    ** system call the plugin makes walks this filter. */
    int rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    rc |= ALLOW_ALL(f, base_calls);
    if (g->allow_fork) rc |= ALLOW_ALL(f, fork_calls);
    if (g->allow_exec) rc |= ALLOW_ALL(f, exec_calls);
    if (g->allow_socket) rc |= ALLOW_ALL(f, socket_calls);
    if (g->allow_ptrace) rc |= ALLOW_ALL(f, ptrace_calls);
    for (int i = 0; i < g->n_extra; i++) rc |= allow(f, g->extra[i]);
    /* clone makes threads (CLONE_THREAD), or processes when fork is granted,
    ** never new namespaces. clone3 hides its flags behind a pointer: it
    ** answers ENOSYS and glibc falls back to clone. */
    scmp_datum_t mask = NS_FLAGS | (g->allow_fork ? 0 : CLONE_THREAD);
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, mask, g->allow_fork ? 0 : CLONE_THREAD));
    rc |= seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Signals reach this process only: raise() and abort() use tgkill with
    ** their own pid; the host and other workers are refused. */
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, self));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, self));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigqueueinfo), 1, SCMP_A0(SCMP_CMP_EQ, self));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(rt_tgsigqueueinfo), 1, SCMP_A0(SCMP_CMP_EQ, self));
    /* Scheduling and limits of itself only (pid 0 or its own pid): other
    ** workers run as the same outside uid. */
    static const int own[] = { SCMP_SYS(sched_setaffinity), SCMP_SYS(prlimit64),
                               SCMP_SYS(sched_setscheduler), SCMP_SYS(sched_setparam), SCMP_SYS(sched_getattr),
                               SCMP_SYS(sched_setattr) };
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, own[i], 1, SCMP_A0(SCMP_CMP_EQ, 0));
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, own[i], 1, SCMP_A0(SCMP_CMP_EQ, self));
    }
    /* getpriority/setpriority(which, who, ...): the pid is the second
    ** argument, and only PRIO_PROCESS names one process (PRIO_PGRP and
    ** PRIO_USER would reach the host's group or every worker's uid). */
    static const int prio[] = { SCMP_SYS(getpriority), SCMP_SYS(setpriority) };
    for (size_t i = 0; i < sizeof prio / sizeof *prio; i++) {
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, prio[i], 2, SCMP_A0(SCMP_CMP_EQ, PRIO_PROCESS), SCMP_A1(SCMP_CMP_EQ, 0));
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, prio[i], 2, SCMP_A0(SCMP_CMP_EQ, PRIO_PROCESS), SCMP_A1(SCMP_CMP_EQ, self));
    }
    /* prctl: naming threads and memory, reading its own state. */
    static const int prctl_ok[] = { PR_SET_NAME, PR_GET_NAME, 0x53564d41 /* PR_SET_VMA */, PR_GET_DUMPABLE,
                                    PR_SET_TIMERSLACK, PR_GET_TIMERSLACK, PR_GET_SECCOMP, PR_SET_SECCOMP,
                                    PR_GET_NO_NEW_PRIVS, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_READ, PR_GET_PDEATHSIG,
                                    PR_GET_KEEPCAPS, PR_GET_SECUREBITS, PR_SET_THP_DISABLE, PR_GET_THP_DISABLE };
    for (size_t i = 0; i < sizeof prctl_ok / sizeof *prctl_ok; i++)
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)prctl_ok[i]));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 2, SCMP_A0(SCMP_CMP_EQ, PR_CAP_AMBIENT),
                           SCMP_A1(SCMP_CMP_EQ, PR_CAP_AMBIENT_IS_SET));
    if (rc != 0) { seccomp_release(f); return NULL; }
    return f;
}

/* The program libseccomp makes of the rules (malloc'd), *n instructions. */
static struct sock_filter *export(const plexus_filter_grants *g, scmp_datum_t self, size_t *n) {
    scmp_filter_ctx f = build(g, self);
    if (!f) return NULL;
    int fd = memfd_create("plexus-bpf", MFD_CLOEXEC);
    struct sock_filter *prog = NULL;
    if (fd >= 0 && seccomp_export_bpf(f, fd) == 0) {
        off_t size = lseek(fd, 0, SEEK_END);
        if (size > 0 && size % (off_t)sizeof *prog == 0 && (prog = malloc((size_t)size)) != NULL) {
            if (pread(fd, prog, (size_t)size, 0) == size) *n = (size_t)size / sizeof *prog;
            else { free(prog); prog = NULL; }
        }
    }
    if (fd >= 0) close(fd);
    seccomp_release(f);
    return prog;
}

static int is_jeq_k(const struct sock_filter *i) { return i->code == (BPF_JMP | BPF_JEQ | BPF_K); }

int plexus_posix_filter_build(const plexus_filter_grants *g, const char **out_what) {
    *out_what = "compiling the seccomp filter failed";
    for (int i = 0; i < g->n_extra; i++) {
        if (plexus_posix_never_grantable(g->extra[i])) { *out_what = "a never-grantable system call was asked for"; errno = EPERM; return -1; }
    }
    size_t na = 0, nb = 0;
    struct sock_filter *a = export(g, PID_A, &na), *b = export(g, PID_B, &nb);
    uint32_t patches[PLEXUS_FILTER_MAX_PATCHES];
    uint32_t np = 0;
    int ok = a && b && na == nb && na <= PLEXUS_FILTER_MAX_INSNS;
    for (size_t i = 0; ok && i < na; i++) {
        if (memcmp(&a[i], &b[i], sizeof a[i]) == 0) {
            if (is_jeq_k(&a[i]) && a[i].k == PID_A) ok = 0;   /* a placeholder that would not be patched */
            continue;
        }
        ok = is_jeq_k(&a[i]) && a[i].code == b[i].code && a[i].jt == b[i].jt && a[i].jf == b[i].jf
             && a[i].k == PID_A && b[i].k == PID_B && np < PLEXUS_FILTER_MAX_PATCHES;
        if (ok) patches[np++] = (uint32_t)i;
    }
    if (!ok) {
        free(a); free(b);
        if (a && b) *out_what = "the seccomp filter's pid rules could not be located";
        errno = EINVAL;
        return -1;
    }
    plexus_filter_header h = { PLEXUS_FILTER_MAGIC, (uint32_t)na, np, PID_A };
    int fd = memfd_create("plexus-filter", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int rc = fd < 0 ? -1 : 0;
    if (rc == 0 && (write(fd, &h, sizeof h) != (ssize_t)sizeof h
                    || write(fd, patches, np * sizeof *patches) != (ssize_t)(np * sizeof *patches)
                    || write(fd, a, na * sizeof *a) != (ssize_t)(na * sizeof *a))) rc = -1;
    if (rc == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) rc = -1;
    free(a); free(b);
    if (rc != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        *out_what = "writing the compiled seccomp filter failed";
        errno = e;
        return -1;
    }
    return fd;
}
