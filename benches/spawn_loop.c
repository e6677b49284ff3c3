/* A bare spawn loop, for benches/probes.sh: N children of PROGRAM, one after the other,
 * each started with posix_spawn with its stdout and stderr in files of its own under DIR,
 * and waited for. Usage: spawn_loop N DIR PROGRAM. Run one per core. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawn_loop N DIR PROGRAM\n");
        return 2;
    }
    int n = atoi(argv[1]);
    char out[4096], err[4096];
    char *args[] = {argv[3], NULL};
    for (int i = 0; i < n; i++) {
        snprintf(out, sizeof out, "%s/%d.stdout", argv[2], i);
        snprintf(err, sizeof err, "%s/%d.stderr", argv[2], i);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        pid_t p;
        int st;
        if (posix_spawn(&p, argv[3], &fa, NULL, args, environ) || waitpid(p, &st, 0) != p ||
            !WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "spawn_loop: child %d failed\n", i);
            return 1;
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    return 0;
}
