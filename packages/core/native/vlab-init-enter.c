/*
 * vlab-init enter SPEC: one more process in a running container (`vbuild exec`). Built into the
 * same binary as vlab-init.c.
 *
 *   target PID        a process of the container (its pid 1): its ipc, uts, net, cgroup, pid and mount
 *                     namespaces are joined with setns(2), and its root (/proc/PID/root)
 *   cgroup FILE       cgroup.procs files the command joins (opened before the setns)
 *   tty ROWS COLS     give the command a pty of the container's devpts (vlab-init-tty.c)
 *   nofile, cwd, uid, gid, groups, caps, env, arg, seccomp…   as for a container's pid 1
 *
 * The setns to the pid namespace only applies to children, so the command is forked after it; the
 * forked child joins the cgroup (by writing 0: "this process"), starts a session, drops privileges
 * like pid 1 did (bounding set, ids, capabilities, no_new_privs), loads the same seccomp filter and
 * execs. This process stays outside the cgroup and the pid namespace (as runc's exec leaves its
 * parent outside): it waits, relays the pty, and exits with the command's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vlab-init.h"

static const struct {
  const char *name;
  int type;
} NS[] = {{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"cgroup", CLONE_NEWCGROUP}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}};
#define NNS (sizeof NS / sizeof NS[0])

void enter(const char *spec) {
  read_spec(spec);
  check_spec();
  prepare_seccomp(tok, ntok);
  const char *target = NULL, *cwd = "/", *groups = "", *caps = "";
  long uid = 0, gid = 0, nofile = -1;
  int tty = 0, cg[16], ncg = 0, nargs = 0, nenv = 0;
  unsigned rows = 0, cols = 0;
  char **argv = calloc(ntok + 1, sizeof *argv), **envp = calloc(ntok + 1, sizeof *envp);
  if (!argv || !envp) die("calloc", NULL);
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    const char *k = tok[i];
    char **a = tok + i + 1;
    if (strcmp(k, "target") == 0) target = a[0];
    else if (strcmp(k, "cgroup") == 0) {
      if (ncg == 16) bad_spec("too many cgroups");
      if ((cg[ncg++] = open(a[0], O_WRONLY | O_CLOEXEC)) < 0) die("open", a[0]);
    } else if (strcmp(k, "tty") == 0) tty = 1, rows = num(a[0], 10), cols = num(a[1], 10);
    else if (strcmp(k, "nofile") == 0) nofile = (long)num(a[0], 10);
    else if (strcmp(k, "cwd") == 0) cwd = a[0];
    else if (strcmp(k, "uid") == 0) uid = (long)num(a[0], 10);
    else if (strcmp(k, "gid") == 0) gid = (long)num(a[0], 10);
    else if (strcmp(k, "groups") == 0) groups = a[0];
    else if (strcmp(k, "caps") == 0) caps = a[0];
    else if (strcmp(k, "env") == 0) envp[nenv++] = a[0];
    else if (strcmp(k, "arg") == 0) argv[nargs++] = a[0];
  }
  if (!target || nargs == 0) bad_spec("enter needs target and arg");
  /* Every handle first: after the first setns the target's /proc entries may no longer be ours to see. */
  char p[64];
  int fds[NNS];
  for (size_t i = 0; i < NNS; i++) {
    snprintf(p, sizeof p, "/proc/%s/ns/%s", target, NS[i].name);
    if ((fds[i] = open(p, O_RDONLY | O_CLOEXEC)) < 0) die("open", p);
  }
  snprintf(p, sizeof p, "/proc/%s/root", target);
  int root = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) die("open", p);
  for (size_t i = 0; i < NNS; i++) {
    if (setns(fds[i], NS[i].type) != 0) die("setns", NS[i].name);
    close(fds[i]);
  }
  /* setns(mnt) puts us at the namespace's root; the target's own root (pivoted) is the one to use. */
  if (fchdir(root) != 0 || chroot(".") != 0 || chdir("/") != 0) die("enter root of", target);
  close(root);
  char slave[128];
  int master = tty ? open_pty_master("/dev/ptmx", slave, sizeof slave, rows, cols) : -1;
  pid_t child = fork();
  if (child < 0) die("fork", NULL);
  if (child == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("pdeathsig", NULL);
    for (int i = 0; i < ncg; i++)
      if (write(cg[i], "0\n", 2) != 2) die("join cgroup", NULL);
    if (setsid() < 0) die("setsid", NULL);
    if (tty) attach_slave(slave);
    syscall(SYS_close_range, 3, ~0U, 0); /* no fd of ours reaches the command */
    if (nofile >= 0) {
      struct rlimit rl = {nofile, nofile};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit", "nofile");
    }
    if (chdir(cwd) != 0) {
      fprintf(stderr, "vlab-init: chdir to %s: %s\n", cwd, strerror(errno));
      _exit(126); /* docker exec -w of a missing dir: "OCI runtime exec failed", 126 */
    }
    drop_privileges(uid, gid, groups, caps);
    load_seccomp();
    exec_command(argv, envp);
  }
  for (int i = 0; i < ncg; i++) close(cg[i]);
  signal(SIGINT, SIG_IGN); /* without a pty the command gets the terminal's ^C itself, we wait for it */
  if (tty) relay_pty(master);
  int status;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) die("waitpid", NULL);
  if (WIFSIGNALED(status)) _exit(128 + WTERMSIG(status));
  _exit(WEXITSTATUS(status));
}
