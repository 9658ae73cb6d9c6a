/* Shared by raysub-init's parts: raysub-init.c (main), start.c (start file, settling the worker), serve.c
 * (--serve), keys.c (keyrings). See raysub-init.c for what the program does. */
#ifndef RAYSUB_INIT_H
#define RAYSUB_INIT_H
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/types.h>

#define START_FILE "/run/raysub/start"
#define READY_FD 4
#define GATE_FD 3
#define CONTROL_FD 5
#define FORMAT "raysub-init 6"
#define MAX_FILTER 4096 /* instructions: the kernel's BPF_MAXINSNS */
#define MAX_LIMITS 16
#define MAX_START_BYTES (64 << 20)
#define EXIT_SETUP 125

/* A seccomp filter as seccomp(2) takes it (linux/filter.h: not shipped with every C library). */
struct bpf_insn {
  uint16_t code;
  uint8_t jt, jf;
  uint32_t k;
};
struct bpf_prog {
  unsigned short len;
  struct bpf_insn *filter;
};

struct limit {
  const char *what;
  long resource, value;
};

struct start {
  long uid, gid;
  char *cwd; /* NULL: keep */
  struct bpf_prog filter; /* len 0: none */
  int merge_stderr;       /* the worker's stderr is its stdout: one stream, in the order written */
  long nlimits;
  struct limit limits[MAX_LIMITS];
  char **env;
  char **argv;
};

/* Where set-up errors go: stderr, or the sandbox's own stderr in a served task's child. */
extern int err_fd;

/* base.c: say why on err_fd and exit with EXIT_SETUP. */
void fail(const char *what, int err);

/* start.c: the start file (and the other files the agent writes for raysub-init: NUL-terminated fields). */
struct reader {
  char *p;
  char *end;
};
char *slurp(const char *path, size_t *len);
char *field(struct reader *r);
long number(struct reader *r, const char *what);
struct start parse(const char *path);
/* Steps 1-4 (start.c): settle the worker, say `ok` on the ready fd, become the worker. */
void become_worker(struct start *s, const char *ok);
void drop_identity(long uid, long gid);

/* keys.c */
void join_session_keyring(void);
int clear_keys(const char *uid);

/* serve.c */
int serve(void);

/* binds.c: a served sandbox's job directories, bound before each task from the roots given. */
void set_roots(int n, char **paths);
void sync_binds(void);

/* reap.c: raysub-init stays as the sandbox's reaper while its worker runs. */
void supervisor_signals(void);
void worker_signals(void);
int stop_requested(void);
void become_subreaper(void);
void oom_score_adj(const char *value);
int wait_worker(pid_t pid);
void wait_rest(void);

#endif
