/*
 * A served sandbox's job directories (--serve with roots): the sandbox is not bound to one job when
 * it starts, so it can run the tasks of one job after another. bwrap binds each root (the agent's
 * tasks directory, its in-job directory, its object store's) at /run/raysub/jobs/<i>, a directory
 * only root may enter, and an empty tmpfs (root's, mode 0755) at the root's own host path. Before
 * each task this program binds the task's job directories from there at their host paths (the
 * job's tasks directory writable, the others as the agent says), and unbinds those of the job
 * before: a task sees its own job's directories where the host has them, and nothing of any other
 * job.
 *
 * The agent lists the directories in /run/raysub/ctl/binds (root's): NUL-terminated fields
 * "raysub-binds 1", a count, then for each the root's index, a directory name in that root (one
 * path component), and "rw" or "ro".
 */
#include "base.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define BINDS_FILE "/run/raysub/ctl/binds"
#define BINDS_FORMAT "raysub-binds 1"
#define JOBS_DIR "/run/raysub/jobs"
#define MAX_BINDS 8
#define MAX_ROOTS 4

static const char *roots[MAX_ROOTS];
static int nroots = 0;

struct bind {
  char src[PATH_MAX];
  char dst[PATH_MAX];
  int ro;
};

/* What is bound now, made by an earlier task's sync. */
static struct bind bound[MAX_BINDS];
static int nbound = 0;

void set_roots(int n, char **paths) {
  if (n > MAX_ROOTS) fail("too many job roots", 0);
  for (int i = 0; i < n; i++) {
    if (paths[i][0] != '/' || strstr(paths[i], "/../") || strlen(paths[i]) > PATH_MAX / 2) fail("a job root that is not a plain absolute path", 0);
    roots[i] = paths[i];
  }
  nroots = n;
}

static int plain_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
  return strchr(s, '/') == NULL;
}

static void unbind(const struct bind *b) {
  if (umount2(b->dst, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) fail("cannot unbind a job directory", errno);
  if (rmdir(b->dst) < 0 && errno != ENOENT) fail("cannot remove a job directory's mount point", errno);
}

/* The same directory is still bound there: same device and inode as the root holds under that name now. */
static int still_bound(const struct bind *b) {
  struct stat s, d;
  return lstat(b->src, &s) == 0 && stat(b->dst, &d) == 0 && s.st_dev == d.st_dev && s.st_ino == d.st_ino;
}

static void make_bind(const struct bind *b) {
  struct stat st;
  /* The agent made it: a directory of its own, never a link a task could have placed. */
  if (lstat(b->src, &st) < 0) fail("cannot find a job directory to bind", errno);
  if (!S_ISDIR(st.st_mode)) fail("a job directory to bind is not a directory", 0);
  if (mkdir(b->dst, 0755) < 0 && errno != EEXIST) fail("cannot make a job directory's mount point", errno);
  if (mount(b->src, b->dst, NULL, MS_BIND, NULL) < 0) fail("cannot bind a job directory", errno);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (b->ro ? MS_RDONLY : 0);
  if (mount(NULL, b->dst, NULL, flags, NULL) < 0) fail("cannot set a job directory's mount flags", errno);
}

/* Bind what the binds file lists and unbind the rest; without a binds file nothing changes. */
void sync_binds(void) {
  if (access(BINDS_FILE, F_OK) < 0) return;
  size_t len;
  char *buf = slurp(BINDS_FILE, &len);
  struct reader r = {buf, buf + len};
  if (strcmp(field(&r), BINDS_FORMAT) != 0) fail("binds file is not in " BINDS_FORMAT " format", 0);
  long n = number(&r, "number of binds");
  if (n > MAX_BINDS) fail("malformed binds file (too many binds)", 0);
  struct bind want[MAX_BINDS];
  for (long i = 0; i < n; i++) {
    long root = number(&r, "bind root");
    char *name = field(&r);
    char *mode = field(&r);
    if (root >= nroots || !plain_name(name) || (strcmp(mode, "rw") != 0 && strcmp(mode, "ro") != 0)) fail("malformed binds file", 0);
    int a = snprintf(want[i].src, sizeof want[i].src, "%s/%ld/%s", JOBS_DIR, root, name);
    int b = snprintf(want[i].dst, sizeof want[i].dst, "%s/%s", roots[root], name);
    if (a < 0 || b < 0 || (size_t)a >= sizeof want[i].src || (size_t)b >= sizeof want[i].dst) fail("a job directory's path is too long", 0);
    want[i].ro = mode[1] == 'o';
    for (long k = 0; k < i; k++)
      if (strcmp(want[k].dst, want[i].dst) == 0) fail("malformed binds file (a directory twice)", 0);
  }
  free(buf);
  /* Keep what is wanted and still the same directory; unbind everything else first. */
  int keep[MAX_BINDS] = {0};
  struct bind kept[MAX_BINDS];
  int nkept = 0;
  for (int j = 0; j < nbound; j++) {
    int wanted = -1;
    for (long i = 0; i < n; i++)
      if (strcmp(want[i].dst, bound[j].dst) == 0 && strcmp(want[i].src, bound[j].src) == 0 && want[i].ro == bound[j].ro) wanted = (int)i;
    if (wanted >= 0 && !keep[wanted] && still_bound(&bound[j])) {
      keep[wanted] = 1;
      kept[nkept++] = bound[j];
    } else {
      unbind(&bound[j]);
    }
  }
  nbound = 0;
  for (int j = 0; j < nkept; j++) bound[nbound++] = kept[j];
  for (long i = 0; i < n; i++) {
    if (keep[i]) continue;
    make_bind(&want[i]);
    bound[nbound++] = want[i];
  }
}
