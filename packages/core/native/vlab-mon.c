/*
 * vlab-mon: the monitor of one container (the role podman gives conmon).
 *
 * Why a separate C process: a detached container must outlive the vbuild CLI that started it,
 * so its process tree cannot hang off vbuild's Node process (its stdout/stderr pipes, its
 * waitpid, its life); and a second Node process per container would cost ~40 MB and ~0.3 s to
 * start. This one holds the launcher as its child, turns the container's output into json-lines
 * logs, records how it ended, and is gone when the container is (a few hundred KB resident).
 *
 *   vlab-mon DIR LOG_MAX ATTACH [EXIT_CMD...] -- CMD...
 *
 * DIR       the container's state dir: the monitor writes DIR/log.jsonl (docker's json-file
 *           format: {"log":…,"stream":…,"time":…} a line; when it passes LOG_MAX bytes it becomes
 *           DIR/log.jsonl.1 and a new one starts; LOG_MAX 0 = no cap) and, at the end,
 *           DIR/exit.json ({"exitCode":N,"signal":N|null,"finishedAt":"…"}, written aside and
 *           renamed: a reader sees all of it or none).
 * ATTACH    1: the output is also copied to our stdout/stderr while fd 3 is open (foreground run).
 * EXIT_CMD  run (exec'd in place of this process) after the end unless the caller on fd 3
 *           answered "done": vbuild's cleanup of the container (unmount, cgroup, --rm).
 * VLAB_MON_PIDFILE (env): where we write the container's pid (decimal, renamed into place) once
 *           we found it, for a launcher that writes none itself.
 * CMD       the container's launcher (vlab-init SPEC); it inherits our stdin. It gets
 *           PDEATHSIG=SIGKILL: if the monitor is killed the container dies with it (vlab-init's
 *           pid 1 dies with vlab-init), so a container never runs without a monitor to record it.
 *
 * fd 3 is a socket to the caller. Nothing of the container starts before the caller's "go\n":
 * it says so once its record says `running` with our pid (a caller killed before that left a
 * record that does not, and the container must not run behind it). A caller gone before its go
 * (EOF) gets no container: exit.json says 125 with why, and the exit command cleans up. Then we
 * write "started LAUNCHER_PID CONTAINER_PID\n" (the container pid is the launcher's child: pid 1
 * of the container's pid namespace, 0 if it never started), later "exited CODE\n"; the caller
 * may answer "done\n". A caller that closed fd 3 (detached run) answers nothing, and the exit
 * command runs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYNC_FD 3
#define LINE_MAX_BYTES 16384

static const char *dir;
static long long log_max;
static int log_fd = -1;
static long long log_size;
static int sync_open = 1;

static void fail(const char *what) {
  char msg[512];
  int n = snprintf(msg, sizeof msg, "error vlab-mon: %s: %s\n", what, strerror(errno));
  if (sync_open && write(SYNC_FD, msg, n) < 0) sync_open = 0;
  _exit(125);
}

static void path_in(char *buf, size_t size, const char *name) {
  if (snprintf(buf, size, "%s/%s", dir, name) >= (int)size) {
    errno = ENAMETOOLONG;
    fail("state dir path");
  }
}

static void open_log(void) {
  char p[4096];
  path_in(p, sizeof p, "log.jsonl");
  log_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) fail("open log");
  struct stat st;
  log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

/* Past the cap the current file becomes log.jsonl.1 (replacing the older one). */
static void rotate_if_needed(size_t next) {
  if (log_max <= 0 || log_size == 0 || log_size + (long long)next <= log_max) return;
  char cur[4096], old[4096];
  path_in(cur, sizeof cur, "log.jsonl");
  path_in(old, sizeof old, "log.jsonl.1");
  close(log_fd);
  if (rename(cur, old) != 0) fail("rotate log");
  open_log();
}

static void now_iso(char *buf, size_t size) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, size, "%s.%09ldZ", day, ts.tv_nsec);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One json-lines entry; the text is JSON-escaped (control bytes as \u00XX). */
static void log_entry(const char *stream, const char *data, size_t n) {
  static char out[LINE_MAX_BYTES * 6 + 256];
  char t[64];
  now_iso(t, sizeof t);
  size_t o = (size_t)snprintf(out, sizeof out, "{\"log\":\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else if (c == '\t') {
      out[o++] = '\\';
      out[o++] = 't';
    } else if (c == '\r') {
      out[o++] = '\\';
      out[o++] = 'r';
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(out + o, 8, "\\u%04x", c);
    } else {
      out[o++] = (char)c;
    }
  }
  o += (size_t)snprintf(out + o, sizeof out - o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream, t);
  rotate_if_needed(o);
  if (write_all(log_fd, out, o) == 0) log_size += (long long)o;
}

struct stream {
  const char *name;
  int fd;      /* read end of the container's pipe, -1 at EOF */
  int forward; /* our fd the output is copied to when attached */
  char buf[LINE_MAX_BYTES];
  size_t len;
};

/* Whole lines become entries; a line longer than the buffer is split (docker's partial entries). */
static void flush_lines(struct stream *s, int all) {
  size_t start = 0;
  for (size_t i = 0; i < s->len; i++) {
    if (s->buf[i] != '\n') continue;
    log_entry(s->name, s->buf + start, i + 1 - start);
    start = i + 1;
  }
  if (start < s->len && (all || s->len == sizeof s->buf)) {
    log_entry(s->name, s->buf + start, s->len - start);
    start = s->len;
  }
  memmove(s->buf, s->buf + start, s->len - start);
  s->len -= start;
}

static void pump(struct stream *s, int attach) {
  ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
  if (n < 0 && errno == EINTR) return;
  if (n <= 0) {
    flush_lines(s, 1);
    close(s->fd);
    s->fd = -1;
    return;
  }
  if (attach && sync_open && s->forward >= 0 && write_all(s->forward, s->buf + s->len, (size_t)n) != 0) s->forward = -1;
  s->len += (size_t)n;
  flush_lines(s, 0);
}

/* The first child of any thread of `launcher` (a Go runtime such as runc forks from any thread:
 * /proc/PID/task/PID/children lists only the main thread's), 0 if none. */
static pid_t first_child(pid_t launcher) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/task", launcher);
  DIR *d = opendir(p);
  if (!d) return 0;
  long pid = 0;
  struct dirent *e;
  while (!pid && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char c[320];
    snprintf(c, sizeof c, "/proc/%d/task/%s/children", launcher, e->d_name);
    FILE *f = fopen(c, "re");
    if (!f) continue;
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
  }
  closedir(d);
  return (pid_t)pid;
}

/* pid 1 of the container: the launcher's child, there a moment after the launcher starts (for a
 * runtime whose first children are its own stages, the caller reads the runtime's pid file). */
static pid_t container_pid(pid_t launcher) {
  for (int i = 0; i < 5000; i++) {
    pid_t pid = first_child(launcher);
    if (pid > 0) return pid;
    siginfo_t info = {0};
    if (waitid(P_PID, (id_t)launcher, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == launcher)
      return 0; /* it ended first */
    usleep(1000);
  }
  return 0;
}

/* `error` (plain text, no JSON escapes needed): why it never ran; NULL when it did. */
static void write_exit(int code, int sig, const char *error) {
  char tmp[4096], final[4096], t[64], body[512];
  path_in(tmp, sizeof tmp, "exit.json.tmp");
  path_in(final, sizeof final, "exit.json");
  now_iso(t, sizeof t);
  char sigtext[16] = "null";
  if (sig) snprintf(sigtext, sizeof sigtext, "%d", sig);
  int n = snprintf(body, sizeof body, "{\"exitCode\":%d,\"signal\":%s,\"finishedAt\":\"%s\"%s%s%s}\n", code, sigtext, t,
                   error ? ",\"error\":\"" : "", error ? error : "", error ? "\"" : "");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) fail("write exit.json");
  if (write_all(fd, body, (size_t)n) != 0 || fsync(fd) != 0) fail("write exit.json");
  close(fd);
  if (rename(tmp, final) != 0) fail("rename exit.json");
}

static void say(const char *fmt, long a, long b) {
  if (!sync_open) return;
  char msg[128];
  int n = snprintf(msg, sizeof msg, fmt, a, b);
  if (write_all(SYNC_FD, msg, (size_t)n) != 0) sync_open = 0;
}

/*
 * VLAB_MON_CGROUPS: cgroup.procs files, one a line, joined before anything is forked (the warm
 * server's monitors join their client's cgroups, where a direct CLI's monitor is born). A cgroup
 * that will not take us is said on fd 3 ("warn …") and skipped: we stay where we were started.
 */
static void join_cgroups(void) {
  const char *list = getenv("VLAB_MON_CGROUPS");
  if (!list) return;
  char *copy = strdup(list);
  for (char *save = NULL, *f = copy ? strtok_r(copy, "\n", &save) : NULL; f; f = strtok_r(NULL, "\n", &save)) {
    int fd = open(f, O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && dprintf(fd, "%ld\n", (long)getpid()) > 0;
    int e = errno;
    if (fd >= 0) close(fd);
    if (!ok && sync_open) {
      char msg[600];
      int n = snprintf(msg, sizeof msg, "warn the container monitor stays out of %.400s: %s\n", f, strerror(e));
      if (write_all(SYNC_FD, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1)) != 0) sync_open = 0;
    }
  }
  free(copy);
  unsetenv("VLAB_MON_CGROUPS");
}

/* The container's pid into `file` (temp + rename: a reader sees all of it or none); best effort. */
static void write_pidfile(const char *file, pid_t pid) {
  if (!file || pid <= 0) return;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", file) >= (int)sizeof tmp) return;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return;
  char num[32];
  int n = snprintf(num, sizeof num, "%ld", (long)pid);
  int ok = write_all(fd, num, (size_t)n) == 0;
  close(fd);
  if (!ok || rename(tmp, file) != 0) unlink(tmp);
}

/* The caller's go-ahead on fd 3: 1 for "go\n", 0 when it hung up (or said anything else) first. */
static int wait_go(void) {
  char line[4];
  size_t len = 0;
  while (len < sizeof line) {
    ssize_t r = read(SYNC_FD, line + len, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    if (line[len++] == '\n') break;
  }
  return len == 3 && memcmp(line, "go\n", 3) == 0;
}

static void run_exit_cmd(char **exit_cmd) {
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  if (exit_cmd) execv(exit_cmd[0], exit_cmd);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: vlab-mon DIR LOG_MAX ATTACH [EXIT_CMD...] -- CMD...\n");
    return 2;
  }
  dir = argv[1];
  log_max = atoll(argv[2]);
  int attach = strcmp(argv[3], "1") == 0;
  int sep = 4;
  while (sep < argc && strcmp(argv[sep], "--") != 0) sep++;
  if (sep >= argc - 1) {
    fprintf(stderr, "vlab-mon: no command after --\n");
    return 2;
  }
  char **exit_cmd = sep > 4 ? argv + 4 : NULL;
  argv[sep] = NULL; /* ends EXIT_CMD */
  char **cmd = argv + sep + 1;

  signal(SIGPIPE, SIG_IGN);
  if (fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC) != 0) return 125;
  if (chdir("/") != 0) fail("chdir /");
  join_cgroups();
  char *pidfile = getenv("VLAB_MON_PIDFILE") ? strdup(getenv("VLAB_MON_PIDFILE")) : NULL;
  unsetenv("VLAB_MON_PIDFILE");
  open_log();
  if (!wait_go()) {
    sync_open = 0;
    write_exit(125, 0, "not started: its caller (vbuild run/start) was gone before the start");
    close(log_fd);
    run_exit_cmd(exit_cmd);
    return exit_cmd ? 125 : 0;
  }

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) fail("pipe");
  pid_t self = getpid();
  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != self) _exit(125);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(125);
    execv(cmd[0], cmd);
    dprintf(2, "vlab-mon: exec %s: %s\n", cmd[0], strerror(errno));
    _exit(125);
  }
  close(out[1]);
  close(err[1]);
  pid_t init = container_pid(child);
  write_pidfile(pidfile, init);
  say("started %ld %ld\n", (long)child, (long)init);

  static struct stream streams[2];
  streams[0].name = "stdout";
  streams[0].fd = out[0];
  streams[0].forward = 1;
  streams[1].name = "stderr";
  streams[1].fd = err[0];
  streams[1].forward = 2;
  while (streams[0].fd >= 0 || streams[1].fd >= 0) {
    struct pollfd p[3];
    int n = 0, idx[3];
    for (int i = 0; i < 2; i++)
      if (streams[i].fd >= 0) {
        p[n].fd = streams[i].fd;
        p[n].events = POLLIN;
        idx[n++] = i;
      }
    if (sync_open) {
      p[n].fd = SYNC_FD;
      p[n].events = POLLIN;
      idx[n++] = -1;
    }
    if (poll(p, n, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    for (int i = 0; i < n; i++) {
      if (!p[i].revents) continue;
      if (idx[i] >= 0) {
        pump(&streams[idx[i]], attach);
        continue;
      }
      /* The caller hung up (detached run, or a foreground CLI that died): stop copying output. */
      char c;
      if (read(SYNC_FD, &c, 1) <= 0) sync_open = 0;
    }
  }

  int status = 0;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) fail("waitpid");
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  int code = sig ? 128 + sig : WEXITSTATUS(status);
  write_exit(code, sig, NULL);
  close(log_fd);

  /* Our stdout/stderr end before the "exited" line: the caller has all the output when it reads it. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 1);
    dup2(null, 2);
  }
  say("exited %ld %ld\n", (long)code, (long)sig);
  if (sync_open) {
    char ans[8] = {0};
    ssize_t got;
    do got = read(SYNC_FD, ans, sizeof ans - 1);
    while (got < 0 && errno == EINTR);
    if (got > 0 && strncmp(ans, "done", 4) == 0) return 0;
  }
  if (!exit_cmd) return 0;
  run_exit_cmd(exit_cmd);
  return 125;
}
