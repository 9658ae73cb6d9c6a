/*
 * raysub-init: the first program a sandboxed worker runs, inside bubblewrap's namespaces.
 *
 * It reads the task's start file, settles who the worker is and what it may use, tells the agent
 * the worker is starting, then becomes the worker:
 *   1. drop every capability from the bounding set, clear supplementary groups, switch to the
 *      task's uid and gid (when it has its own), clear every remaining capability set;
 *   2. set no_new_privs and the resource limits the start file lists;
 *   3. write "ok" on fd 4 and close it;
 *   4. execvp the worker's argv with exactly the task's environment (PATH searched in it).
 *
 * One small static executable instead of setpriv followed by a shell script: two dynamic
 * executables fewer on every task's start. The agent keeps the setpriv and shell path for
 * machines where this program could not be built.
 *
 * With --serve it stays in the sandbox as root and runs one task after another (tasks of one job
 * on one node reuse a sandbox: no new bubblewrap, namespaces or cgroups per task):
 *   - it creates two FIFOs, /run/raysub/ctl/out and /run/raysub/ctl/err (the agent reads them
 *     through the bound control directory), says "serve" on fd 4, and waits for "run" on fd 5;
 *   - on "run" it reads /run/raysub/ctl/start, forks, and the child points stdout and stderr at
 *     the FIFOs, settles itself as in steps 1-4 (it says "ok" on fd 4, as a line);
 *   - when the child exits, every other process in the sandbox's PID namespace is killed and
 *     reaped, /tmp and /dev/shm are emptied, System V IPC objects and POSIX message queues
 *     removed; then it says
 *     "exit CODE SIGNAL" on fd 4 (-1 for the code of a killed worker, 0 for no signal) and
 *     waits for the next "run". End of fd 5 ends it.
 * Nothing the task runs can reach fds 3-5 (closed before exec) or this process (root).
 *
 * Start file (written by the agent, readable by root only): a sequence of NUL-terminated fields
 *   "raysub-init 3", uid ("-": keep), gid ("-": keep), working directory ("-": keep), number of
 *   resource limits, then for each its name (for messages), setrlimit resource number and value,
 *   number of environment entries, the entries, number of argv words, the words.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_FILE "/run/raysub/start"
#define SERVE_START "/run/raysub/ctl/start"
#define SERVE_OUT "/run/raysub/ctl/out"
#define SERVE_ERR "/run/raysub/ctl/err"
#define SERVE_MQUEUE "/run/raysub/mqueue"
#define READY_FD 4
#define GATE_FD 3
#define CONTROL_FD 5
#define FORMAT "raysub-init 3"
#define MAX_LIMITS 16
#define MAX_START_BYTES (64 << 20)
#define EXIT_SETUP 125

extern char **environ;

/* Where set-up errors go: stderr, or the sandbox's own stderr in a served task's child. */
static int err_fd = 2;

static void fail(const char *what, int err) {
  if (err)
    dprintf(err_fd, "raysub: %s: %s\n", what, strerror(err));
  else
    dprintf(err_fd, "raysub: %s\n", what);
  exit(EXIT_SETUP);
}

struct reader {
  char *p;
  char *end;
};

static char *field(struct reader *r) {
  char *start = r->p;
  char *nul = memchr(start, '\0', (size_t)(r->end - start));
  if (!nul) fail("malformed start file (truncated)", 0);
  r->p = nul + 1;
  return start;
}

static long number(struct reader *r, const char *what) {
  char *s = field(r);
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < 0) {
    dprintf(err_fd, "raysub: malformed start file (%s: \"%s\")\n", what, s);
    exit(EXIT_SETUP);
  }
  return v;
}

/* "-" means unset (-1). */
static long optional(struct reader *r, const char *what) {
  if (strcmp(r->p, "-") == 0) {
    field(r);
    return -1;
  }
  return number(r, what);
}

static char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open the start file", errno);
  struct stat st;
  if (fstat(fd, &st) < 0) fail("cannot stat the start file", errno);
  if (st.st_size <= 0 || st.st_size > MAX_START_BYTES) fail("start file is empty or too large", 0);
  char *buf = malloc((size_t)st.st_size);
  if (!buf) fail("out of memory", 0);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot read the start file", n < 0 ? errno : 0);
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  return buf;
}

static void drop_identity(long uid, long gid) {
  /* Bounding set first: dropping from it needs CAP_SETPCAP, which goes with the uid change. */
  for (int cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) fail("cannot drop capabilities from the bounding set", errno);
  }
  if (setgroups(0, NULL) < 0) fail("cannot clear supplementary groups", errno);
  if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) fail("cannot set the task's gid", errno);
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) fail("cannot set the task's uid", errno);
}

/* The capset(2) ABI (linux/capability.h, not shipped with every C library's headers). */
#define CAPABILITY_VERSION_3 0x20080522
struct cap_header {
  uint32_t version;
  int pid;
};
struct cap_data {
  uint32_t effective, permitted, inheritable;
};

static void clear_capabilities(void) {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) fail("cannot clear ambient capabilities", errno);
  struct cap_header hdr = {.version = CAPABILITY_VERSION_3, .pid = 0};
  struct cap_data data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) < 0) fail("cannot clear capabilities", errno);
}

struct limit {
  const char *what;
  long resource, value;
};

static void set_limit(const struct limit *l) {
  struct rlimit rl = {.rlim_cur = (rlim_t)l->value, .rlim_max = (rlim_t)l->value};
  if (setrlimit((int)l->resource, &rl) < 0) {
    dprintf(err_fd, "raysub: cannot set the %s limit: %s\n", l->what, strerror(errno));
    exit(EXIT_SETUP);
  }
}

struct start {
  long uid, gid;
  char *cwd; /* NULL: keep */
  long nlimits;
  struct limit limits[MAX_LIMITS];
  char **env;
  char **argv;
};

static struct start parse(const char *path) {
  size_t len;
  char *buf = slurp(path, &len);
  struct reader r = {buf, buf + len};
  struct start s;
  if (strcmp(field(&r), FORMAT) != 0) fail("start file is not in " FORMAT " format", 0);
  s.uid = optional(&r, "uid");
  s.gid = optional(&r, "gid");
  s.cwd = field(&r);
  if (strcmp(s.cwd, "-") == 0) s.cwd = NULL;
  s.nlimits = number(&r, "number of limits");
  if (s.nlimits > MAX_LIMITS) fail("malformed start file (too many limits)", 0);
  for (long i = 0; i < s.nlimits; i++) {
    s.limits[i].what = field(&r);
    s.limits[i].resource = number(&r, "limit resource");
    s.limits[i].value = number(&r, "limit value");
  }
  long nenv = number(&r, "environment size");
  if (nenv > 1 << 20) fail("malformed start file (environment size)", 0);
  s.env = calloc((size_t)nenv + 1, sizeof *s.env);
  if (!s.env) fail("out of memory", 0);
  for (long i = 0; i < nenv; i++) s.env[i] = field(&r);
  long nargv = number(&r, "argv size");
  if (nargv < 1 || nargv > 1 << 20) fail("malformed start file (argv size)", 0);
  s.argv = calloc((size_t)nargv + 1, sizeof *s.argv);
  if (!s.argv) fail("out of memory", 0);
  for (long i = 0; i < nargv; i++) s.argv[i] = field(&r);
  return s;
}

/* Steps 1-4: settle the worker, say "ok" on the ready fd, become the worker. */
static void become_worker(struct start *s, const char *ok) {
  if (s->cwd && chdir(s->cwd) < 0) fail("cannot enter the task's directory", errno);
  if (s->uid >= 0) drop_identity(s->uid, s->gid >= 0 ? s->gid : s->uid);
  clear_capabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("cannot set no_new_privs", errno);
  for (long i = 0; i < s->nlimits; i++) set_limit(&s->limits[i]);

  close(GATE_FD);
  close(CONTROL_FD);
  size_t n = strlen(ok);
  if (write(READY_FD, ok, n) != (ssize_t)n) fail("cannot tell the agent the worker is starting", errno);
  close(READY_FD);

  /* execvp searches the PATH of the environment it runs in: the task's. */
  environ = s->env;
  execvp(s->argv[0], s->argv);
  int err = errno;
  fprintf(stderr, "raysub: %s: %s\n", s->argv[0], err == ENOENT ? "not found" : strerror(err));
  exit(err == ENOENT ? 127 : 126);
}

/* --- serve mode ------------------------------------------------------------------------------ */

static const int HANDLED[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2};

static void dispositions(void (*how)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = how;
  for (size_t i = 0; i < sizeof HANDLED / sizeof *HANDLED; i++) sigaction(HANDLED[i], &sa, NULL);
}

static void oom_score_adj(const char *value) {
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (write(fd, value, strlen(value)) < 0) {
    /* best effort: the memory cgroup still bounds the sandbox */
  }
  close(fd);
}

static void say(const char *line) {
  size_t n = strlen(line);
  if (write(READY_FD, line, n) != (ssize_t)n) fail("cannot write to the agent", errno);
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

static int serve(void) {
  close(GATE_FD);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) fail("cannot become a subreaper", errno);
  oom_score_adj("-1000");
  dispositions(SIG_IGN);
  mount_mqueue();
  if (mkfifo(SERVE_OUT, 0600) < 0 && errno != EEXIST) fail("cannot create " SERVE_OUT, errno);
  if (mkfifo(SERVE_ERR, 0600) < 0 && errno != EEXIST) fail("cannot create " SERVE_ERR, errno);
  say("serve\n");
  char line[64];
  while (control_line(line, sizeof line)) {
    if (strcmp(line, "run") != 0) fail("unknown request on the control fd", 0);
    pid_t pid = fork();
    if (pid < 0) fail("cannot fork", errno);
    if (pid == 0) {
      /* Set-up errors go to the sandbox's stderr (the agent reads it when a start fails). */
      err_fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
      if (err_fd < 0) err_fd = 2;
      dispositions(SIG_DFL);
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
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    sweep();
    char report[64];
    snprintf(report, sizeof report, "exit %d %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    say(report);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts(FORMAT);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--serve") == 0) return serve();
  struct start s = parse(argc > 1 ? argv[1] : START_FILE);
  become_worker(&s, "ok");
  return 126;
}
