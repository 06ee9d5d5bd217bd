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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vlab-init.h"

/*
 * serve: one long-lived launcher per Node process. Node's spawn forks the whole Node process
 * (~15 ms a RUN here, blocking its event loop); this forks a small C process instead (<1 ms).
 *
 *   requests (stdin, lines):  R ID SPEC   start a container (launch(SPEC) in a forked child)
 *                             Z ID FILE…  fork a launch child ahead of its run (a zygote): it
 *                                         joins the cgroups FILE… (cgroup.procs paths, %-encoded:
 *                                         %20 space, %25 %, %0A newline) and waits for its spec
 *                             C ID ZID SPEC  start a container in zygote ZID (then known as ID);
 *                                         a zygote that is gone: as R
 *                             K ID        SIGKILL that child (its container dies with it)
 *   answers (stdout):         V zygote\n                 first: Z and C are understood
 *                             S ID PID\n                 started
 *                             O ID FD LEN\n + LEN bytes  output (FD 1 or 2)
 *                             E ID CODE SIG\n            ended: exit code, or "-" and the signal
 *   A zygote says nothing until a C claims it (its output waits in its pipes); one that ends
 *   unclaimed (killed, or its cgroup removed) is dropped silently.
 *   stdin closed → exit; Node gone → this process is killed (parent-death signal) and every
 *   launch child with it (theirs), and every container with those.
 *
 * Why zygotes: a process moved into a v1 cgroup (and into v2 without favordynmods) waits for an
 * RCU grace period, 4-13 ms here. A zygote pays it while the previous step runs, and the
 * container's pid 1, cloned by a launcher already inside, is born in the cgroups (launch()).
 */
#define MAX_RUNS 256

struct run {
  long id;
  pid_t pid;
  int fd[2]; /* read ends of the child's stdout and stderr; -1 when closed */
  int ended, status;
  int zfd; /* a zygote not claimed yet: our end of the socket its spec path goes down; else -1 */
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

/* The cgroup.procs files of the zygote being forked (the child joins them, see zygote()). */
static char *zfiles[64];
static int nzfiles;

/* A zygote: join the cgroups, then wait for the spec path on fd 0; EOF = not wanted, exit. */
static void zygote(void) {
  char line[32];
  int len = snprintf(line, sizeof line, "%d\n", (int)getpid());
  for (int i = 0; i < nzfiles; i++) {
    int fd = open(zfiles[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, line, len) != len) die("join cgroup", zfiles[i]);
    close(fd);
  }
  set_joined_cgroups(zfiles, nzfiles);
  static char spec[4096];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(0, spec + got, sizeof spec - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) _exit(0);
    got += r;
    char *nl = memchr(spec, '\n', got);
    if (nl) {
      *nl = 0;
      break;
    }
    if (got == sizeof spec - 1) _exit(125);
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull < 0 || dup2(devnull, 0) < 0) _exit(125);
  close(devnull);
  launch(spec);
}

/* Forks a launch child: of SPEC now, or (spec NULL) a zygote of the cgroups in zfiles. */
static void start_run(long id, const char *spec) {
  int out[2], err[2], z[2] = {-1, -1};
  if (nruns == MAX_RUNS || pipe2(out, O_CLOEXEC) != 0) {
    if (spec) answer_end(id, "125", 0);
    return;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]), close(out[1]);
    if (spec) answer_end(id, "125", 0);
    return;
  }
  if (!spec && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, z) != 0) {
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    if (z[0] >= 0) close(z[0]), close(z[1]);
    if (spec) answer_end(id, "125", 0);
    return;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int in = spec ? open("/dev/null", O_RDONLY) : z[1];
    if (in < 0 || dup2(in, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(125);
    syscall(SYS_close_range, 3, ~0U, 0); /* the server's fds and other runs' pipes */
    if (!spec) zygote();
    launch(spec);
  }
  close(out[1]);
  close(err[1]);
  if (z[1] >= 0) close(z[1]);
  runs[nruns++] = (struct run){id, pid, {out[0], err[0]}, 0, 0, z[0]};
  if (!spec) return;
  char line[64];
  snprintf(line, sizeof line, "S %ld %d\n", id, (int)pid);
  answer(line);
}

/* %20 %25 %0A back to space, %, newline, in place. */
static void unescape(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (s[0] == '%' && s[1] && s[2]) {
      char hex[3] = {s[1], s[2], 0};
      *o++ = (char)strtol(hex, NULL, 16);
      s += 2;
    } else *o++ = *s;
  }
  *o = 0;
}

/* C ID ZID SPEC: the spec goes down the zygote's socket; a zygote that is gone: a fresh launch. */
static void claim(long id, long zid, const char *spec) {
  for (int i = 0; i < nruns; i++) {
    struct run *r = &runs[i];
    if (r->id != zid || r->zfd < 0) continue;
    char line[4200];
    int n = snprintf(line, sizeof line, "%s\n", spec);
    int ok = !r->ended && n < (int)sizeof line && send(r->zfd, line, n, MSG_NOSIGNAL) == n;
    close(r->zfd);
    r->zfd = -1;
    if (!ok) {
      kill(r->pid, SIGKILL);
      r->id = -1; /* nobody's: dropped when reaped */
      break;
    }
    r->id = id;
    snprintf(line, sizeof line, "S %ld %d\n", id, (int)r->pid);
    answer(line);
    return;
  }
  start_run(id, spec);
}

static void finish_if_done(int i) {
  struct run *r = &runs[i];
  if (r->ended && (r->zfd >= 0 || r->id < 0)) { /* a zygote nobody claimed: no answer */
    if (r->zfd >= 0) close(r->zfd);
    for (int s = 0; s < 2; s++)
      if (r->fd[s] >= 0) close(r->fd[s]);
    runs[i] = runs[--nruns];
    return;
  }
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
  } else if (op[0] == 'Z') {
    nzfiles = 0;
    for (char *f; nzfiles < 64 && (f = strtok_r(NULL, " ", &save));) unescape(zfiles[nzfiles++] = f);
    if (nzfiles) start_run(n, NULL);
  } else if (op[0] == 'C') {
    char *zid = strtok_r(NULL, " ", &save), *spec = strtok_r(NULL, "", &save);
    if (zid && spec) claim(n, strtol(zid, NULL, 10), spec);
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
  answer("V zygote\n"); /* what this server can do, before anything else */
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
        if (runs[i].fd[s] >= 0 && runs[i].zfd < 0 && runs[i].id >= 0) {
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
