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
 * The socket is DIR/HASH.sock (HASH: of this install's path, so each checkout or install has its
 * own server; HASH.lock, .log, .pid beside it). DIR is $VLAB_SERVER_DIR, else
 * $XDG_RUNTIME_DIR/vlab, else /tmp/vlab-UID: a directory we own with mode 0700 (anything else:
 * no server, direct run). The server checks the peer's uid too.
 *
 * Direct run (same result, Node's start-up cost) when: VLAB_NO_SERVER=1; NODE_OPTIONS or
 * NODE_DEBUG is set (they act on Node itself); the verb gives a container our terminal (`run -t`,
 * `exec -t`: wants_tty below); the bundle
 * is missing or older than a source file (bin/vbuild.js then runs the sources through tsx); no server is running (one is started in
 * the background for the next command); every server slot is busy with another command (a busy
 * slot sends us to the next one: BASE, BASE-1, … BASE-(VLAB_SERVER_SLOTS-1); a slot with no
 * server gets one started for the next concurrent command), or the server was built from another
 * bundle (it exits; the next command starts a fresh one).
 *
 * A busy slot's "B" is read even when it closed before our request was all sent (EPIPE). The
 * first answer is awaited without a bound: a client that gave up on a slow server on its own
 * clock could run the command a second time on the next slot while that server, past its own
 * check that we are there, runs it too (a review reproduced it: 3 of 30 at the edge). A bound
 * needs a go-ahead byte from us after "A" as the one commit point; until then a stopped server
 * holds its client, as before. A signal before "A" waits for the answer, as before.
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
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char pkg[PATH_MAX]; /* packages/core (or the installed package's root) */
static char **args;
static int nargs;

static void direct(void) {
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

static int newer_source(const char *dir, const struct timespec *than) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int hit = 0;
  char p[PATH_MAX];
  while (!hit && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) < 0) continue;
    size_t l = strlen(e->d_name);
    if (S_ISDIR(st.st_mode)) hit = newer_source(p, than);
    else if (l > 3 && !strcmp(e->d_name + l - 3, ".ts"))
      hit = st.st_mtim.tv_sec > than->tv_sec ||
            (st.st_mtim.tv_sec == than->tv_sec && st.st_mtim.tv_nsec > than->tv_nsec);
  }
  closedir(d);
  return hit;
}

/* The bundle's identity (the server compares it with the file it loaded), or 0 if it is not current. */
static int bundle_key(char *key, size_t n) {
  char p[PATH_MAX + 32];
  struct stat st;
  snprintf(p, sizeof p, "%s/dist/vbuild.mjs", pkg);
  if (stat(p, &st) < 0) return 0;
  snprintf(p, sizeof p, "%s/src", pkg);
  struct stat src;
  if (stat(p, &src) == 0) { /* a checkout: the sources win when newer, as in bin/vbuild.js */
    static const char *pkgs[] = {"core", "dockerfile", "overlay", "errors"};
    for (int i = 0; i < 4; i++) {
      snprintf(p, sizeof p, "%s/../%s/src", pkg, pkgs[i]);
      if (newer_source(p, &st.st_mtim)) return 0;
    }
  }
  snprintf(key, n, "%llu:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
           (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  return 1;
}

/* The socket's directory: ours, a real directory, mode 0700; else 0. */
static int server_dir(char *dir, size_t n) {
  const char *d = getenv("VLAB_SERVER_DIR"), *x = getenv("XDG_RUNTIME_DIR");
  if (d && *d) snprintf(dir, n, "%s", d);
  else if (x && x[0] == '/') snprintf(dir, n, "%s/vlab", x);
  else snprintf(dir, n, "/tmp/vlab-%u", (unsigned)getuid());
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) return 0;
  struct stat st;
  return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() && (st.st_mode & 07777) == 0700;
}

/*
 * How many servers may run commands at once (VLAB_SERVER_SLOTS, default 4, 1-16): each is one
 * Node process running one command at a time, so concurrent builds each get a warm one instead
 * of a Node start-up each. Slots past the first are started only when the first is busy, and
 * leave sooner when idle (server.ts).
 */
static int server_slots(void) {
  const char *v = getenv("VLAB_SERVER_SLOTS");
  int n = v && *v ? atoi(v) : 4;
  return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* Starts slot k's server in the background; 0 when another holds its lock (running or starting). */
static int start_server(const char *base, int k) {
  char p[PATH_MAX + 32], bundle[PATH_MAX + 32];
  snprintf(p, sizeof p, "%s.lock", base);
  int lock = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0) return 1;
  if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
    close(lock);
    return 0;
  }
  snprintf(bundle, sizeof bundle, "%s/dist/vbuild.mjs", pkg);
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    if (fork() != 0) _exit(0); /* the server is init's child, not ours */
    int null = open("/dev/null", O_RDWR);
    snprintf(p, sizeof p, "%s.log", base);
    int log = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log >= 0 ? log : null, 2);
    /* only 0-2 stay: the server's children (monitors, containers) must not inherit its log */
    if (log > 2) close(log);
    if (null > 2) close(null);
    if (chdir("/") < 0) _exit(1);
    /* The lock is held for the server's life (it marks it close-on-exec for its children). */
    int fl = fcntl(lock, F_GETFD);
    fcntl(lock, F_SETFD, fl & ~FD_CLOEXEC);
    char lockfd[16];
    snprintf(lockfd, sizeof lockfd, "%d", lock);
    /* Memory of a long-lived server (bench/README.md, "Peak RSS of the warm server"): a 1 MB
     * semi-space (V8's default young generation grows to 16 MB each, held for good), a full GC
     * once idle after a command (--expose-gc: server.ts), and malloc giving large blocks back on free
     * (one arena; a fixed mmap threshold, not one raised by every big Buffer freed). No
     * allocation-site pretenuring: it put a big COPY's per-file garbage straight into the old
     * space, where it stayed until a full GC (copy-huge: +55 MB; bench/README.md, "copy-huge:
     * memory per file"). The server's children get each command's own environment, not these. */
    setenv("MALLOC_ARENA_MAX", "1", 1);
    setenv("MALLOC_MMAP_THRESHOLD_", "65536", 1);
    if (k > 0) setenv("VLAB_SERVER_SPARE", "1", 1);
    else unsetenv("VLAB_SERVER_SPARE");
    execlp("node", "node", "--max-semi-space-size=1", "--no-allocation-site-pretenuring", "--expose-gc", bundle,
           "--vlab-serve", base, lockfd, (char *)NULL);
    _exit(127);
  }
  if (pid > 0) waitpid(pid, NULL, 0);
  close(lock);
  return 1;
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

static int sigpipe_w = -1, sigpipe_r = -1;
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

/* Sends the request: u32 length, then NUL-separated strings; fds 0, 1, 2 on the first chunk.
 * 1: sent; 2: the server closed before it was all sent (read its answer); 0: failed. */
static int send_request(int s, const char *key) {
  char cwd[PATH_MAX], num[32];
  if (!getcwd(cwd, sizeof cwd)) return 0;
  mode_t um = umask(0);
  umask(um);
  size_t cap = 4096, len = 4;
  char *buf = malloc(cap);
  if (!buf) return 0;
  int ok = add(&buf, &len, &cap, "vlab1") && add(&buf, &len, &cap, key) && add(&buf, &len, &cap, cwd);
  snprintf(num, sizeof num, "%o", (unsigned)um);
  ok = ok && add(&buf, &len, &cap, num);
  snprintf(num, sizeof num, "%d", nargs);
  ok = ok && add(&buf, &len, &cap, num);
  for (int i = 0; ok && i < nargs; i++) ok = add(&buf, &len, &cap, args[i]);
  for (char **e = environ; ok && *e; e++) ok = add(&buf, &len, &cap, *e);
  if (!ok) return free(buf), 0;
  uint32_t n = (uint32_t)(len - 4);
  memcpy(buf, &n, 4); /* little-endian hosts only: x86-64 and arm64 */
  int fds[3] = {0, 1, 2};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof fds)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  size_t off = 0;
  while (off < len) {
    struct iovec iov = {.iov_base = buf + off, .iov_len = len - off};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (off == 0) {
      m.msg_control = &ctl;
      m.msg_controllen = sizeof ctl;
      struct cmsghdr *c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof fds);
      memcpy(CMSG_DATA(c), fds, sizeof fds);
    }
    ssize_t w = sendmsg(s, &m, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    /* A busy server answers "B" and closes without reading: its answer is still to be read. */
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) return free(buf), 2;
    if (w <= 0) return free(buf), 0;
    off += (size_t)w;
  }
  free(buf);
  return 1;
}

/*
 * Hands the command to the server of one slot: returns only when that server is busy, or is
 * being started by another client (the caller tries the next slot); else it ends this process
 * (the command's exit, or a direct run: no server there, we start one for the next command;
 * another bundle; a failed hand-over).
 */
static void run_in(const char *base, const char *key, int k) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (s < 0 || snprintf(a.sun_path, sizeof a.sun_path, "%s.sock", base) >= (int)sizeof a.sun_path) direct();
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    close(s);
    if (!start_server(base, k)) return;
    direct();
  }
  int sent = send_request(s, key);
  if (!sent) direct();

  /* Replies: "A" (accepted: from here on the command runs there), then "X code" or "K signal";
   * before "A": "B" (busy: the next slot) or "R" (other bundle, restarting: run it ourselves).
   * Before "A" a signal waits in the pipe: once "A" comes it is the command's (forwarded). */
  char line[64];
  size_t got = 0;
  int accepted = 0;
  for (;;) {
    struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = accepted ? sigpipe_r : -1, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((p[1].revents & POLLIN) && accepted) {
      unsigned char sig;
      while (read(sigpipe_r, &sig, 1) == 1) {
        char msg[16];
        int l = snprintf(msg, sizeof msg, "S %d\n", sig);
        if (send(s, msg, (size_t)l, MSG_NOSIGNAL) < 0) break;
      }
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t r = read(s, line + got, sizeof line - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    line[got] = 0;
    char *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = 0;
      if (!strcmp(line, "A")) accepted = 1;
      else if (!accepted && !strcmp(line, "B")) {
        close(s);
        return;
      } else if (!accepted && !strcmp(line, "R")) { /* let the old server go before starting the new one */
        struct pollfd q = {.fd = s, .events = POLLIN};
        poll(&q, 1, 2000);
        start_server(base, k);
        direct();
      } else if (line[0] == 'X' && line[1] == ' ') exit(atoi(line + 2));
      else if (line[0] == 'K' && line[1] == ' ') {
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
  if (!accepted) direct(); /* the server went away before starting the command */
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
  /* One server per install (FNV-1a of its path): two checkouts never restart each other's. */
  uint32_t h = 2166136261u;
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
