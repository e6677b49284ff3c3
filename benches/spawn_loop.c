/* A bare spawn loop, for benches/probes.sh: N children of PROGRAM, one after the other,
 * each started with posix_spawn in a directory of its own (DIR/<i>, created here, its
 * working directory) with its stdout and stderr in files of its own there, and waited
 * for. What nexusmon writes per exec child is one such directory (its scratch directory,
 * under /dev/shm by default) and a log only for non-empty output, so DIR belongs on the
 * same filesystem (probes.sh uses /dev/shm): on ext4 the files' creation and the journal
 * make this loop's own time vary several-fold with the disk's other work.
 * With a fourth argument `s`, each child starts in a session of its own
 * (POSIX_SPAWN_SETSID), as every nexusmon probe child does: the loop's floor for that
 * guarantee (each setsid makes a scheduler autogroup; see `spawn::child_main`).
 * Usage: spawn_loop N DIR PROGRAM [s]. Run one per core. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawn_loop N DIR PROGRAM [s]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    char dir[4096], out[4200], err[4200];
    char *args[] = {argv[3], NULL};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (argc > 4 && argv[4][0] == 's')
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    for (int i = 0; i < n; i++) {
        snprintf(dir, sizeof dir, "%s/%d", argv[2], i);
        snprintf(out, sizeof out, "%s/stdout", dir);
        snprintf(err, sizeof err, "%s/stderr", dir);
        if (mkdir(dir, 0755)) {
            perror(dir);
            return 1;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addchdir_np(&fa, dir);
        pid_t p;
        int st;
        if (posix_spawn(&p, argv[3], &fa, &attr, args, environ) || waitpid(p, &st, 0) != p ||
            !WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "spawn_loop: child %d failed\n", i);
            return 1;
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    return 0;
}
