/* Limits and the syscall filter, an allowlist: every call not listed traps
** (SIGSYS) into a handler that makes it fail with EPERM and remembers it, so
** the host can log an audit event naming each refused call. */
#define _GNU_SOURCE
#include "sandbox.h"
#include "plexus_syscalls.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>

#define DENIED_MAX 64
static atomic_int denied_ring[DENIED_MAX];
static atomic_uint denied_head, denied_tail;

static void on_sigsys(int sig, siginfo_t *si, void *uc_) {
    (void)sig;
    ucontext_t *uc = uc_;
    unsigned h = atomic_load(&denied_head);
    if (h - atomic_load(&denied_tail) < DENIED_MAX) {
        atomic_store(&denied_ring[h % DENIED_MAX], si->si_syscall);
        atomic_store(&denied_head, h + 1);
    }
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#endif
}

void sandbox_take_denied(char *buf, uint64_t cap) {
    buf[0] = 0;
    uint64_t used = 0;
    while (atomic_load(&denied_tail) != atomic_load(&denied_head)) {
        unsigned t = atomic_load(&denied_tail);
        int nr = atomic_load(&denied_ring[t % DENIED_MAX]);
        atomic_store(&denied_tail, t + 1);
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        int n = snprintf(buf + used, cap - used, "%s%s", used ? "," : "", name ? name : "unknown");
        free(name);
        if (n < 0 || (uint64_t)n >= cap - used) break;
        used += (uint64_t)n;
    }
}

static int set_limit(int resource, uint64_t soft, uint64_t hard) {
    struct rlimit r = { soft ? soft : RLIM_INFINITY, hard ? hard : RLIM_INFINITY };
    return setrlimit(resource, &r);
}

/* What every plugin may call: memory, threads, futexes, time, file I/O on
** what its root holds, polling, eventfd/timerfd/signalfd, signals to itself,
** and the socket calls that work on descriptors it already has (the channel).
** Everything else traps into on_sigsys and fails with EPERM. The calls with
** an argument check (clone, kill, ...) are added by install_filter. */
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

/* Never granted by name (plexus_syscalls.h, the list the host checks too). */
#define PLEXUS_NAME(n) n,
static const char *const never_calls[] = { PLEXUS_NEVER_GRANTABLE(PLEXUS_NAME) };
#undef PLEXUS_NAME

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

const char *sandbox_check_call(const char *name) {
    static char why[160];
    for (size_t i = 0; i < sizeof never_calls / sizeof *never_calls; i++) {
        if (strcmp(never_calls[i], name) == 0) {
            snprintf(why, sizeof why, "the system call %s can never be granted (it reaches outside the worker)", name);
            return why;
        }
    }
    if (seccomp_syscall_resolve_name(name) == __NR_SCMP_ERROR) {
        snprintf(why, sizeof why, "unknown system call '%s' on this architecture", name);
        return why;
    }
    return NULL;
}

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)

static const char *install_filter(const worker_limits *l) {
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    if (!f) return "seccomp_init failed";
    /* A binary tree over ~200 allowed calls instead of a linear list: every
    ** system call the plugin makes walks this filter. */
    int rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    rc |= ALLOW_ALL(f, base_calls);
    if (l->allow_fork) rc |= ALLOW_ALL(f, fork_calls);
    if (l->allow_exec) rc |= ALLOW_ALL(f, exec_calls);
    if (l->allow_socket) rc |= ALLOW_ALL(f, socket_calls);
    if (l->allow_ptrace) rc |= ALLOW_ALL(f, ptrace_calls);
    for (int i = 0; i < l->n_extra; i++) rc |= allow(f, l->extra[i]);
    /* clone makes threads (CLONE_THREAD), or processes when fork is granted,
    ** never new namespaces. clone3 hides its flags behind a pointer: it
    ** answers ENOSYS and glibc falls back to clone. */
    scmp_datum_t mask = NS_FLAGS | (l->allow_fork ? 0 : CLONE_THREAD);
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, mask, l->allow_fork ? 0 : CLONE_THREAD));
    rc |= seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Signals reach this process only: raise() and abort() use tgkill with
    ** their own pid; the host and other workers are refused. */
    scmp_datum_t self = (scmp_datum_t)getpid();
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
    if (rc == 0) rc = seccomp_load(f);
    seccomp_release(f);
    return rc == 0 ? NULL : "installing the seccomp filter failed";
}

const char *sandbox_apply(const worker_limits *l) {
    { struct rlimit r = { 0, 0 }; if (setrlimit(RLIMIT_CORE, &r) != 0) return "setrlimit(RLIMIT_CORE) failed"; }
    if (l->address_space && set_limit(RLIMIT_AS, l->address_space, l->address_space) != 0) return "setrlimit(RLIMIT_AS) failed";
    if (l->cpu_hard && set_limit(RLIMIT_CPU, l->cpu_soft ? l->cpu_soft : l->cpu_hard, l->cpu_hard) != 0)
        return "setrlimit(RLIMIT_CPU) failed";
    if (l->open_files && set_limit(RLIMIT_NOFILE, l->open_files, l->open_files) != 0) return "setrlimit(RLIMIT_NOFILE) failed";
    if (l->file_size && set_limit(RLIMIT_FSIZE, l->file_size, l->file_size) != 0) return "setrlimit(RLIMIT_FSIZE) failed";
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return "prctl(PR_SET_DUMPABLE) failed";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return "prctl(PR_SET_NO_NEW_PRIVS) failed";
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0) return "installing the SIGSYS handler failed";
    return install_filter(l);
}
