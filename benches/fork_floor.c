/* The fork floor of a builtin probe, for benches/probes.sh: N children, one after the
 * other, each fork -> [its own mount and PID namespace, a fresh /proc] -> no_new_privs ->
 * Landlock restrict (a ruleset built once) -> open/read one file -> _exit; the parent
 * waits for each. Usage: fork_floor N [isolated]. Run one per core. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fork_floor N [isolated]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    int isolated = argc > 2;
    struct landlock_ruleset_attr ra = {
        .handled_access_fs = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                             LANDLOCK_ACCESS_FS_EXECUTE,
    };
    int rs = syscall(SYS_landlock_create_ruleset, &ra, sizeof ra, 0);
    struct landlock_path_beneath_attr pb = {
        .allowed_access = ra.handled_access_fs,
        .parent_fd = open("/usr", O_PATH | O_CLOEXEC),
    };
    if (rs < 0 || syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0)) {
        perror("landlock");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        long flags = SIGCHLD | (isolated ? CLONE_NEWNS | CLONE_NEWPID : 0);
        pid_t p = syscall(SYS_clone, flags, 0, 0, 0, 0);
        if (p == 0) {
            if (isolated && (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
                             mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)))
                _exit(3);
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if (syscall(SYS_landlock_restrict_self, rs, 0))
                _exit(4);
            char b[512];
            int fd = open("/usr/lib/os-release", O_RDONLY | O_CLOEXEC);
            _exit(fd < 0 || read(fd, b, sizeof b) <= 0);
        }
        int st;
        if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "fork_floor: child %d failed (%d)\n", i, st);
            return 1;
        }
    }
    return 0;
}
