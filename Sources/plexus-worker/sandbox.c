/* Limits and the syscall filter, an allowlist the host compiled: every call
** not listed traps (SIGSYS) into a handler that makes it fail with EPERM and
** remembers it, so the host can log an audit event naming each refused call.
** libseccomp stays here only to name the refused calls. */
#define _GNU_SOURCE
#include "sandbox.h"
#include "plexus_filter.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

/* Installs the filter the host compiled for this plugin's grants
** (plexus_filter.h: Sources/CPlexusPOSIX/filter.c holds the rules), with
** this process's pid patched into the rules that name the worker itself. */
static const char *install_filter(int fd) {
    plexus_filter_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || h.magic != PLEXUS_FILTER_MAGIC
        || h.n_insns == 0 || h.n_insns > PLEXUS_FILTER_MAX_INSNS || h.n_patches > PLEXUS_FILTER_MAX_PATCHES)
        return "the host's seccomp filter (descriptor 5) is missing or malformed";
    uint32_t patches[PLEXUS_FILTER_MAX_PATCHES];
    static struct sock_filter insns[PLEXUS_FILTER_MAX_INSNS];
    size_t np = h.n_patches * sizeof *patches, ni = h.n_insns * sizeof *insns;
    if (pread(fd, patches, np, sizeof h) != (ssize_t)np || pread(fd, insns, ni, (off_t)(sizeof h + np)) != (ssize_t)ni)
        return "the host's seccomp filter (descriptor 5) is truncated";
    close(fd);
    uint32_t self = (uint32_t)getpid();
    for (uint32_t i = 0; i < h.n_patches; i++) {
        struct sock_filter *in = patches[i] < h.n_insns ? &insns[patches[i]] : NULL;
        if (!in || in->code != (BPF_JMP | BPF_JEQ | BPF_K) || in->k != h.placeholder)
            return "the host's seccomp filter names a pid rule that is not one";
        in->k = self;
    }
    struct sock_fprog prog = { (unsigned short)h.n_insns, insns };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return "installing the seccomp filter failed";
    return NULL;
}

const char *sandbox_apply(const worker_limits *l, int filter_fd) {
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
    return install_filter(filter_fd);
}
