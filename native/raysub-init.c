/*
 * raysub-init: the first program a sandboxed worker runs, inside bubblewrap's namespaces.
 *
 * It reads the task's start file, settles who the worker is and what it may use, tells the agent
 * the worker is starting, then becomes the worker:
 *   1. drop every capability from the bounding set, clear supplementary groups, switch to the
 *      task's uid and gid (when it has its own), clear every remaining capability set;
 *   2. set no_new_privs, RLIMIT_NOFILE and (with a uid of its own) RLIMIT_NPROC;
 *   3. write "ok" on fd 4 and close it;
 *   4. execvp the worker's argv with exactly the task's environment (PATH searched in it).
 *
 * One small static executable instead of setpriv followed by a shell script: two dynamic
 * executables fewer on every task's start. The agent keeps the setpriv and shell path for
 * machines where this program could not be built.
 *
 * Start file (written by the agent, readable by root only when tasks get their own uid): a
 * sequence of NUL-terminated fields
 *   "raysub-init 1", uid ("-": keep), gid ("-": keep), open-file limit, process limit ("-": none),
 *   number of environment entries, the entries, number of argv words, the words.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define START_FILE "/run/raysub/start"
#define READY_FD 4
#define GATE_FD 3
#define MAX_START_BYTES (64 << 20)
#define EXIT_SETUP 125

extern char **environ;

static void fail(const char *what, int err) {
  if (err)
    fprintf(stderr, "raysub: %s: %s\n", what, strerror(err));
  else
    fprintf(stderr, "raysub: %s\n", what);
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
    fprintf(stderr, "raysub: malformed start file (%s: \"%s\")\n", what, s);
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
  if (fd < 0) fail("cannot open " START_FILE, errno);
  struct stat st;
  if (fstat(fd, &st) < 0) fail("cannot stat " START_FILE, errno);
  if (st.st_size <= 0 || st.st_size > MAX_START_BYTES) fail("start file is empty or too large", 0);
  char *buf = malloc((size_t)st.st_size);
  if (!buf) fail("out of memory", 0);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot read " START_FILE, n < 0 ? errno : 0);
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

static void set_limit(int resource, long value, const char *what) {
  struct rlimit rl = {.rlim_cur = (rlim_t)value, .rlim_max = (rlim_t)value};
  if (setrlimit(resource, &rl) < 0) {
    fprintf(stderr, "raysub: cannot set the %s limit: %s\n", what, strerror(errno));
    exit(EXIT_SETUP);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts("raysub-init 1");
    return 0;
  }
  size_t len;
  char *buf = slurp(argc > 1 ? argv[1] : START_FILE, &len);
  struct reader r = {buf, buf + len};
  if (strcmp(field(&r), "raysub-init 1") != 0) fail("start file is not in raysub-init format 1", 0);
  long uid = optional(&r, "uid");
  long gid = optional(&r, "gid");
  long open_files = number(&r, "open files");
  long processes = optional(&r, "processes");
  long nenv = number(&r, "environment size");
  if (nenv > 1 << 20) fail("malformed start file (environment size)", 0);
  char **env = calloc((size_t)nenv + 1, sizeof *env);
  if (!env) fail("out of memory", 0);
  for (long i = 0; i < nenv; i++) env[i] = field(&r);
  long nargv = number(&r, "argv size");
  if (nargv < 1 || nargv > 1 << 20) fail("malformed start file (argv size)", 0);
  char **words = calloc((size_t)nargv + 1, sizeof *words);
  if (!words) fail("out of memory", 0);
  for (long i = 0; i < nargv; i++) words[i] = field(&r);

  if (uid >= 0) drop_identity(uid, gid >= 0 ? gid : uid);
  clear_capabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("cannot set no_new_privs", errno);
  set_limit(RLIMIT_NOFILE, open_files, "open-file");
  if (processes >= 0) set_limit(RLIMIT_NPROC, processes, "process");

  close(GATE_FD);
  if (write(READY_FD, "ok", 2) != 2) fail("cannot tell the agent the worker is starting", errno);
  close(READY_FD);

  /* execvp searches the PATH of the environment it runs in: the task's. */
  environ = env;
  execvp(words[0], words);
  int err = errno;
  fprintf(stderr, "raysub: %s: %s\n", words[0], err == ENOENT ? "not found" : strerror(err));
  return err == ENOENT ? 127 : 126;
}
