/* fdplace — checks plexus_posix_spawn_worker's descriptor renumbering for
** every placement of its four sources (FAULTS: a source already sitting on
** a descriptor the shuffle uses must not be clobbered).
**
** Built with Sources/CPlexusPOSIX/spawn.c. Run without arguments: it puts the
** channel, plugin, stdout and stderr sources on descriptors 1..20 (each source
** on each position, then 300 seeded random placements), spawns itself with
** --report FILE each time, and checks what the child found on 0..4 and that
** nothing else stayed open. Prints "ok N placements" and exits 0, or names
** the first wrong placement and exits 1. */
#define _GNU_SOURCE
#include "plexus_posix.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT 200   /* the parent's own stdout, kept away from the placements */

static int report(const char *path) {
    long ino[5];
    for (int fd = 0; fd < 5; fd++) {
        struct stat st;
        ino[fd] = fstat(fd, &st) == 0 ? (long)st.st_ino : -1;
    }
    int others = 0;
    for (int fd = 5; fd < 1024; fd++) if (fcntl(fd, F_GETFD) >= 0) others++;
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    fprintf(f, "%ld %ld %ld %ld %ld %d\n", ino[0], ino[1], ino[2], ino[3], ino[4], others);
    return fclose(f) == 0 ? 0 : 2;
}

static long inode_of(int fd) { struct stat st; return fstat(fd, &st) == 0 ? (long)st.st_ino : -2; }

/* Sources (originals at 100..103) placed on pos[0..3]; one spawn; checked. */
static int check(const int pos[4], const char *dir, int n) {
    static const char *const names[4] = { "channel", "plugin", "stdout", "stderr" };
    for (int i = 0; i < 4; i++) if (dup2(100 + i, pos[i]) != pos[i]) return dprintf(OUT, "dup2 to %d failed\n", pos[i]), 1;
    char path[4096], self[4096];
    snprintf(path, sizeof path, "%s/report-%d", dir, n);
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 1;
    self[k] = 0;
    char *argv[] = { "fdplace", "--report", path, NULL };
    int32_t pid = 0;
    int rc = plexus_posix_spawn_worker(self, argv, pos[0], pos[1], pos[2], pos[3], &pid);
    for (int i = 0; i < 4; i++) close(pos[i]);
    if (rc != 0) return dprintf(OUT, "spawn failed: %s\n", strerror(rc)), 1;
    int st = 0;
    waitpid(pid, &st, 0);
    FILE *f = fopen(path, "r");
    long got[5];
    int others = -1;
    if (!f || fscanf(f, "%ld %ld %ld %ld %ld %d", &got[0], &got[1], &got[2], &got[3], &got[4], &others) != 6)
        return dprintf(OUT, "no report for placement %d %d %d %d\n", pos[0], pos[1], pos[2], pos[3]), 1;
    fclose(f);
    unlink(path);
    struct stat null;
    stat("/dev/null", &null);
    long want[5] = { (long)null.st_ino, inode_of(102), inode_of(103), inode_of(100), inode_of(101) };
    static const int slot[5] = { -1, 2, 3, 0, 1 };
    for (int fd = 0; fd < 5; fd++) {
        if (got[fd] != want[fd]) {
            dprintf(OUT, "placement channel=%d plugin=%d stdout=%d stderr=%d: the worker's fd %d is not %s\n",
                    pos[0], pos[1], pos[2], pos[3], fd, fd == 0 ? "/dev/null" : names[slot[fd]]);
            return 1;
        }
    }
    if (others != 0) return dprintf(OUT, "placement %d %d %d %d: %d other descriptors stayed open\n", pos[0], pos[1], pos[2], pos[3], others), 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--report") == 0) return report(argv[2]);
    char dir[] = "/tmp/fdplace-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    dup2(1, OUT);
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/source-%d", dir, i);
        int fd = open(p, O_RDWR | O_CREAT, 0600);
        if (fd < 0 || dup2(fd, 100 + i) != 100 + i) return 1;
        close(fd);
    }
    int n = 0, bad = 0;
    srand(13);
    for (int round = 0; round < 80 + 300 && !bad; round++) {
        int pos[4] = { 0, 0, 0, 0 };
        if (round < 80) pos[round % 4] = 1 + round / 4;   /* each source on each of 1..20 */
        for (int i = 0; i < 4; i++) {
            while (pos[i] == 0) {
                int c = 1 + rand() % 20, clash = 0;
                for (int j = 0; j < 4; j++) clash |= j != i && pos[j] == c;
                if (!clash) pos[i] = c;
            }
        }
        bad = check(pos, dir, n++);
    }
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/source-%d", dir, i);
        unlink(p);
    }
    rmdir(dir);
    if (!bad) dprintf(OUT, "ok %d placements\n", n);
    return bad;
}
