/*
 * vbuild-client: the `vbuild` command without Node's start-up (~60 ms before any of our code
 * runs). It hands the command to a warm vbuild server (the one-file bundle, src/cli/server.ts)
 * over a unix socket, as Bazel's and Gradle's clients do, and falls back to running
 * `node bin/vbuild.js` itself whenever the server cannot take it.
 *
 *   bin/vbuild ARGS...  ->  native/bin/vbuild-client ARGS...
 *
 * What crosses the socket: the server's key (identity of dist/vbuild.mjs), cwd, umask, argv and
 * the whole environment, and our stdin/stdout/stderr themselves (SCM_RIGHTS): the command reads
 * and writes the very same tty, pipe or file a direct run would, so tty detection, `-f -` and
 * `| head` behave the same. SIGINT/SIGTERM/SIGHUP are forwarded (a build aborts as on Ctrl-C);
 * the exit status comes back ("X code", or "K signal": we then die of that signal ourselves).
 *
 * The socket is DIR/HASH.sock (HASH: of PROTOCOL and this install's path, so each checkout or install has its
 * own server; HASH.lock, .log, .pid beside it). DIR is $VLAB_SERVER_DIR, else
 * $XDG_RUNTIME_DIR/vlab, else /tmp/vlab-UID: a directory we own with mode 0700 (anything else:
 * no server, direct run). The server checks the peer's uid too.
 *
 * Direct run (same result, Node's start-up cost) when: VLAB_NO_SERVER=1; NODE_OPTIONS or
 * NODE_DEBUG is set (they act on Node itself); the verb gives a container our terminal (`run -t`,
 * `exec -t`: wants_tty below); the bundle
 * is missing or older than a source file (bin/vbuild.js then runs the sources through tsx); every
 * server slot is busy with another command (a busy slot sends us to the next one: BASE, BASE-1, …
 * BASE-(VLAB_SERVER_SLOTS-1)), or the server was built from another bundle (it exits; the next
 * command starts a fresh one). A slot with no server: we start one and wait until it listens (at
 * most VLAB_SERVER_START_MS, default 5000; we run direct if it exits first or takes longer), and
 * run there: one node start-up for the command instead of two (ours direct and the server's
 * beside it), and a burst's spares have served a command before the next burst; a slot whose
 * server another client is starting sends us to the next slot.
 *
 * The hand-over has one commit point, our go-ahead. We send the request (no fds); the server
 * answers "A" (it will run it if told), "B" (busy: the next slot) or "R" (another bundle); on "A"
 * we send "G" with our stdin/stdout/stderr, and the server runs the command only once it has
 * read that "G"; a "G" it could not take (its fds past its RLIMIT_NOFILE, a cut control message)
 * is answered "N" (not run, and never will be): we try the next slot, as for "B" (a signal we
 * forwarded meanwhile then ends us by it, as before the commit point). Before "G" nothing can run: we wait at most VLAB_SERVER_ANSWER_MS (default
 * 3000; a live server answers from its event loop within ms, busy or not) for the first answer
 * and then try the next slot, a stopped server never holds our fds (a pipe reader of ours sees
 * end of file when we exit), and SIGINT/SIGTERM/SIGHUP end us by that signal. After "G" we wait
 * for that server and forward the signals. A busy slot's "B" is read even when it closed before
 * our request was all sent (EPIPE).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vbuild-client.h"

extern char **environ;

/* The request's first word: a server of another protocol answers "R" (and a fresh one starts). */
#define PROTOCOL "vlab3"

char pkg[PATH_MAX]; /* packages/core (or the installed package's root) */
static char **args;
static int nargs;
static int sigpipe_w = -1, sigpipe_r = -1; /* signals caught, as bytes: on_signal */

/* Dies of sig, as the direct run would have (the handler is ours until here). */
static void die_of(int sig) {
  signal(sig, SIG_DFL);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, sig);
  sigprocmask(SIG_UNBLOCK, &m, NULL);
  raise(sig);
  _exit(128 + sig);
}

/* A signal caught before the commit point ends us by it. */
static void pending_signal(void) {
  unsigned char sig;
  if (sigpipe_r >= 0 && read(sigpipe_r, &sig, 1) == 1) die_of(sig);
}

static void direct(void) {
  /* From here on a signal does to us what it does to the direct run; one caught already ends us. */
  const int fwd[] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; i++) signal(fwd[i], SIG_DFL);
  pending_signal();
  char entry[PATH_MAX + 32];
  snprintf(entry, sizeof entry, "%s/bin/vbuild.js", pkg);
  char **av = calloc((size_t)nargs + 3, sizeof *av);
  if (!av) _exit(70);
  av[0] = "node";
  av[1] = entry;
  for (int i = 0; i < nargs; i++) av[i + 2] = args[i];
  execvp("node", av);
  fprintf(stderr, "vbuild: cannot run node: %s\n", strerror(errno));
  _exit(127);
}

/*
 * `run -t` / `exec -t` (also `create`, and as `container run|exec|create`): the container gets a
 * pty bridged to our terminal (raw mode, window size), which must be this process's own. Any
 * short-flag group with a t, or --tty, before `--` counts: a false hit (`ls -t` as the command)
 * only costs a direct run. Everything else runs in the server, containers in the foreground too:
 * their output goes to our fds, `-i` hands them our very stdin, signals are forwarded to the
 * command's sig-proxy, and if we die the server lets go of the container as our death would.
 */
static int wants_tty(void) {
  int v = nargs > 1 && !strcmp(args[0], "container") ? 1 : 0;
  if (v >= nargs || (strcmp(args[v], "run") && strcmp(args[v], "exec") && strcmp(args[v], "create"))) return 0;
  for (int i = v + 1; i < nargs; i++) {
    const char *a = args[i];
    if (!strcmp(a, "--")) break;
    if (a[0] != '-') continue;
    if (a[1] == '-' ? !strncmp(a, "--tty", 5) : strchr(a + 1, 't') != NULL) return 1;
  }
  return 0;
}

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  if (write(sigpipe_w, &b, 1) < 0) { /* full: the signal is already pending */
  }
  errno = saved;
}

static int add(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t l = strlen(s) + 1;
  if (*len + l > *cap) {
    size_t c = (*cap + l) * 2;
    char *b = realloc(*buf, c);
    if (!b) return 0;
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, s, l);
  *len += l;
  return 1;
}

/* Sends the request: u32 length, then NUL-separated strings (no fds: they go with "G").
 * 1: sent; 2: the server closed before it was all sent (read its answer); 3: not taken in time
 * (a server that does not read: the next slot); 0: failed. */
static int send_request(int s, const char *key) {
  char cwd[PATH_MAX], num[32];
  if (!getcwd(cwd, sizeof cwd)) return 0;
  mode_t um = umask(0);
  umask(um);
  size_t cap = 4096, len = 4;
  char *buf = malloc(cap);
  if (!buf) return 0;
  int ok = add(&buf, &len, &cap, PROTOCOL) && add(&buf, &len, &cap, key) && add(&buf, &len, &cap, cwd);
  snprintf(num, sizeof num, "%o", (unsigned)um);
  ok = ok && add(&buf, &len, &cap, num);
  snprintf(num, sizeof num, "%d", nargs);
  ok = ok && add(&buf, &len, &cap, num);
  for (int i = 0; ok && i < nargs; i++) ok = add(&buf, &len, &cap, args[i]);
  for (char **e = environ; ok && *e; e++) ok = add(&buf, &len, &cap, *e);
  if (!ok) return free(buf), 0;
  uint32_t n = (uint32_t)(len - 4);
  memcpy(buf, &n, 4); /* little-endian hosts only: x86-64 and arm64 */
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(s, buf + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) { /* a signal before the commit point ends us */
      pending_signal();
      continue;
    }
    /* A busy server answers "B" and closes without reading: its answer is still to be read. */
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) return free(buf), 2;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return free(buf), 3; /* SO_SNDTIMEO */
    if (w <= 0) return free(buf), 0;
    off += (size_t)w;
  }
  free(buf);
  return 1;
}

/* The go-ahead: "G" with fds 0, 1, 2. 1: sent (we are committed); 0: the server is gone (it did
 * not and will not run it: it runs a command only once it has read this). */
static int send_go(int s) {
  int fds[3] = {0, 1, 2};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof fds)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = "G", .iov_len = 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  for (;;) {
    ssize_t w = sendmsg(s, &m, MSG_NOSIGNAL);
    if (w == 1) return 1;
    if (w < 0 && errno == EINTR) continue; /* committed or not, a signal waits in the pipe */
    return 0;
  }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The bound on a slot's first answer, ms (VLAB_SERVER_ANSWER_MS, default 3000, 1-600000). */
static int answer_ms(void) {
  const char *v = getenv("VLAB_SERVER_ANSWER_MS");
  long n = v && *v ? atol(v) : 3000;
  return n < 1 ? 1 : n > 600000 ? 600000 : (int)n;
}

/*
 * A connected socket to the slot's server; -1: none listens there (or its backlog stayed full for
 * answer_ms(): a stopped or stuck server, whose lock then sends us to the next slot); -2: an
 * unusable path, or a listener of another uid (SO_PEERCRED: only our own server gets our stdio
 * and environment, as the server serves only its own uid).
 * Non-blocking: a blocking connect() to a unix socket whose backlog is full waits for ever.
 */
static int connect_slot(const char *base) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (snprintf(a.sun_path, sizeof a.sun_path, "%s.sock", base) >= (int)sizeof a.sun_path) return -2;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -2;
  long long deadline = now_ms() + answer_ms();
  while (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    /* EAGAIN: the backlog is full (a unix socket never answers EINPROGRESS): try again shortly */
    if ((errno != EAGAIN && errno != EINTR) || now_ms() >= deadline) {
      close(s);
      return -1;
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000000L};
    nanosleep(&ts, NULL);
    pending_signal(); /* Ctrl-C while we wait: nothing runs anywhere yet */
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
    close(s);
    return -2;
  }
  int fl = fcntl(s, F_GETFL);
  if (fl < 0 || fcntl(s, F_SETFL, fl & ~O_NONBLOCK) < 0) { /* the hand-over below blocks, bounded */
    close(s);
    return -2;
  }
  return s;
}

/* The bound on a server's start-up that we wait for, ms (VLAB_SERVER_START_MS, default 5000, 0-600000). */
static int start_ms(void) {
  const char *v = getenv("VLAB_SERVER_START_MS");
  long n = v && *v ? atol(v) : 5000;
  return n < 0 ? 0 : n > 600000 ? 600000 : (int)n;
}

/*
 * Waits for the server we just started at base to listen: a connected socket, or -1 when it
 * exited first (its lock is free: it holds BASE.lock for its life) or did not listen within
 * start_ms() (the caller then runs direct, as without a server). A signal meanwhile ends us
 * (nothing runs anywhere yet).
 */
static int await_slot(const char *base) {
  char lp[PATH_MAX + 32];
  snprintf(lp, sizeof lp, "%s.lock", base);
  long long deadline = now_ms() + start_ms();
  for (int i = 0;; i++) {
    pending_signal();
    int s = connect_slot(base);
    if (s >= 0) return s;
    int lock = open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int gone = lock < 0 || flock(lock, LOCK_SH | LOCK_NB) == 0;
    if (lock >= 0) close(lock);
    if (gone || now_ms() >= deadline) return -1;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (i < 20 ? 2 : 10) * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/*
 * Hands the command to the server of one slot: returns only when that server is busy, or is
 * being started by another client (the caller tries the next slot); else it ends this process
 * (the command's exit, or a direct run: no server there, we start one for the next command;
 * another bundle; a failed hand-over).
 */
static void run_in(const char *base, const char *key, int k) {
  int s = connect_slot(base);
  if (s == -2) direct();
  if (s < 0) {
    if (!start_server(base, k)) return; /* another client is starting it (or it runs): the next slot */
    /* We started it: wait until it listens and run there, rather than run direct beside its own
     * start-up (two node start-ups on the machine for one command; a burst's spares would then
     * serve their first command cold in the next burst). */
    s = await_slot(base);
    if (s < 0) direct();
  }
  /* Before the commit point: every wait bounded (a stopped server does not read or answer). */
  int bound = answer_ms();
  long long deadline = now_ms() + bound;
  struct timeval tv = {.tv_sec = bound / 1000, .tv_usec = (bound % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int sent = send_request(s, key);
  if (!sent) direct();
  if (sent == 3) {
    close(s);
    return;
  }

  /* Replies: "A" (it will run it once told), then after our "G": "X code" or "K signal"; instead
   * of "A": "B" (busy: the next slot) or "R" (other bundle, restarting: run it ourselves). */
  char line[64];
  size_t got = 0;
  int committed = 0, said = 0; /* said: the last signal forwarded after "G" */
  for (;;) {
    int wait = -1;
    if (!committed && (wait = (int)(deadline - now_ms())) <= 0) {
      close(s); /* no answer in time: it never got our go-ahead, so it will not run it */
      return;
    }
    struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = sigpipe_r, .events = POLLIN}};
    if (poll(p, 2, wait) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents & POLLIN) {
      if (!committed) pending_signal(); /* ends us: nothing runs anywhere */
      unsigned char sig;
      while (read(sigpipe_r, &sig, 1) == 1) {
        char msg[16];
        int l = snprintf(msg, sizeof msg, "S %d\n", sig);
        if (send(s, msg, (size_t)l, MSG_NOSIGNAL) < 0) break;
        said = sig;
      }
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t r = read(s, line + got, sizeof line - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    /* It closed with our "G" unread (nothing else of ours there): it did not run it. */
    if (r < 0 && errno == ECONNRESET && committed && !said) {
      close(s);
      return;
    }
    if (r <= 0) break;
    got += (size_t)r;
    line[got] = 0;
    char *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = 0;
      if (!committed && !strcmp(line, "A")) {
        if (!send_go(s)) { /* gone before our go-ahead: it will not run it */
          close(s);
          return;
        }
        committed = 1;
      } else if (!committed && !strcmp(line, "B")) {
        close(s);
        return;
      } else if (committed && !strcmp(line, "N")) { /* our "G" not taken: it did not and will not run it */
        close(s);
        if (said) die_of(said);
        return;
      } else if (!committed && !strcmp(line, "R")) { /* let the old server go before starting the new one */
        struct pollfd q[2] = {{.fd = s, .events = POLLIN}, {.fd = sigpipe_r, .events = POLLIN}};
        poll(q, 2, 2000);
        pending_signal();
        start_server(base, k);
        direct();
      } else if (committed && line[0] == 'X' && line[1] == ' ') exit(atoi(line + 2));
      else if (committed && line[0] == 'K' && line[1] == ' ') {
        int sig = atoi(line + 2);
        signal(sig, SIG_DFL);
        raise(sig);
        exit(128 + sig);
      }
      memmove(line, nl + 1, strlen(nl + 1) + 1);
      got = strlen(line);
    }
    if (got >= sizeof line - 1) break;
  }
  if (!committed) direct(); /* the server went away before answering: it will not run it */
  fprintf(stderr, "vbuild: the vbuild server stopped during the command (its log: %s.log) [E_INTERNAL]\n", base);
  exit(70);
}

int main(int argc, char **argv) {
  args = argv + 1;
  nargs = argc - 1;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return fprintf(stderr, "vbuild: cannot find myself (/proc)\n"), 70;
  self[n] = 0;
  for (int up = 0; up < 3; up++) { /* PKG/native/bin/vbuild-client -> PKG */
    char *slash = strrchr(self, '/');
    if (!slash) return 70;
    *slash = 0;
  }
  snprintf(pkg, sizeof pkg, "%s", self);

  const char *no = getenv("VLAB_NO_SERVER"), *opts = getenv("NODE_OPTIONS"), *dbg = getenv("NODE_DEBUG");
  if ((no && !strcmp(no, "1")) || (opts && *opts) || (dbg && *dbg)) direct();
  if (wants_tty()) direct();
  char key[256], dir[PATH_MAX - 64], base[PATH_MAX];
  if (!bundle_key(key, sizeof key) || !server_dir(dir, sizeof dir)) direct();
  /* One server per install and protocol (FNV-1a of both): two checkouts never restart each
   * other's, and after an upgrade that changes PROTOCOL a still-running old server (which cannot
   * parse our request, so cannot answer "R") is never asked: it idles out on its own. */
  uint32_t h = 2166136261u;
  for (const char *c = PROTOCOL "\n"; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
  for (const char *c = pkg; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
  snprintf(base, sizeof base, "%s/%08x", dir, h);

  int sp[2];
  if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) direct();
  sigpipe_w = sp[1];
  sigpipe_r = sp[0];
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  const int fwd[] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; i++) sigaction(fwd[i], &sa, NULL);
  /* Slot 0 is BASE, slot k is BASE-k: a busy slot sends us to the next one. */
  int slots = server_slots();
  char slot[PATH_MAX];
  for (int k = 0; k < slots; k++) {
    if (k == 0) snprintf(slot, sizeof slot, "%s", base);
    else if (snprintf(slot, sizeof slot, "%s-%d", base, k) >= (int)sizeof slot) break;
    run_in(slot, key, k);
  }
  direct(); /* every slot busy */
}
