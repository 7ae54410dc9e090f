/* System call names as the worker's filter knows them (libseccomp), so that
** plexus.yaml's syscalls: [name] is checked when the file is read, not when a
** worker starts. */
#include "plexus_posix.h"
#include "plexus_syscalls.h"

#include <seccomp.h>
#include <string.h>

int plexus_posix_syscall_number(const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}

int plexus_posix_never_grantable(const char *name) {
#define PLEXUS_IS(n) if (strcmp(name, n) == 0) return 1;
    PLEXUS_NEVER_GRANTABLE(PLEXUS_IS)
#undef PLEXUS_IS
    return 0;
}
