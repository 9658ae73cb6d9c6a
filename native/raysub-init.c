/*
 * raysub-init: the first program a sandboxed worker runs, inside bubblewrap's namespaces.
 *
 * It reads the task's start file and forks: it stays as the sandbox's reaper (reap.c: until the
 * worker has exited, and while the task is being stopped, until every process of it has), and the
 * child settles who the worker is and what it may use, tells the agent the worker is starting,
 * then becomes the worker:
 *   1. join a new, empty session keyring (the agent's own is not the task's to read), drop every
 *      capability from the bounding set, clear supplementary groups, switch to the task's uid and
 *      gid (when it has its own), clear every remaining capability set;
 *   2. set no_new_privs and the resource limits the start file lists, and install its seccomp
 *      filter (a classic BPF program the agent compiled: src/agent/sandbox/seccomp.ts);
 *   3. write "ok" on fd 4 and close it;
 *   4. execvp the worker's argv with exactly the task's environment (PATH searched in it).
 *
 * One small static executable instead of setpriv followed by a shell script: two dynamic
 * executables fewer on every task's start. The agent keeps the setpriv and shell path for
 * machines where this program could not be built.
 *
 * With --serve [ROOT...] it also stays in the sandbox as root and runs one task after another (a
 * node's consecutive tasks reuse a sandbox: no new bubblewrap, namespaces or cgroups per task):
 *   - it creates two FIFOs, /run/raysub/ctl/out and /run/raysub/ctl/err (the agent reads them
 *     through the bound control directory), says "serve" on fd 4, and waits for "run" on fd 5;
 *   - on "run" it first binds the task's job directories from the ROOTs (binds.c: only where the
 *     agent wrote /run/raysub/ctl/binds), unbinding those of the task before;
 *   - then it reads /run/raysub/ctl/start, forks, and the child points stdout and stderr at
 *     the FIFOs, settles itself as in steps 1-4 (it says "ok" on fd 4, as a line);
 *   - when the child exits, every other process in the sandbox's PID namespace is killed and
 *     reaped, /tmp and /dev/shm are emptied, System V IPC objects and POSIX message queues
 *     removed; then it says
 *     "exit CODE SIGNAL" on fd 4 (-1 for the code of a killed worker, 0 for no signal) and
 *     waits for the next "run". End of fd 5 ends it.
 * Nothing the task runs can reach fds 3-5 (closed before exec) or this process (root).
 *
 * With --clear-keys UID it invalidates the keys the kernel keeps for a uid (keys.c).
 *
 * The parts: this file (the one-task supervisor and main), start.c (the start file, settling the
 * worker), serve.c (--serve), binds.c (a served sandbox's job directories), reap.c (staying as the reaper, and the stop signal), keys.c (kernel
 * keyrings: a session keyring per task, --clear-keys), base.c (failing with a reason, dropping to
 * the task's identity) and base.h (what the parts share).
 *
 * Start file (written by the agent, readable by root only): a sequence of NUL-terminated fields
 *   "raysub-init 6", uid ("-": keep), gid ("-": keep), working directory ("-": keep), seccomp
 *   filter ("-": none; else the bytes of a struct sock_filter array, in hex), stderr ("merge": the
 *   worker's stderr is its stdout, so its output is one stream in the order it was written;
 *   "keep": its own), number of resource
 *   limits, then for each its name (for messages), setrlimit resource number and value, number of
 *   environment entries, the entries, number of argv words, the words.
 */
#include "base.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * One task: fork the worker and stay as the sandbox's reaper until it has exited (and, when it is
 * being stopped, until every other process of the task has too: reap.c); then end as it ended, so
 * bubblewrap reports its status.
 */
static int supervise(struct start *s) {
  become_subreaper();
  supervisor_signals();
  pid_t pid = fork();
  if (pid < 0) fail("cannot fork", errno);
  if (pid == 0) {
    worker_signals();
    become_worker(s, "ok");
  }
  close(GATE_FD);
  close(READY_FD);
  close(CONTROL_FD);
  oom_score_adj("-1000");
  int status = wait_worker(pid);
  if (stop_requested()) wait_rest();
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 126;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts(FORMAT);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
    set_roots(argc - 2, argv + 2);
    return serve();
  }
  if (argc > 2 && strcmp(argv[1], "--clear-keys") == 0) return clear_keys(argv[2]);
  struct start s = parse(argc > 1 ? argv[1] : START_FILE);
  return supervise(&s);
}
