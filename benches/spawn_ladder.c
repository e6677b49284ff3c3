/* The bare spawn loop (benches/spawn_loop.c) with the per-child steps of nexusmon's exec
 * children added one at a time, for benches/ladder.sh: what each guarantee costs in CPU
 * and wall time on this machine, against the loop without it, in one sitting.
 *
 * N children of /bin/true, one after the other, each started with vfork in a directory of
 * its own (DIR/<i>, created here, its working directory) with its stdout and stderr in
 * files of its own there, and waited for; the environment is empty (as a probe's is).
 * STEPS, any of:
 *   s  each child in a session of its own (setsid; a scheduler autogroup per child);
 *   p  every child in one PID namespace of the loop's (one placeholder init per loop, as
 *      one worker's children share one);
 *   n  each child in a private copy of the mount namespace, every mount read-only but a
 *      bind of its own directory (the exec baseline's read-only host), torn down at its
 *      exit;
 *   h  that copy for every other child only (a both-lanes run: the baseline copies, the
 *      scenario lane does not);
 *   l  each child restricted by Landlock (/usr readable and executable; no-new-privs);
 *      with h, only the children that do not copy (a both-lanes run: the scenario lane
 *      is restricted, the baseline is not);
 *   r  with n or h: the copy's teardown off the child's exit, as nexusmon's releaser does
 *      it: the child sends its namespace (PIDFD_GET_MNT_NAMESPACE of a pidfd of itself)
 *      with that pidfd over a Unix socket to a thread of the loop's with a descriptor
 *      table of its own, which closes both once the pidfd says the child exited (the
 *      teardown's CPU and grace period are that thread's).
 * Needs root for p, n and h. Usage: spawn_ladder N DIR [STEPS]. Run one per core. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/mount.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* PIDFD_GET_MNT_NAMESPACE (_IO(0xFF, 3), Linux 6.11). */
#define GET_MNT_NS 0xFF03
#define HELD_MAX 64
/* Namespaces received and released by the releaser (printed with LADDER_DEBUG set). */
static volatile long received, released;

/* The releaser: holds each received [namespace, pidfd] until the pidfd is readable (the
 * child exited), then closes both. Its descriptor table is its own (no vfork child ever
 * copies a held namespace). */
static void *releaser(void *arg) {
    int sock = *(int *)arg;
    if (unshare(CLONE_FILES)) {
        perror("spawn_ladder: releaser unshare(CLONE_FILES)");
        exit(1);
    }
    int held_ns[HELD_MAX], held_pid[HELD_MAX], n = 0;
    for (;;) {
        struct pollfd fds[HELD_MAX + 1];
        fds[0] = (struct pollfd){.fd = n < HELD_MAX ? sock : -1, .events = POLLIN};
        for (int i = 0; i < n; i++)
            fds[i + 1] = (struct pollfd){.fd = held_pid[i], .events = POLLIN};
        if (poll(fds, n + 1, -1) < 0)
            continue;
        for (int i = n - 1; i >= 0; i--)
            if (fds[i + 1].revents) {
                close(held_ns[i]);
                close(held_pid[i]);
                released++;
                held_ns[i] = held_ns[--n];
                held_pid[i] = held_pid[n];
            }
        if (fds[0].revents & POLLIN) {
            char buf[1];
            char cbuf[CMSG_SPACE(2 * sizeof(int))];
            struct iovec iov = {.iov_base = buf, .iov_len = 1};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                               .msg_controllen = sizeof cbuf};
            if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) <= 0)
                return NULL;
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(2 * sizeof(int))) {
                memcpy(&held_ns[n], CMSG_DATA(c), sizeof(int));
                memcpy(&held_pid[n], (char *)CMSG_DATA(c) + sizeof(int), sizeof(int));
                n++;
                received++;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: spawn_ladder N DIR [STEPS]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    const char *steps = argc > 3 ? argv[3] : "";
    int setsid_each = strchr(steps, 's') != NULL, pid_ns = strchr(steps, 'p') != NULL;
    int mounts_each = strchr(steps, 'n') != NULL, mounts_half = strchr(steps, 'h') != NULL;
    int landlock = strchr(steps, 'l') != NULL, release = strchr(steps, 'r') != NULL;
    int send_sock = -1;
    static int recv_sock;
    if (release) {
        int sv[2];
        pthread_t t;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) ||
            pthread_create(&t, NULL, releaser, &sv[0])) {
            perror("spawn_ladder: releaser");
            return 1;
        }
        recv_sock = sv[0];
        send_sock = sv[1];
        /* The releaser closes the receiving end in the loop's table once it has a table
         * of its own: crude, but a short wait suffices for a bench. */
        usleep(10000);
        close(recv_sock);
    }
    int ruleset = -1;
    if (landlock) {
        struct landlock_ruleset_attr ra = {.handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE |
                                                                 LANDLOCK_ACCESS_FS_WRITE_FILE |
                                                                 LANDLOCK_ACCESS_FS_READ_FILE |
                                                                 LANDLOCK_ACCESS_FS_READ_DIR};
        struct landlock_path_beneath_attr pb = {
            .allowed_access = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
                              LANDLOCK_ACCESS_FS_READ_DIR,
            .parent_fd = open("/usr", O_PATH | O_CLOEXEC)};
        ruleset = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof ra, 0);
        if (ruleset < 0 || pb.parent_fd < 0 ||
            syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0)) {
            perror("spawn_ladder: landlock");
            return 1;
        }
    }
    /* The copies are made of a private namespace of the loop's own (as nexusmon's are of
     * its init's, `/` made private once): nothing a child mounts propagates anywhere. */
    if ((mounts_each || mounts_half) &&
        (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))) {
        perror("spawn_ladder: private mount namespace");
        return 1;
    }
    pid_t init = -1;
    if (pid_ns) {
        if (unshare(CLONE_NEWPID)) {
            perror("spawn_ladder: unshare(CLONE_NEWPID)");
            return 1;
        }
        init = fork();
        if (init < 0) {
            perror("spawn_ladder: fork");
            return 1;
        }
        if (init == 0) {
            /* The placeholder init: holds no descriptor of the caller's, waits to be killed. */
            close(0);
            close(1);
            close(2);
            for (;;)
                pause();
        }
    }
    char dir[4096], out[4200], err[4200];
    char *args[] = {"/bin/true", NULL};
    char *envp[] = {NULL};
    int status = 0;
    for (int i = 0; i < n && status == 0; i++) {
        snprintf(dir, sizeof dir, "%s/%d", argv[2], i);
        snprintf(out, sizeof out, "%s/stdout", dir);
        snprintf(err, sizeof err, "%s/stderr", dir);
        if (mkdir(dir, 0755)) {
            perror(dir);
            status = 1;
            break;
        }
        volatile int copy = mounts_each || (mounts_half && i % 2 == 0);
        pid_t p = vfork();
        if (p == 0) {
            int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            int e = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
                _exit(101);
            if (copy) {
                struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
                struct mount_attr rw = {.attr_clr = MOUNT_ATTR_RDONLY};
                if (unshare(CLONE_NEWNS) || mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) ||
                    syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) ||
                    syscall(SYS_mount_setattr, AT_FDCWD, dir, AT_RECURSIVE, &rw, sizeof rw))
                    _exit(102);
                if (release) {
                    int fds[2];
                    fds[1] = (int)syscall(SYS_pidfd_open, getpid(), 0);
                    fds[0] = fds[1] < 0 ? -1 : ioctl(fds[1], GET_MNT_NS, 0);
                    if (fds[0] < 0)
                        _exit(106);
                    char b = 0, cbuf[CMSG_SPACE(sizeof fds)];
                    struct iovec iov = {.iov_base = &b, .iov_len = 1};
                    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                       .msg_controllen = sizeof cbuf};
                    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                    c->cmsg_level = SOL_SOCKET;
                    c->cmsg_type = SCM_RIGHTS;
                    c->cmsg_len = CMSG_LEN(sizeof fds);
                    memcpy(CMSG_DATA(c), fds, sizeof fds);
                    /* As nexusmon: without waiting; a full socket leaves the copy to the
                     * child's exit. */
                    sendmsg(send_sock, &m, MSG_DONTWAIT);
                    close(fds[0]);
                    close(fds[1]);
                }
            }
            if (chdir(dir))
                _exit(103);
            if (setsid_each && setsid() < 0)
                _exit(104);
            if (landlock && !(mounts_half && copy) &&
                (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
                 syscall(SYS_landlock_restrict_self, ruleset, 0)))
                _exit(105);
            execve(args[0], args, envp);
            _exit(127);
        }
        int st;
        if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "spawn_ladder: child %d failed (status %d)\n", i, st);
            status = 1;
        }
    }
    if (getenv("LADDER_DEBUG"))
        fprintf(stderr, "spawn_ladder: releaser received %ld, released %ld\n", received,
                released);
    if (init > 0) {
        kill(init, SIGKILL);
        waitpid(init, NULL, 0);
    }
    return status;
}
