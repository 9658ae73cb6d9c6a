/* What every part of raysub-init uses: where set-up errors go, failing with a reason, and
 * becoming the task's uid and gid without capabilities in the bounding set. */
#include "base.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int err_fd = 2;

void fail(const char *what, int err) {
  if (err)
    dprintf(err_fd, "raysub: %s: %s\n", what, strerror(err));
  else
    dprintf(err_fd, "raysub: %s\n", what);
  exit(EXIT_SETUP);
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
