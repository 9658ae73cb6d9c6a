/*
 * raysub-init --serve: stay in the sandbox as root and run one task after another (see
 * raysub-init.c for the protocol on fds 4 and 5), emptying the sandbox between them.
 */
#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SERVE_START "/run/raysub/ctl/start"
#define SERVE_OUT "/run/raysub/ctl/out"
#define SERVE_ERR "/run/raysub/ctl/err"
#define SERVE_MQUEUE "/run/raysub/mqueue"

static void say(const char *line) {
  size_t n = strlen(line);
  ssize_t w;
  while ((w = write(READY_FD, line, n)) < 0 && errno == EINTR) {
  }
  if (w != (ssize_t)n) fail("cannot write to the agent", errno);
}

/* One line (at most 63 bytes) from the control fd; 0 at its end. */
static int control_line(char *out, size_t size) {
  size_t got = 0;
  for (;;) {
    char c;
    ssize_t n = read(CONTROL_FD, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    if (c == '\n') break;
    if (got + 1 < size) out[got++] = c;
  }
  out[got] = '\0';
  return 1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  if (ftw->level == 0) return 0;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0; /* what cannot be removed (a mount point's parents) stays */
}

/* Empty a scratch filesystem, staying on it (paths bound below it are other mounts). */
static void empty_dir(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); }

/* Remove every System V IPC object of the sandbox's IPC namespace (listed in /proc/sysvipc). */
static void remove_ipc(const char *list, int kind) {
  FILE *f = fopen(list, "re");
  if (!f) return;
  char line[512];
  int header = 1;
  while (fgets(line, sizeof line, f)) {
    if (header) {
      header = 0;
      continue;
    }
    long key, id;
    if (sscanf(line, "%ld %ld", &key, &id) != 2) continue;
    if (kind == 0) shmctl((int)id, IPC_RMID, NULL);
    if (kind == 1) semctl((int)id, 0, IPC_RMID);
    if (kind == 2) msgctl((int)id, IPC_RMID, NULL);
  }
  fclose(f);
}

/*
 * POSIX message queues live in the IPC namespace too, listed only by an mqueue filesystem: one is
 * mounted where tasks cannot reach it (/run/raysub is root's). 0 if it could not be.
 */
static int mqueue_mounted = 0;

static void mount_mqueue(void) {
  if (mkdir(SERVE_MQUEUE, 0700) < 0 && errno != EEXIST) return;
  mqueue_mounted = mount("mqueue", SERVE_MQUEUE, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0;
}

static void remove_mqueues(void) {
  if (!mqueue_mounted) return;
  DIR *d = opendir(SERVE_MQUEUE);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

/* Kill and reap everything the task left in the PID namespace, then empty its scratch space. */
static void sweep(void) {
  for (int round = 0; round < 3; round++) {
    kill(-1, SIGKILL); /* every process here but this one and the namespace's init */
    for (;;) {
      pid_t w = waitpid(-1, NULL, 0);
      if (w > 0 || (w < 0 && errno == EINTR)) continue;
      break; /* ECHILD: nothing left that is ours (a subreaper inherits every orphan) */
    }
  }
  empty_dir("/tmp");
  empty_dir("/dev/shm");
  remove_ipc("/proc/sysvipc/shm", 0);
  remove_ipc("/proc/sysvipc/sem", 1);
  remove_ipc("/proc/sysvipc/msg", 2);
  remove_mqueues();
}

int serve(void) {
  close(GATE_FD);
  become_subreaper();
  oom_score_adj("-1000");
  supervisor_signals();
  mount_mqueue();
  if (mkfifo(SERVE_OUT, 0600) < 0 && errno != EEXIST) fail("cannot create " SERVE_OUT, errno);
  if (mkfifo(SERVE_ERR, 0600) < 0 && errno != EEXIST) fail("cannot create " SERVE_ERR, errno);
  say("serve\n");
  char line[64];
  while (control_line(line, sizeof line)) {
    if (strcmp(line, "run") != 0) fail("unknown request on the control fd", 0);
    /* The task's job directories, before anything of the task runs (binds.c). */
    sync_binds();
    supervisor_signals(); /* a stop notice is for the task about to start, not one before it */
    pid_t pid = fork();
    if (pid < 0) fail("cannot fork", errno);
    if (pid == 0) {
      /* Set-up errors go to the sandbox's stderr (the agent reads it when a start fails). */
      err_fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
      if (err_fd < 0) err_fd = 2;
      worker_signals();
      oom_score_adj("0");
      setsid();
      struct start s = parse(SERVE_START);
      int out = open(SERVE_OUT, O_WRONLY);
      if (out < 0) fail("cannot open " SERVE_OUT, errno);
      int err = open(SERVE_ERR, O_WRONLY);
      if (err < 0) fail("cannot open " SERVE_ERR, errno);
      if (dup2(out, 1) < 0 || dup2(err, 2) < 0) fail("cannot redirect output", errno);
      close(out);
      close(err);
      become_worker(&s, "ok\n");
    }
    int status = wait_worker(pid);
    /* Stopping: the task's other processes get the agent's grace period too (reap.c). */
    if (stop_requested()) wait_rest();
    sweep();
    char report[64];
    snprintf(report, sizeof report, "exit %d %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    say(report);
  }
  return 0;
}

