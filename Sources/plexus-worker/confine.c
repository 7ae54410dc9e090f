/* Confinement: the worker enters new mount, IPC and (unless granted the
** network) network namespaces, builds an empty root holding only what the
** plugin needs, pivots into it, becomes nobody, adds a Landlock domain where
** the kernel has one, and ends with no capability in any namespace.
**
** Order matters, and each step was checked by experiment (kernel 6.18):
** - root's file access survives a bare unshare(CLONE_NEWUSER) (the kernel
**   still checks as uid 0), so a root worker does not rely on one: it builds
**   the root with its own rights, drops its bounding set and changes to uid
**   and gid 65534; a worker of any other user enters a user namespace first
**   and maps its own uid to 0 inside (allowed after "deny" in setgroups);
** - a credential change clears the parent-death signal, so it is re-armed
**   and the parent re-checked right after;
** - bind sources are opened in the new mount namespace (a bind from another
**   namespace's mount is EINVAL), before anything is mounted over them, and
**   bound through /proc/self/fd, which is gone after the pivot;
** - a memfd cannot be bound (it lives on an internal mount): the plugin image
**   is copied into the new root. */
#define _GNU_SOURCE
#include "confine.h"
#include "plexus_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NOBODY 65534
#define STAGE "/tmp"   /* where the new root is built (in the private mount namespace) */

typedef struct bind {
    const char *path;   /* where the plugin sees it (same as on the host) */
    int fd;             /* O_PATH to the source, opened before any mount   */
    int writable;
} bind;

static bind binds[2 * CONFINE_PATHS_MAX];
static int n_binds;
static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom" };
static int dev_fd[5];
static char why[512];

/* ---- Landlock (own definitions: the installed header predates ABI 4-6) ---- */

struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_ALL_ABI1 ((1ULL << 13) - 1)
#define LL_FS_REFER (1ULL << 13)      /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)  /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)   /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)   /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)
#define LL_READ (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR)

static int landlock_abi(void) {
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U /* VERSION */);
    return v < 0 ? 0 : (int)v;
}

static uint64_t ll_fs_all(int abi) {
    uint64_t a = LL_FS_ALL_ABI1;
    if (abi >= 2) a |= LL_FS_REFER;
    if (abi >= 3) a |= LL_FS_TRUNCATE;
    if (abi >= 5) a |= LL_FS_IOCTL_DEV;
    return a;
}

/* A rule for one path; a path that is not there is skipped (a read-only bind
** of a file the host does not have). Files take only file rights. */
static int ll_allow(int ruleset, const char *path, uint64_t access) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        access &= LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV;
    struct ll_path_beneath pb = { access, fd };
    long rc = syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0);
    close(fd);
    return rc < 0 ? -1 : 0;
}

/* The ruleset that restricts the filesystem to the granted paths, TCP to
** nothing unless the network is granted, and (ABI 6) signals and abstract
** unix sockets to this domain: the host and other workers are outside it.
** Built before the plugin comes (a warm worker has it ready): the image's
** rule is on the directory it will be copied into, which holds nothing
** else and is read-only by then. Without a new root the image stays a
** memfd, which lives on an internal mount that Landlock takes no rule for
** and does not restrict. Returns the ruleset, or -1 and *failed. */
static int landlock_prepare(const confine_spec *s, int abi, int private_tmp, const char **failed) {
    uint64_t all = ll_fs_all(abi);
    struct ll_ruleset_attr attr = { .handled_access_fs = all };
    size_t size = sizeof(uint64_t);
    if (abi >= 4) { size = 2 * sizeof(uint64_t); if (!s->network) attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP; }
    if (abi >= 6) { size = sizeof attr; attr.scoped = LL_SCOPE_SIGNAL | (s->network ? 0 : LL_SCOPE_ABSTRACT_UNIX); }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0) { *failed = "landlock_create_ruleset failed"; return -1; }
    int bad = 0;
    for (int i = 0; i < n_binds; i++) {
        char fd_path[32];
        snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", binds[i].fd);
        /* In the new root a path is where the host has it; without one, the
        ** descriptor opened as the host's user stands for it. */
        bad |= ll_allow(rs, private_tmp ? binds[i].path : fd_path, binds[i].writable ? all : LL_READ & all);
    }
    if (private_tmp) {   /* in the new root: the image's directory, and its own /tmp (never the host's) */
        bad |= ll_allow(rs, CONFINE_PLUGIN_DIR, LL_FS_READ_FILE | LL_FS_EXECUTE);
        bad |= ll_allow(rs, "/tmp", all);
    }
    bad |= ll_allow(rs, "/dev/null", LL_FS_READ_FILE | LL_FS_WRITE_FILE | (all & LL_FS_TRUNCATE));
    static const char *const devs[] = { "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom" };
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) bad |= ll_allow(rs, devs[i], LL_FS_READ_FILE);
    if (bad) { close(rs); *failed = "landlock_add_rule failed for a granted path"; return -1; }
    return rs;
}

/* Puts this process under the prepared ruleset (and closes it). */
static const char *landlock_enforce(int rs) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { close(rs); return "prctl(PR_SET_NO_NEW_PRIVS) failed"; }
    long rc = syscall(SYS_landlock_restrict_self, rs, 0);
    close(rs);
    return rc < 0 ? "landlock_restrict_self failed" : NULL;
}

/* ---- identity ------------------------------------------------------------ */

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Root becomes nobody (its own user otherwise stays). */
static const char *become_nobody(pid_t parent) {
    if (geteuid() != 0) return NULL;
    if (setgroups(0, NULL) != 0) return "setgroups(0) failed";
    if (setresgid(NOBODY, NOBODY, NOBODY) != 0) return "setresgid(65534) failed";
    if (setresuid(NOBODY, NOBODY, NOBODY) != 0) return "setresuid(65534) failed";
    prctl(PR_SET_PDEATHSIG, 9 /* SIGKILL */, 0, 0, 0);
    if (getppid() != parent) _exit(PLEXUS_WORKER_EXIT_ORPHANED);   /* the host died during the change */
    return NULL;
}

static const char *map_ids(uid_t uid, gid_t gid) {
    char line[64];
    if (write_file("/proc/self/setgroups", "deny") != 0) return "writing /proc/self/setgroups failed";
    snprintf(line, sizeof line, "0 %u 1\n", (unsigned)uid);
    if (write_file("/proc/self/uid_map", line) != 0) return "writing /proc/self/uid_map failed";
    snprintf(line, sizeof line, "0 %u 1\n", (unsigned)gid);
    if (write_file("/proc/self/gid_map", line) != 0) return "writing /proc/self/gid_map failed";
    return NULL;
}

/* ---- the new root -------------------------------------------------------- */


static int mkdirs(char *p) {   /* mkdir -p, p is modified and restored */
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = 0;
        int rc = mkdir(p, 0755);
        *c = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

/* Flags a bind must keep when remounted: in a user namespace the kernel
** refuses to clear flags of the mount it came from. */
static unsigned long locked_flags(int fd) {
    char p[64];
    struct statvfs v;
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    if (statvfs(p, &v) != 0) return 0;
    unsigned long f = 0;
    if (v.f_flag & ST_RDONLY) f |= MS_RDONLY;
    if (v.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (v.f_flag & ST_NODEV) f |= MS_NODEV;
    if (v.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (v.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (v.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (v.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

/* Binds fd at STAGE+path, then remounts it read-only unless writable. */
static int bind_at(int fd, const char *path, int writable, int device) {
    char dst[4096], src[64];
    if (snprintf(dst, sizeof dst, "%s%s", STAGE, path) >= (int)sizeof dst) { errno = ENAMETOOLONG; return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0 || mkdirs(dst) != 0) return -1;
    if (S_ISDIR(st.st_mode)) { if (mkdir(dst, 0755) != 0 && errno != EEXIST) return -1; }
    else {
        int f = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (f < 0 && errno != EEXIST && errno != EISDIR) return -1;
        if (f >= 0) close(f);
    }
    snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return -1;
    if (device && writable) return 0;
    unsigned long f = MS_REMOUNT | MS_BIND | locked_flags(fd) | (writable ? 0 : MS_RDONLY) | (device ? 0 : MS_NOSUID | MS_NODEV);
    return mount(NULL, dst, NULL, f, NULL);
}

static int by_length(const void *a, const void *b) {
    size_t x = strlen(((const bind *)a)->path), y = strlen(((const bind *)b)->path);
    return x < y ? -1 : x > y;
}


/* The image is copied into the new root (then made read-only): a memfd
** lives on the kernel's internal mount, which cannot be bound elsewhere. */
static int copy_image(int plugin_fd, off_t size) {
    int out = open(CONFINE_PLUGIN_PATH, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0555);   /* after the pivot */
    if (out < 0) return -1;
    off_t off = 0;
    while (off < size) {
        ssize_t n = sendfile(out, plugin_fd, &off, (size_t)(size - off));
        if (n <= 0) { if (n < 0 && errno == EINTR) continue; close(out); if (n == 0) errno = EIO; return -1; }
    }
    return close(out);
}

/* Builds the root in a tmpfs on STAGE and pivots into it. The old root is
** detached, so nothing of the host's tree stays reachable. */

/* Opens every bind source while the worker is still the host's user: the
** operator granted these paths, so the way to them (/root is 0700) is walked
** with the host's rights; what is inside is then reached as uid 65534. */
static const char *open_sources(const confine_spec *s) {
    n_binds = 0;
    for (int i = 0; i < s->n_read + s->n_write; i++) {
        const char *p = i < s->n_read ? s->read[i] : s->write[i - s->n_read];
        int fd = open(p, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT && i < s->n_read) continue;   /* an optional system file the host lacks */
            snprintf(why, sizeof why, "cannot open the granted path %s: %s", p, strerror(errno));
            return why;
        }
        binds[n_binds++] = (bind){ p, fd, i >= s->n_read };
    }
    qsort(binds, (size_t)n_binds, sizeof *binds, by_length);   /* parents before what is bound inside them */
    for (int i = 0; i < 5; i++) dev_fd[i] = open(devs[i], O_PATH | O_CLOEXEC);
    return NULL;
}

/* The image arrives later in a warm worker: the root is sized for the
** largest image then (a limit only, and read-only before the plugin runs). */
static const char *build_root(const confine_spec *s, uint64_t image_size) {
    int n = n_binds;

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return "making the mount tree private failed";
    char opt[64];
    snprintf(opt, sizeof opt, "size=%llu,mode=0755", (unsigned long long)image_size + (1 << 20));
    if (mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, opt) != 0) return "mounting the new root (tmpfs) failed";
    snprintf(opt, sizeof opt, "size=%llu,mode=1777", (unsigned long long)s->tmp_size);
    if (mkdir(STAGE "/tmp", 01777) != 0 || mount("tmpfs", STAGE "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opt) != 0)
        return "mounting the private /tmp (tmpfs) failed";
    for (int i = 0; i < n; i++) {
        if (bind_at(binds[i].fd, binds[i].path, binds[i].writable, 0) != 0) {
            snprintf(why, sizeof why, "binding %s into the new root failed: %s", binds[i].path, strerror(errno));
            return why;
        }
        close(binds[i].fd);
        binds[i].fd = -1;
    }
    for (int i = 0; i < 5; i++) {
        if (dev_fd[i] >= 0 && bind_at(dev_fd[i], devs[i], 1, 1) != 0) {
            snprintf(why, sizeof why, "binding %s into the new root failed: %s", devs[i], strerror(errno));
            return why;
        }
        if (dev_fd[i] >= 0) close(dev_fd[i]);
        dev_fd[i] = -1;
    }
    if (mkdir(STAGE "/.plexus", 0755) != 0) return "creating /.plexus in the new root failed";
    /* merged-/usr systems: /lib, /lib64, /bin are links into /usr. */
    static const char *const links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        char from[32], target[256], at[64];
        snprintf(from, sizeof from, "/%s", links[i]);
        ssize_t k = readlink(from, target, sizeof target - 1);
        if (k <= 0) continue;
        target[k] = 0;
        snprintf(at, sizeof at, STAGE "/%s", links[i]);
        if (symlink(target, at) != 0 && errno != EEXIST) return "creating the /lib links in the new root failed";
    }
    if (chdir(STAGE) != 0) return "chdir into the new root failed";
    if (syscall(SYS_pivot_root, ".", ".") != 0) return "pivot_root failed";
    if (umount2(".", MNT_DETACH) != 0) return "detaching the old root failed";
    if (chdir("/") != 0) return "chdir / failed";
    return NULL;
}

/* Copies the image into the new root, then makes the root read-only. */
static const char *finish_root(int plugin_fd) {
    struct stat image;
    if (fstat(plugin_fd, &image) != 0) return "fstat of the plugin image failed";
    if (copy_image(plugin_fd, image.st_size) != 0) {
        snprintf(why, sizeof why, "copying the plugin image into the new root failed: %s", strerror(errno));
        return why;
    }
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        return "making the new root read-only failed";
    return NULL;
}

/* Drops every capability from the bounding set, until the kernel says
** there are no more (EINVAL) or that it may not (EPERM: after the uid
** change, or already done; trying the other 40 would only fail 40 times). */
static void drop_bounding_set(void) {
    for (int c = 0; c < 64; c++) if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) break;
}

/* What confine_prepare found, for confine_finish. */
static int prep_root, prep_abi, ns_errno, prep_ruleset = -1;
static const char *ns_failed, *ll_failed;

const char *confine_prepare(const confine_spec *s, uint64_t image_size) {
    prep_root = geteuid() == 0;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    prep_abi = s->without_landlock ? 0 : landlock_abi();
    /* Root builds the new root with its own rights, then becomes nobody (no
    ** user namespace needed: nobody holds no capability anywhere). Any other
    ** user needs a user namespace to mount, and maps itself to 0 inside. */
    int shared_net = s->netns_fd > 0 && !s->network;
    int flags = CLONE_NEWNS | CLONE_NEWIPC | (s->network || shared_net ? 0 : CLONE_NEWNET) | (prep_root ? 0 : CLONE_NEWUSER);
    const char *failed = NULL;
    ns_failed = NULL;
    ns_errno = 0;
    if (s->without_namespaces) { ns_failed = "unshare (left out by --without namespaces)"; ns_errno = EPERM; }
    else if (unshare(flags) != 0) { ns_failed = prep_root ? "unshare(mount, ipc, network namespaces)" : "unshare(user, mount, ipc, network namespaces)"; ns_errno = errno; }
    else if (!prep_root && (failed = map_ids(uid, gid)) != NULL) return failed;
    /* The host's empty namespace, joined (setns needs the rights root has
    ** over it); else one of its own, as without it. */
    else if (shared_net && setns(s->netns_fd - 1, CLONE_NEWNET) != 0 && unshare(CLONE_NEWNET) != 0) {
        ns_failed = "unshare(network namespace)"; ns_errno = errno;
    }
    if (s->netns_fd > 0) close(s->netns_fd - 1);
    /* Sources are opened in the new mount namespace (a bind must come from
    ** a mount of the caller's own namespace), or for Landlock alone. */
    if ((failed = open_sources(s)) != NULL) return failed;
    if (!ns_failed && (failed = build_root(s, image_size)) != NULL) return failed;
    ll_failed = "Landlock is not available (landlock_create_ruleset)";
    if (prep_abi) { ll_failed = NULL; prep_ruleset = landlock_prepare(s, prep_abi, !ns_failed, &ll_failed); }
    /* Root may still shrink its bounding set (after the uid change in
    ** confine_finish it cannot); done here, a warm worker has done it
    ** before its plugin arrives. */
    if (prep_root) drop_bounding_set();
    return NULL;
}

const char *confine_finish(const confine_spec *s, int plugin_fd, pid_t parent,
                           const char **mechanism, const char **plugin_path) {
    static char fd_path[32];
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", plugin_fd);
    *plugin_path = fd_path;
    *mechanism = "rlimits-only";
    const char *failed = NULL;
    if (!ns_failed) {
        if ((failed = finish_root(plugin_fd)) != NULL) return failed;
        *plugin_path = CONFINE_PLUGIN_PATH;
    }
    if ((failed = become_nobody(parent)) != NULL) return failed;

    if (prep_ruleset >= 0) ll_failed = landlock_enforce(prep_ruleset);
    for (int i = 0; i < n_binds; i++) if (binds[i].fd >= 0) close(binds[i].fd);   /* none reaches the plugin */
    for (int i = 0; i < 5; i++) if (dev_fd[i] >= 0) close(dev_fd[i]);
    if (!ns_failed) *mechanism = ll_failed ? "mount-namespace" : "mount-namespace+landlock";
    else if (!ll_failed) *mechanism = "landlock";
    else if (!s->rlimits_only_ok) {
        snprintf(why, sizeof why, "no confinement is possible: %s failed: %s, and %s; "
                 "set confinement: rlimits-only under defaults in plexus.yaml to run plugins with limits and the syscall filter only",
                 ns_failed, strerror(ns_errno), ll_failed);
        return why;
    }
    return NULL;
}

const char *confine_drop_capabilities(void) {
    drop_bounding_set();
    /* Root inside the namespace (uid 0) must not regain them through exec. */
    prctl(PR_SET_SECUREBITS, 0x2f /* NOROOT(+LOCKED) NO_SETUID_FIXUP(+LOCKED) KEEP_CAPS_LOCKED */, 0, 0, 0);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) != 0) return "capset (clearing every capability) failed";
    if (syscall(SYS_capget, &h, d) != 0) return "capget failed";
    for (int i = 0; i < 2; i++)
        if (d[i].effective || d[i].permitted || d[i].inheritable) return "capabilities remain after dropping them";
    return NULL;
}
