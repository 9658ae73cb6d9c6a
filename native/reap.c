/*
 * raysub-init as the sandbox's reaper (both modes: one task, or --serve): it forks the worker and
 * stays, waiting for it. The agent stops a task by sending the stop signal (SIGTERM, or SIGINT
 * when the job asks for it) to every process of the task, this one first; here that signal only
 * says "a stop is under way": when the worker then exits, raysub-init waits for every other
 * process of the task too (orphans are its own, as a subreaper), so their signal handlers get the
 * grace period the agent gives, instead of being killed with the worker. The agent's SIGKILL at the
 * end of the grace period ends everything. Without a stop, what the worker leaves is killed as soon
 * as it exits.
 */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int IGNORED[] = {SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2};
static const int STOPS[] = {SIGTERM, SIGINT};

static volatile sig_atomic_t stopping = 0;

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

static void set_all(const int *sigs, size_t n, void (*how)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = how;
  /* No SA_RESTART: a wait is interrupted, and its loop looks at the flag again. */
  for (size_t i = 0; i < n; i++) sigaction(sigs[i], &sa, NULL);
}

void supervisor_signals(void) {
  set_all(IGNORED, sizeof IGNORED / sizeof *IGNORED, SIG_IGN);
  set_all(STOPS, sizeof STOPS / sizeof *STOPS, on_stop);
  stopping = 0;
}

void worker_signals(void) {
  set_all(IGNORED, sizeof IGNORED / sizeof *IGNORED, SIG_DFL);
  set_all(STOPS, sizeof STOPS / sizeof *STOPS, SIG_DFL);
}

int stop_requested(void) { return stopping; }

void become_subreaper(void) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) fail("cannot become a subreaper", errno);
}

void oom_score_adj(const char *value) {
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (write(fd, value, strlen(value)) < 0) {
    /* best effort: the memory cgroup still bounds the sandbox */
  }
  close(fd);
}

int wait_worker(pid_t pid) {
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, 0);
    if (w == pid) return status;
    if (w < 0 && errno != EINTR) return 0;
  }
}

void wait_rest(void) {
  for (;;) {
    pid_t w = waitpid(-1, NULL, 0);
    if (w > 0 || (w < 0 && errno == EINTR)) continue;
    return; /* ECHILD: every process of the task is gone */
  }
}
