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
 * With --serve it also stays in the sandbox as root and runs one task after another (tasks of one job
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
 * With --clear-keys UID it invalidates the keys the kernel keeps for a uid (keys.c).
 *
 * The parts: this file (the start file, settling the worker), serve.c (--serve), reap.c (staying
 * as the reaper, and the stop signal), keys.c (kernel keyrings: a session keyring per task,
 * --clear-keys).
 *
 * Start file (written by the agent, readable by root only): a sequence of NUL-terminated fields
 *   "raysub-init 5", uid ("-": keep), gid ("-": keep), working directory ("-": keep), seccomp
 *   filter ("-": none; else the bytes of a struct sock_filter array, in hex), stderr ("merge": the
 *   worker's stderr is its stdout, so its output is one stream in the order it was written;
 *   "keep": its own), number of resource
 *   limits, then for each its name (for messages), setrlimit resource number and value, number of
 *   environment entries, the entries, number of argv words, the words.
 */
#include "raysub-init.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The seccomp(2) ABI (linux/seccomp.h). */
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)

extern char **environ;

int err_fd = 2;

void fail(const char *what, int err) {
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

void drop_identity(long uid, long gid) {
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

static void set_limit(const struct limit *l) {
  struct rlimit rl = {.rlim_cur = (rlim_t)l->value, .rlim_max = (rlim_t)l->value};
  if (setrlimit((int)l->resource, &rl) < 0) {
    dprintf(err_fd, "raysub: cannot set the %s limit: %s\n", l->what, strerror(errno));
    exit(EXIT_SETUP);
  }
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* A seccomp filter written as hex ("-": none). */
static struct bpf_prog hex_filter(const char *hex) {
  struct bpf_prog prog = {0, NULL};
  if (strcmp(hex, "-") == 0) return prog;
  size_t n = strlen(hex);
  if (n == 0 || n % (2 * sizeof(struct bpf_insn)) != 0 || n / (2 * sizeof(struct bpf_insn)) > MAX_FILTER) fail("malformed start file (seccomp filter size)", 0);
  unsigned char *bytes = malloc(n / 2);
  if (!bytes) fail("out of memory", 0);
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) fail("malformed start file (seccomp filter)", 0);
    bytes[i] = (unsigned char)(hi << 4 | lo);
  }
  prog.len = (unsigned short)(n / (2 * sizeof(struct bpf_insn)));
  prog.filter = (struct bpf_insn *)(void *)bytes;
  return prog;
}

struct start parse(const char *path) {
  size_t len;
  char *buf = slurp(path, &len);
  struct reader r = {buf, buf + len};
  struct start s;
  if (strcmp(field(&r), FORMAT) != 0) fail("start file is not in " FORMAT " format", 0);
  s.uid = optional(&r, "uid");
  s.gid = optional(&r, "gid");
  s.cwd = field(&r);
  if (strcmp(s.cwd, "-") == 0) s.cwd = NULL;
  s.filter = hex_filter(field(&r));
  char *stderr_mode = field(&r);
  if (strcmp(stderr_mode, "merge") == 0)
    s.merge_stderr = 1;
  else if (strcmp(stderr_mode, "keep") == 0)
    s.merge_stderr = 0;
  else
    fail("malformed start file (stderr)", 0);
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

/* The last step before exec: from here on the filter refuses what the task may not call. */
static void install_filter(struct bpf_prog *filter) {
  if (filter->len == 0) return;
  /* SPEC_ALLOW: the filter narrows the system calls; it does not also switch speculative-store
   * mitigations on (which older kernels did for every filtered process, at a cost). */
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, filter) == 0) return;
  if (errno == EINVAL && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter) == 0) return;
  fail("cannot install the seccomp filter", errno);
}

void become_worker(struct start *s, const char *ok) {
  if (s->cwd && chdir(s->cwd) < 0) fail("cannot enter the task's directory", errno);
  join_session_keyring();
  if (s->uid >= 0) drop_identity(s->uid, s->gid >= 0 ? s->gid : s->uid);
  clear_capabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("cannot set no_new_privs", errno);
  for (long i = 0; i < s->nlimits; i++) set_limit(&s->limits[i]);

  close(GATE_FD);
  close(CONTROL_FD);
  install_filter(&s->filter);
  size_t n = strlen(ok);
  if (write(READY_FD, ok, n) != (ssize_t)n) fail("cannot tell the agent the worker is starting", errno);
  close(READY_FD);
  /* Set-up messages before this went to the sandbox's stderr; the worker's all go to one stream. */
  if (s->merge_stderr && dup2(1, 2) < 0) fail("cannot merge stderr into stdout", errno);

  /* execvp searches the PATH of the environment it runs in: the task's. */
  environ = s->env;
  execvp(s->argv[0], s->argv);
  int err = errno;
  fprintf(stderr, "raysub: %s: %s\n", s->argv[0], err == ENOENT ? "not found" : strerror(err));
  exit(err == ENOENT ? 127 : 126);
}

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
  if (argc > 1 && strcmp(argv[1], "--serve") == 0) return serve();
  if (argc > 2 && strcmp(argv[1], "--clear-keys") == 0) return clear_keys(argv[2]);
  struct start s = parse(argc > 1 ? argv[1] : START_FILE);
  return supervise(&s);
}
