/*
 * Kernel keyrings. Each task joins a new session keyring (raysub-init.c calls join_session_keyring
 * before the uid drop). With --clear-keys UID (run by the agent, as root, when a uid it gives back
 * still has keys in the kernel: src/agent/sandbox/keyrings.ts) it invalidates what outlives a
 * uid's processes — its user, user-session and persistent keyrings — and waits (up to 2 s) for
 * the kernel to hold no key of that uid: exit 0 once none is left, 1 otherwise (the agent then
 * does not hand the uid out again).
 */
#include "base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The keyctl(2) ABI (linux/keyctl.h). */
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEYCTL_INVALIDATE 21
#define KEYCTL_GET_PERSISTENT 22
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_USER_KEYRING -4
#define KEY_SPEC_USER_SESSION_KEYRING -5

/*
 * A new session keyring, joined while still root: the task's, empty, and not the agent's (which it
 * would otherwise inherit and could read); owned by root, so nothing of it is charged to or kept
 * for the task's uid once the task is gone. A kernel without keys has nothing to leak.
 */
void join_session_keyring(void) {
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS) fail("cannot give the task a session keyring of its own", errno);
}

/* Whether /proc/key-users lists `uid` (the kernel holds at least one key it owns). */
static int holds_keys(long uid) {
  FILE *f = fopen("/proc/key-users", "re");
  if (!f) return 1; /* cannot tell: the agent keeps the uid out */
  char line[256];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    long u;
    if (sscanf(line, " %ld:", &u) == 1 && u == uid) found = 1;
  }
  fclose(f);
  return found;
}

int clear_keys(const char *arg) {
  char *end;
  errno = 0;
  long uid = strtol(arg, &end, 10);
  if (errno || end == arg || *end != '\0' || uid <= 0) fail("--clear-keys needs a uid", 0);
  /* Our own session keyring, root's: the persistent keyring is linked there, nothing is left to the uid. */
  join_session_keyring();
  drop_identity(uid, uid);
  /* Looking the user keyrings up creates any that is missing; taking both ids first leaves none
   * to be recreated once they are invalidated. */
  long user = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1);
  long session = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_SESSION_KEYRING, 1);
  if (user > 0) syscall(SYS_keyctl, KEYCTL_INVALIDATE, user);
  if (session > 0) syscall(SYS_keyctl, KEYCTL_INVALIDATE, session);
  long persistent = syscall(SYS_keyctl, KEYCTL_GET_PERSISTENT, -1L, KEY_SPEC_SESSION_KEYRING);
  if (persistent > 0) syscall(SYS_keyctl, KEYCTL_INVALIDATE, persistent);
  /* Invalidated keys go, and what only they held with them, when the kernel collects them. */
  for (int i = 0; i < 400; i++) {
    if (!holds_keys(uid)) return 0;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 1;
}

