/* vbuild-client: finding a current bundle and the server directory, and starting a slot's server. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vbuild-client.h"

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
int bundle_key(char *key, size_t n) {
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
int server_dir(char *dir, size_t n) {
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
int server_slots(void) {
  const char *v = getenv("VLAB_SERVER_SLOTS");
  int n = v && *v ? atoi(v) : 4;
  return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* Closes every fd but 0-2 and `keep`. The server outlives the command that started it: an fd its
 * caller left open (the lock of a `flock(1)` around the build, a pipe's write end) would otherwise
 * stay held, or open, for the server's life. close_range(2) where the kernel has it (5.9), else each
 * fd /proc lists (closing while it is read is fine: the listing is of the fds open at opendir). */
static void close_all_but(int keep) {
  if ((keep == 3 || close_range(3, keep - 1, 0) == 0) && close_range(keep + 1, ~0U, 0) == 0) return;
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    for (int fd = 3; fd < 65536; fd++)
      if (fd != keep) close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    int fd = atoi(e->d_name);
    if (fd > 2 && fd != keep && fd != dirfd(d)) close(fd);
  }
  closedir(d);
}

/* Starts slot k's server in the background; 0 when another holds its lock (running or starting). */
int start_server(const char *base, int k) {
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
    /* a caller started with 0-2 closed: the lock is not to be one of the fds replaced below */
    if (lock <= 2 && (lock = fcntl(lock, F_DUPFD_CLOEXEC, 3)) < 0) _exit(1);
    int null = open("/dev/null", O_RDWR);
    snprintf(p, sizeof p, "%s.log", base);
    int log = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log >= 0 ? log : null, 2);
    /* only 0-2 and the lock stay: nothing of the caller's, and not the log (the server's children,
     * monitors and containers, must not inherit it) */
    close_all_but(lock);
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

