/* System call names as the worker's filter knows them (libseccomp), so that
** plexus.yaml's syscalls: [name] is checked when the file is read, not when a
** worker starts. */
#include "plexus_posix.h"

#include <seccomp.h>

int plexus_posix_syscall_number(const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}
