/* The start file and settling the worker (steps 1-4 of raysub-init.c's description). */
#include "base.h"

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

char *field(struct reader *r) {
  char *start = r->p;
  char *nul = memchr(start, '\0', (size_t)(r->end - start));
  if (!nul) fail("malformed start file (truncated)", 0);
  r->p = nul + 1;
  return start;
}

long number(struct reader *r, const char *what) {
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

char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open a control file", errno);
  struct stat st;
  if (fstat(fd, &st) < 0) fail("cannot stat a control file", errno);
  if (st.st_size <= 0 || st.st_size > MAX_START_BYTES) fail("a control file is empty or too large", 0);
  char *buf = malloc((size_t)st.st_size);
  if (!buf) fail("out of memory", 0);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot read a control file", n < 0 ? errno : 0);
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  return buf;
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
