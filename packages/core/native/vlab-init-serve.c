/*
 * vlab-init serve: see the comment below. Built into the same binary as vlab-init.c
 * (scripts/build-native.sh compiles native/vlab-init*.c together).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vlab-init.h"

/*
 * serve: one long-lived launcher per Node process. Node's spawn forks the whole Node process
 * (~15 ms a RUN here, blocking its event loop); this forks a small C process instead (<1 ms).
 *
 *   requests (stdin, lines):  R ID SPEC   start a container (launch(SPEC) in a forked child)
 *                             K ID        SIGKILL that child (its container dies with it)
 *   answers (stdout):         S ID PID\n                 started
 *                             O ID FD LEN\n + LEN bytes  output (FD 1 or 2)
 *                             E ID CODE SIG\n            ended: exit code, or "-" and the signal
 *   stdin closed → exit; Node gone → this process is killed (parent-death signal) and every
 *   launch child with it (theirs), and every container with those.
 */
#define MAX_RUNS 256

struct run {
  long id;
  pid_t pid;
  int fd[2]; /* read ends of the child's stdout and stderr; -1 when closed */
  int ended, status;
};

static struct run runs[MAX_RUNS];
static int nruns;

static void put_all(const void *buf, size_t n) {
  for (const char *p = buf; n > 0;) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(1); /* Node is gone */
    p += w;
    n -= w;
  }
}

static void answer(const char *line) { put_all(line, strlen(line)); }

static void answer_end(long id, const char *code, int sig) {
  char line[96];
  if (sig) snprintf(line, sizeof line, "E %ld - %d\n", id, sig);
  else snprintf(line, sizeof line, "E %ld %s -\n", id, code);
  answer(line);
}

static void start_run(long id, const char *spec) {
  int out[2], err[2];
  if (nruns == MAX_RUNS || pipe2(out, O_CLOEXEC) != 0) {
    answer_end(id, "125", 0);
    return;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]), close(out[1]);
    answer_end(id, "125", 0);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    answer_end(id, "125", 0);
    return;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(125);
    syscall(SYS_close_range, 3, ~0U, 0); /* the server's fds and other runs' pipes */
    launch(spec);
  }
  close(out[1]);
  close(err[1]);
  runs[nruns++] = (struct run){id, pid, {out[0], err[0]}, 0, 0};
  char line[64];
  snprintf(line, sizeof line, "S %ld %d\n", id, (int)pid);
  answer(line);
}

static void finish_if_done(int i) {
  struct run *r = &runs[i];
  if (!r->ended || r->fd[0] >= 0 || r->fd[1] >= 0) return;
  char code[16];
  snprintf(code, sizeof code, "%d", WEXITSTATUS(r->status));
  answer_end(r->id, code, WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0);
  runs[i] = runs[--nruns];
}

static void handle_request(char *line) {
  char *save = NULL, *op = strtok_r(line, " ", &save), *id = strtok_r(NULL, " ", &save);
  if (!op || !id) return;
  long n = strtol(id, NULL, 10);
  if (op[0] == 'R') {
    char *spec = strtok_r(NULL, "", &save);
    if (spec) start_run(n, spec);
  } else if (op[0] == 'K') {
    for (int i = 0; i < nruns; i++)
      if (runs[i].id == n && !runs[i].ended) kill(runs[i].pid, SIGKILL);
  }
}

int serve(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() == 1) return 1; /* Node died before the line above */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd", NULL);
  char req[8192];
  size_t req_len = 0;
  static char buf[65536];
  for (;;) {
    struct pollfd p[2 + 2 * MAX_RUNS];
    int who[2 + 2 * MAX_RUNS];
    int n = 0;
    p[n++] = (struct pollfd){0, POLLIN, 0};
    p[n++] = (struct pollfd){sfd, POLLIN, 0};
    for (int i = 0; i < nruns; i++)
      for (int s = 0; s < 2; s++)
        if (runs[i].fd[s] >= 0) {
          who[n] = i * 2 + s;
          p[n++] = (struct pollfd){runs[i].fd[s], POLLIN, 0};
        }
    if (poll(p, n, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll", NULL);
    }
    /* Output first, so that a run's last bytes go out before its end. */
    for (int k = 2; k < n; k++) {
      if (!p[k].revents) continue;
      int i = who[k] / 2, s = who[k] % 2;
      ssize_t got = read(runs[i].fd[s], buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        close(runs[i].fd[s]);
        runs[i].fd[s] = -1;
        continue;
      }
      char head[64];
      int hn = snprintf(head, sizeof head, "O %ld %d %zd\n", runs[i].id, s + 1, got);
      put_all(head, hn);
      put_all(buf, got);
    }
    if (p[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < nruns; i++)
          if (runs[i].pid == pid) runs[i].ended = 1, runs[i].status = status;
    }
    for (int i = nruns - 1; i >= 0; i--) finish_if_done(i);
    if (p[0].revents) {
      ssize_t got = read(0, req + req_len, sizeof req - 1 - req_len);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return 0; /* Node closed our stdin: done */
      req_len += got;
      char *nl;
      while ((nl = memchr(req, '\n', req_len))) {
        *nl = 0;
        handle_request(req);
        req_len -= nl + 1 - req;
        memmove(req, nl + 1, req_len);
      }
      if (req_len == sizeof req - 1) req_len = 0; /* an over-long line: drop it */
    }
  }
}
