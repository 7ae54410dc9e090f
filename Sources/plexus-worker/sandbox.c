/* Limits and the syscall filter. Denied calls trap (SIGSYS) into a handler
** that makes them fail with EPERM and remembers them, so the host can log an
** audit event naming each refused call. */
#define _GNU_SOURCE
#include "sandbox.h"

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

static int deny(scmp_filter_ctx f, const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return 0;   /* not on this architecture */
    return seccomp_rule_add(f, SCMP_ACT_TRAP, nr, 0);
}

static const char *install_filter(const worker_limits *l) {
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
    if (!f) return "seccomp_init failed";
    int rc = 0;
    if (!l->allow_fork) {
        rc |= deny(f, "fork") | deny(f, "vfork");
        /* clone is allowed for threads only; clone3 cannot be inspected, so it
        ** answers ENOSYS and glibc falls back to clone for its threads. */
        rc |= seccomp_rule_add(f, SCMP_ACT_TRAP, SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
        rc |= seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    }
    /* The worker already leads its own process group, and the host tears a
    ** worker down by killing that group: no descendant may leave it. */
    rc |= deny(f, "setsid") | deny(f, "setpgid");
    if (!l->allow_exec) rc |= deny(f, "execve") | deny(f, "execveat");
    if (!l->allow_socket) rc |= deny(f, "socket") | deny(f, "socketpair") | deny(f, "connect") | deny(f, "bind");
    if (!l->allow_ptrace) rc |= deny(f, "ptrace") | deny(f, "process_vm_readv") | deny(f, "process_vm_writev");
    /* Signals may reach this process only, never the host or another
    ** worker (kill(0, ...) is refused too: one rule cannot test one argument
    ** twice, and raise() and abort() use tgkill). */
    pid_t self = getpid();
    rc |= seccomp_rule_add(f, SCMP_ACT_TRAP, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
    rc |= seccomp_rule_add(f, SCMP_ACT_TRAP, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
    rc |= deny(f, "tkill");
    if (rc == 0) rc = seccomp_load(f);
    seccomp_release(f);
    return rc == 0 ? NULL : "installing the seccomp filter failed";
}

const char *sandbox_apply(const worker_limits *l, int *out_namespaces) {
    *out_namespaces = 0;
    /* A user namespace costs ~30 us and takes away root's file privileges; a
    ** network namespace costs ~600 us and adds nothing while sockets are
    ** denied, so it is only entered on request (sockets granted, no network). */
    if (l->namespaces && unshare(CLONE_NEWUSER | (l->network_namespace ? CLONE_NEWNET : 0)) == 0) *out_namespaces = 1;
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
