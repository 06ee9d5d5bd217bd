/*
 * vlab-init: starts one build container for the built-in executor, in one process tree.
 *
 * Why by hand: Node cannot clone(2) into namespaces, mount, pivot_root or set capabilities, and
 * doing it with util-linux takes a chain of ~9 processes (sh, unshare, sh, mount, cp, mount, ip,
 * env, setpriv, unshare): ~60 ms of process starts per RUN on this kind of machine. runc and crun
 * do it in one binary but cost 77 ms (runc) per container here, and crun cannot run on a hybrid
 * cgroup layout. This does the same system calls as the shell chain (exec/builtin.ts has the
 * shell version, used when no C compiler was there to build this) in well under a millisecond.
 *
 *   vlab-init SPEC
 *
 * SPEC is a file of NUL-terminated tokens written by exec/native-spec.ts: a keyword, then its
 * fixed number of arguments. Everything is decided by the caller (Node); this file only carries it
 * out, in this order:
 *
 *   outer process (in the host's namespaces)
 *     cgroup FILE          the container joins FILE (cgroup.procs) before it runs the command, so
 *                          before anything of the user's forks (see launch)
 *     net                  give the container its own network namespace
 *     cgroupns             and its own cgroup namespace, rooted at the cgroups joined above
 *     netcmd ARG           (repeated) a command run once the container's network namespace exists,
 *                          before pid 1 goes on ({netns} = /proc/self/fd/N of that namespace): pasta,
 *                          which configures it and stays in the background; its failure is ours (125)
 *     tty ROWS COLS        pid 1 gets a pty of its devpts as terminal and stdio; this process
 *                          relays it to its own stdin/stdout (vlab-init-tty.c)
 *     stdin FILE           the container's stdin (Node's stdio pipes are sockets, which
 *                          /dev/stdin = /proc/self/fd/0 cannot open: a heredoc's #! script
 *                          is read that way)
 *   container, pid 1 of new pid/mount/uts/ipc[/net] namespaces (dies with the outer process), in
 *   a new session without a controlling terminal
 *     mount SRC DST TYPE FLAGS DATA      mount(2); FLAGS decimal, "-" = NULL source/type/data
 *     mknod PATH MODE MAJOR MINOR        a character device (MODE octal, with permissions)
 *     symlink TARGET PATH
 *     mkdir PATH MODE
 *     hostname NAME
 *     lo                                 bring the loopback interface up
 *     nofile N                           RLIMIT_NOFILE soft = hard = N
 *     root DIR                           pivot_root into DIR (the old root is detached)
 *     cwd DIR  uid N  gid N  groups CSV  caps CSV (bounding set, capability numbers)
 *     env K=V (repeated)  arg A (repeated: argv, argv[0] looked up in the env's PATH)
 *     seccomp ERRNO, scarch NAME, scrule NAME ACTION ARGS, sccache FILE   the seccomp filter,
 *                                        loaded last before execve (vlab-init-seccomp.c)
 *   outer process again, after the container's pid 1 has exited (PATHs under the root DIR,
 *   walked down from it without following symlinks: the container may have planted some)
 *     rmdir PATH / rmfile PATH           remove a mountpoint we created, if still empty
 *     mtime PATH SEC NSEC                put a directory's mtime back (to the nanosecond)
 *
 * Exit status: the container's; killed by a signal → the outer process dies of the same signal.
 * Setup failures: a message on stderr and 125 (docker run's "failed to start"); exec failures:
 * 127 when argv[0] is not found, 126 when it cannot be executed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vlab-init.h"

#define MAX_TOKENS 65536

char *tok[MAX_TOKENS];
int ntok;

void die(const char *what, const char *arg) {
  fprintf(stderr, "vlab-init: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  _exit(125);
}

void bad_spec(const char *why) {
  fprintf(stderr, "vlab-init: bad spec: %s\n", why);
  _exit(125);
}

/* The spec file, split at NULs. */
void read_spec(const char *file) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open spec", file);
  struct stat st;
  if (fstat(fd, &st) != 0) die("stat spec", file);
  char *buf = malloc(st.st_size + 1);
  if (!buf) die("malloc", NULL);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("read spec", file);
    got += n;
  }
  close(fd);
  buf[got] = 0;
  if (got > 0 && buf[got - 1] != 0) bad_spec("does not end with NUL");
  for (size_t i = 0; i < got; i += strlen(buf + i) + 1) {
    if (ntok == MAX_TOKENS) bad_spec("too many tokens");
    tok[ntok++] = buf + i;
  }
}

/* Number of arguments each keyword takes; -1 = unknown. */
int arity(const char *k) {
  static const struct { const char *k; int n; } table[] = {
      {"cgroup", 1}, {"net", 0}, {"cgroupns", 0}, {"stdin", 1},    {"mount", 5},  {"mknod", 4}, {"symlink", 2}, {"mkdir", 2},
      {"hostname", 1}, {"lo", 0},   {"nofile", 1}, {"root", 1},  {"cwd", 1},     {"uid", 1},
      {"gid", 1},    {"groups", 1}, {"caps", 1},   {"env", 1},   {"arg", 1},     {"rmdir", 1},
      {"rmfile", 1}, {"mtime", 3},   {"seccomp", 1}, {"scarch", 1}, {"scrule", 3}, {"sccache", 1},
      {"target", 1}, {"tty", 2}, {"netcmd", 1},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i].k, k) == 0) return table[i].n;
  return -1;
}

void check_spec(void) {
  for (int i = 0; i < ntok;) {
    int n = arity(tok[i]);
    if (n < 0) bad_spec(tok[i]);
    if (i + n >= ntok) bad_spec("truncated");
    i += n + 1;
  }
}

static const char *nul_if_dash(const char *s) { return strcmp(s, "-") == 0 ? NULL : s; }

unsigned long num(const char *s, int base) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, base);
  if (errno || *end || end == s) bad_spec(s);
  return v;
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket", NULL);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die("get flags", "lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die("set flags", "lo");
  close(s);
}

/* pivot_root(".", ".") then detach the old root stacked under it (pivot_root(2), runc). */
static void enter_root(const char *root) {
  if (chdir(root) != 0) die("chdir", root);
  if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root", root);
  /* Keep the detach of the old root from propagating anywhere. */
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) != 0) die("make old root slave", NULL);
  if (umount2(".", MNT_DETACH) != 0) die("detach old root", NULL);
  if (chdir("/") != 0) die("chdir", "/");
}

static int in_list(unsigned long v, const char *csv) {
  const char *p = csv;
  while (*p) {
    char *end;
    unsigned long x = strtoul(p, &end, 10);
    if (end == p) bad_spec(csv);
    if (x == v) return 1;
    p = *end == ',' ? end + 1 : end;
  }
  return 0;
}

/* Docker's model: root keeps the capability set `caps`; any other uid ends with none. */
void drop_privileges(long uid, long gid, const char *groups, const char *caps) {
  for (unsigned long c = 0; c < 64; c++) {
    if (in_list(c, caps)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) die("drop capability", NULL);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) die("clear ambient capabilities", NULL);
  gid_t list[256];
  size_t n = 0;
  for (const char *p = groups; *p;) {
    char *end;
    unsigned long g = strtoul(p, &end, 10);
    if (end == p || n == 256) bad_spec(groups);
    list[n++] = (gid_t)g;
    p = *end == ',' ? end + 1 : end;
  }
  if (setgroups(n, list) != 0) die("setgroups", groups);
  if (setresgid(gid, gid, gid) != 0) die("setresgid", NULL);
  if (setresuid(uid, uid, uid) != 0) die("setresuid", NULL);
  /* A uid change clears the parent-death signal: set it again. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("pdeathsig", NULL);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (uid == 0) {
    for (unsigned long c = 0; c < 64; c++) {
      if (!in_list(c, caps)) continue;
      data[c / 32].effective |= 1u << (c % 32);
      data[c / 32].permitted |= 1u << (c % 32);
    }
  }
  if (syscall(SYS_capset, &hdr, data) != 0) die("capset", NULL);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs", NULL);
}

/* execve argv; a bare argv[0] is looked up in the PATH of the container's env (Docker does). */
void exec_command(char **argv, char **envp) {
  /* Only 0-2 reach the command, as with runc: whatever fd vbuild's caller or the warm server left
   * open without close-on-exec would otherwise be the container's. Marked, not closed, so a
   * close-on-exec error pipe still reports a failed execve. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    for (int fd = 3; fd < 4096; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (char **e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  if (strchr(argv[0], '/')) {
    execve(argv[0], argv, envp);
  } else {
    int denied = 0;
    char buf[4096];
    for (const char *p = path;; p++) {
      const char *end = strchrnul(p, ':');
      int len = (int)(end - p);
      snprintf(buf, sizeof buf, "%.*s%s%s", len, p, len ? "/" : "", argv[0]);
      execve(buf, argv, envp);
      if (errno == EACCES) denied = 1;
      if (!*end) break;
      p = end;
    }
    if (denied) errno = EACCES;
  }
  int code = errno == ENOENT || errno == ENOTDIR ? 127 : 126;
  fprintf(stderr, "vlab-init: exec %s: %s\n", argv[0], strerror(errno));
  _exit(code);
}

/* The socket pid 1 hands its pty master to the launch process on (`tty`), else -1. */
static int tty_sock = -1;
static unsigned tty_rows, tty_cols;

/* tty: a pty of the container's own devpts becomes pid 1's terminal and stdio; the master goes
 * to the launch process (SCM_RIGHTS), which relays it (vlab-init-tty.c). */
static void give_pty(int sock) {
  char slave[128];
  int m = open_pty_master("/dev/ptmx", slave, sizeof slave, tty_rows, tty_cols);
  attach_slave(slave);
  char c = 0;
  struct iovec iov = {&c, 1};
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &m, sizeof m);
  if (sendmsg(sock, &msg, 0) != 1) die("send pty", NULL);
  close(m);
  close(sock);
}

/* The launch process: the master pid 1 sent, or -1 when it ended before. */
static int take_pty(int sock) {
  char c;
  struct iovec iov = {&c, 1};
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  close(sock);
  struct cmsghdr *cm = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (!cm || cm->cmsg_type != SCM_RIGHTS) return -1;
  int m;
  memcpy(&m, CMSG_DATA(cm), sizeof m);
  return m;
}

/* Read end of the pipe pid 1 waits on until its network is configured (netcmd), else -1. */
static int net_wait = -1;
/* Read end of the pipe pid 1 waits on until the outer process has moved it into its cgroups. */
static int cgroup_wait = -1;

/* pid 1: wait for the outer process's go byte on `fd` (none: -1); EOF = it failed and said why. */
static void wait_byte(int fd) {
  if (fd < 0) return;
  char c;
  ssize_t r;
  while ((r = read(fd, &c, 1)) < 0 && errno == EINTR) {
  }
  if (r != 1) _exit(125);
  close(fd);
}

static int has_token(const char *k) {
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1)
    if (strcmp(tok[i], k) == 0) return 1;
  return 0;
}

/* Write `pid` into every `cgroup FILE` of the spec (cgroup.procs: its whole thread group moves). */
/* A pid that is already gone (ESRCH: pid 1 was killed before it was moved) is not an error: waitpid
 * then reports how it died. */
static void join_cgroups(pid_t pid) {
  char line[32];
  int len = snprintf(line, sizeof line, "%d\n", (int)pid);
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    if (strcmp(tok[i], "cgroup") != 0) continue;
    int fd = open(tok[i + 1], O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("open", tok[i + 1]);
    if (write(fd, line, len) != len && errno != ESRCH) die("join cgroup", tok[i + 1]);
    close(fd);
  }
}

/* The cgroup.procs files this process joined before it read its spec (a zygote, vlab-init-serve.c). */
static char **joined;
static int njoined = -1;

void set_joined_cgroups(char **files, int n) {
  joined = files;
  njoined = n;
}

/* Whether this process is already in exactly the spec's cgroups (then nothing is moved). */
static int in_spec_cgroups(void) {
  if (njoined < 0) return 0;
  int n = 0;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    if (strcmp(tok[i], "cgroup") != 0) continue;
    int found = 0;
    for (int j = 0; j < njoined && !found; j++) found = strcmp(joined[j], tok[i + 1]) == 0;
    if (!found) return 0;
    n++;
  }
  return n == njoined;
}

/* The outer process: runs the netcmd tokens' command for the namespace of `child`, waits for it. */
static int run_netcmd(pid_t child) {
  int n = 0;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) n += strcmp(tok[i], "netcmd") == 0;
  if (!n) return 0;
  char p[64], fdpath[64];
  snprintf(p, sizeof p, "/proc/%d/ns/net", (int)child);
  int ns = open(p, O_RDONLY); /* inherited by the command: it may not open another's namespace itself */
  if (ns < 0) return -1;
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", ns);
  char **argv = calloc(n + 1, sizeof *argv);
  if (!argv) return -1;
  n = 0;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1)
    if (strcmp(tok[i], "netcmd") == 0) argv[n++] = strcmp(tok[i + 1], "{netns}") == 0 ? fdpath : tok[i + 1];
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) dup2(devnull, 0), dup2(devnull, 1);
    execv(argv[0], argv);
    _exit(127);
  }
  close(ns);
  free(argv);
  int status;
  if (pid < 0) return -1;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* pid 1 of the container: mounts, identity, then the command. Never returns. */
static void container(void) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("pdeathsig", NULL);
  wait_byte(net_wait);
  /* A new session without a controlling terminal: vbuild's terminal (TIOCSTI) is out of reach. */
  if (setsid() < 0) die("setsid", NULL);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("make / private", NULL);
  const char *cwd = "/", *groups = "", *caps = "";
  long uid = 0, gid = 0;
  int nargs = 0, nenv = 0;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    if (strcmp(tok[i], "arg") == 0) nargs++;
    if (strcmp(tok[i], "env") == 0) nenv++;
  }
  char **argv = calloc(nargs + 1, sizeof *argv), **envp = calloc(nenv + 1, sizeof *envp);
  if (!argv || !envp) die("calloc", NULL);
  nargs = nenv = 0;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    const char *k = tok[i];
    char **a = tok + i + 1;
    if (strcmp(k, "mount") == 0) {
      unsigned long flags = num(a[3], 10);
      /* A bind remount replaces the per-mount flags: keep the nosuid/nodev/noexec it has (runc). */
      struct statvfs sv;
      if ((flags & (MS_REMOUNT | MS_BIND)) == (MS_REMOUNT | MS_BIND) && statvfs(a[1], &sv) == 0) {
        if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
      }
      if (mount(nul_if_dash(a[0]), a[1], nul_if_dash(a[2]), flags, nul_if_dash(a[4])) != 0) die("mount", a[1]);
    } else if (strcmp(k, "mknod") == 0) {
      if (mknod(a[0], S_IFCHR | num(a[1], 8), makedev(num(a[2], 10), num(a[3], 10))) != 0) die("mknod", a[0]);
      if (chmod(a[0], num(a[1], 8)) != 0) die("chmod", a[0]); /* mknod's mode is masked by umask */
    } else if (strcmp(k, "symlink") == 0) {
      if (symlink(a[0], a[1]) != 0) die("symlink", a[1]);
    } else if (strcmp(k, "mkdir") == 0) {
      if (mkdir(a[0], num(a[1], 8)) != 0 && errno != EEXIST) die("mkdir", a[0]);
    } else if (strcmp(k, "hostname") == 0) {
      if (sethostname(a[0], strlen(a[0])) != 0) die("sethostname", a[0]);
    } else if (strcmp(k, "lo") == 0) {
      loopback_up();
    } else if (strcmp(k, "nofile") == 0) {
      struct rlimit rl = {num(a[0], 10), num(a[0], 10)};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit", "nofile");
    } else if (strcmp(k, "root") == 0) {
      enter_root(a[0]);
    } else if (strcmp(k, "cwd") == 0) {
      cwd = a[0];
    } else if (strcmp(k, "uid") == 0) {
      uid = (long)num(a[0], 10);
    } else if (strcmp(k, "gid") == 0) {
      gid = (long)num(a[0], 10);
    } else if (strcmp(k, "groups") == 0) {
      groups = a[0];
    } else if (strcmp(k, "caps") == 0) {
      caps = a[0];
    } else if (strcmp(k, "env") == 0) {
      envp[nenv++] = a[0];
    } else if (strcmp(k, "arg") == 0) {
      argv[nargs++] = a[0];
    }
  }
  if (nargs == 0) bad_spec("no arg");
  wait_byte(cgroup_wait); /* in our cgroups from here on (see launch) */
  if (tty_sock >= 0) give_pty(tty_sock);
  if (chdir(cwd) != 0) die("chdir", cwd);
  drop_privileges(uid, gid, groups, caps);
  load_seccomp();
  exec_command(argv, envp);
}

/*
 * The directory holding PATH, opened by walking down from ROOT one component at a time without
 * following symlinks: the container may have swapped a dir we made for a link to a host path.
 * Returns the dir fd and points *last at PATH's final name; -1 when PATH is not under ROOT or a
 * component is no longer a plain directory (then there is nothing of ours to clean up).
 */
static int open_parent_in(const char *root, const char *path, const char **last) {
  size_t n = strlen(root);
  if (strncmp(path, root, n) != 0 || path[n] != '/') return -1;
  int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path + n + 1) >= (int)sizeof buf) return close(fd), -1;
  char *p = buf, *slash;
  while ((slash = strchr(p, '/'))) {
    *slash = 0;
    int next = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    if (next < 0) return -1;
    fd = next;
    p = slash + 1;
  }
  *last = path + n + 1 + (p - buf);
  if (**last == 0) return close(fd), -1;
  return fd;
}

/* After the container: remove the mountpoints we made (if still empty), restore mtimes. */
static void cleanup(void) {
  const char *root = NULL;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1)
    if (strcmp(tok[i], "root") == 0) root = tok[i + 1];
  if (!root) return;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    const char *k = tok[i];
    char **a = tok + i + 1;
    int is_rm = strcmp(k, "rmdir") == 0 || strcmp(k, "rmfile") == 0, is_mtime = strcmp(k, "mtime") == 0;
    if (!is_rm && !is_mtime) continue;
    struct stat st;
    if (is_mtime && strcmp(a[0], root) == 0) { /* the rootfs itself: ours, not the container's */
      struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)num(a[1], 10), (long)num(a[2], 10)}};
      utimensat(AT_FDCWD, root, ts, AT_SYMLINK_NOFOLLOW);
      continue;
    }
    const char *name;
    int dir = open_parent_in(root, a[0], &name);
    if (dir < 0) continue;
    if (strcmp(k, "rmdir") == 0) {
      unlinkat(dir, name, AT_REMOVEDIR); /* not empty: the process wrote into it, keep */
    } else if (strcmp(k, "rmfile") == 0) {
      if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) unlinkat(dir, name, 0);
    } else if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)num(a[1], 10), (long)num(a[2], 10)}};
      utimensat(dir, name, ts, AT_SYMLINK_NOFOLLOW);
    }
    close(dir);
  }
}

/* One container, start to end, in this process (see the header). Never returns. */
void launch(const char *spec) {
  read_spec(spec);
  check_spec();
  prepare_seccomp(tok, ntok); /* on the host's filesystem (its cache file), inherited by the clone */
  int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
  int sv[2] = {-1, -1}, go[2] = {-1, -1};
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    if (strcmp(tok[i], "net") == 0) flags |= CLONE_NEWNET;
    if (strcmp(tok[i], "cgroupns") == 0) flags |= CLONE_NEWCGROUP; /* rooted where this loop joins */
    if (strcmp(tok[i], "netcmd") == 0 && go[0] < 0 && pipe2(go, O_CLOEXEC) != 0) die("pipe", NULL);
    if (strcmp(tok[i], "tty") == 0 && sv[0] < 0) {
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair", NULL);
      tty_rows = num(tok[i + 1], 10), tty_cols = num(tok[i + 2], 10);
    }
    if (strcmp(tok[i], "stdin") == 0) {
      int fd = open(tok[i + 1], O_RDONLY);
      if (fd < 0) die("open", tok[i + 1]);
      if (dup2(fd, 0) < 0) die("dup2", tok[i + 1]);
      close(fd);
    }
  }
  /*
   * Everything the container ever forks must be born inside its cgroups. A zygote is in them
   * already: pid 1 is born there. Else, with a cgroup namespace (rooted where we stand at clone),
   * this process joins first. Otherwise pid 1 is moved in while it mounts, and waits for that
   * before it runs anything of the user's: a v1 migration waits for an RCU grace period (4-13 ms
   * here), which then overlaps the mounts instead of preceding them.
   */
  int cg[2] = {-1, -1};
  if (in_spec_cgroups()) {
    /* born inside, and the launcher is counted and swept with its container, as below */
  } else if (flags & CLONE_NEWCGROUP) join_cgroups(getpid());
  /* A socket pair, not a pipe: send(MSG_NOSIGNAL) to a pid 1 that died meanwhile is EPIPE, not a
   * SIGPIPE that would kill this process and hide the container's own exit status. */
  else if (has_token("cgroup") && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cg) != 0) die("socketpair", NULL);
  /* fork(2) into new namespaces: raw clone with no stack behaves like fork. */
  pid_t child = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
  if (child < 0) die("clone", NULL);
  if (child == 0) {
    if (sv[0] >= 0) close(sv[0]), tty_sock = sv[1];
    if (go[0] >= 0) close(go[1]), net_wait = go[0];
    if (cg[0] >= 0) close(cg[1]), cgroup_wait = cg[0];
    container();
  }
  if (cg[0] >= 0) {
    close(cg[0]);
    join_cgroups(child);
    if (send(cg[1], "c", 1, MSG_NOSIGNAL) != 1 && errno != EPIPE) die("start container", NULL);
    close(cg[1]);
    join_cgroups(getpid()); /* as before: the launcher is counted and swept with its container */
  }
  if (go[0] >= 0) {
    close(go[0]);
    if (run_netcmd(child) != 0) {
      fprintf(stderr, "vlab-init: the container's network could not be set up (its netcmd failed)\n");
      kill(child, SIGKILL);
      waitpid(child, NULL, 0);
      _exit(125);
    }
    if (write(go[1], "g", 1) != 1) die("start container", NULL);
    close(go[1]);
  }
  if (sv[0] >= 0) {
    close(sv[1]);
    int m = take_pty(sv[0]);
    signal(SIGINT, SIG_IGN); /* ^C is a byte for the container's terminal */
    if (m >= 0) relay_pty(m);
  }
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid", NULL);
  }
  cleanup();
  if (WIFSIGNALED(status)) {
    signal(WTERMSIG(status), SIG_DFL);
    kill(getpid(), WTERMSIG(status));
    _exit(128 + WTERMSIG(status));
  }
  _exit(WEXITSTATUS(status));
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
  if (argc == 3 && strcmp(argv[1], "exec") == 0) exec_tail(argv[2]);
  if (argc == 3 && strcmp(argv[1], "enter") == 0) enter(argv[2]);
  if (argc != 2) {
    fprintf(stderr, "usage: vlab-init SPEC | vlab-init serve | vlab-init exec SPEC | vlab-init enter SPEC\n");
    return 2;
  }
  launch(argv[1]);
}
