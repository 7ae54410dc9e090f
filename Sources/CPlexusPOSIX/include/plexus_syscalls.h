/* plexus_syscalls.h — the system calls no plexus.yaml may grant a worker:
** each reaches outside the worker or undoes its confinement (the signal
** calls are allowed towards the worker itself). One list, read by the
** worker's filter (Sources/plexus-worker/sandbox.c) and by the host when it
** checks plexus.yaml's syscalls: (plexus_posix_never_grantable). */
#ifndef PLEXUS_SYSCALLS_H
#define PLEXUS_SYSCALLS_H

#define PLEXUS_NEVER_GRANTABLE(X) \
    X("kill") X("tkill") X("tgkill") X("rt_sigqueueinfo") X("rt_tgsigqueueinfo") X("pidfd_open") \
    X("pidfd_send_signal") X("pidfd_getfd") X("io_uring_setup") X("io_uring_enter") X("io_uring_register") \
    X("bpf") X("perf_event_open") X("keyctl") X("add_key") X("request_key") X("mount") X("umount2") \
    X("pivot_root") X("chroot") X("setns") X("unshare") X("userfaultfd") X("kexec_load") X("kexec_file_load") \
    X("init_module") X("finit_module") X("delete_module") X("open_tree") X("move_mount") X("fsopen") \
    X("fsconfig") X("fsmount") X("fspick") X("mount_setattr") X("setsid") X("setpgid") X("clone") X("clone3") \
    X("reboot") X("swapon") X("swapoff") X("settimeofday") X("clock_settime") X("adjtimex") X("clock_adjtime") \
    X("process_madvise") X("kcmp") X("open_by_handle_at") X("name_to_handle_at") X("iopl") X("ioperm") \
    X("quotactl") X("acct") X("syslog")

/* 1 when name is on that list, else 0. */
int plexus_posix_never_grantable(const char *name);

#endif
