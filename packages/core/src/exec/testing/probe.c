/*
 * probe: a static test binary for the isolation tests. Each subcommand tries ONE thing a hostile
 * RUN step would try and reports the outcome on stdout:
 *   "ok"                 the operation succeeded (exit 0)
 *   "denied <ERRNO>"     it failed with that errno (exit 1)
 * usage errors exit 2. Built by probe.ts with the machine's cc (-static), copied into test rootfs.
 * Why C: busybox has no applet for keyctl, TIOCSTI, ptrace, raw clone flags or bpf(2).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

static int report(long rc) {
  if (rc >= 0) { puts("ok"); return 0; }
  printf("denied %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  return 1;
}

static int usage(void) {
  fputs("usage: probe keyctl | unshare-user | clone-user | tiocsti [PATH] | ctty | mount SRC DST TYPE |\n"
        "       mknod-open PATH MAJOR MINOR | open PATH r|w | ptrace PID | init-module | bpf | perf |\n"
        "       fds | connect IP PORT\n", stderr);
  return 2;
}

static int child_exit(void *arg) { (void)arg; return 0; }

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  const char *c = argv[1];
  if (!strcmp(c, "keyctl")) {
    /* add_key(2): Docker's profile blocks the keyring calls (keys are not namespaced). */
    return report(syscall(SYS_add_key, "user", "vlab-probe", "x", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */));
  }
  if (!strcmp(c, "unshare-user")) return report(unshare(CLONE_NEWUSER));
  if (!strcmp(c, "clone-user")) {
    static char stack[64 * 1024];
    int pid = clone(child_exit, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, NULL);
    if (pid > 0) waitpid(pid, NULL, 0);
    return report(pid);
  }
  if (!strcmp(c, "tiocsti")) {
    const char *p = argc > 2 ? argv[2] : "/dev/tty";
    int fd = open(p, O_RDWR | O_NOCTTY);
    if (fd < 0) return report(-1);
    char ch = '#';
    return report(ioctl(fd, TIOCSTI, &ch));
  }
  if (!strcmp(c, "ctty")) {
    /* a controlling terminal exists if /dev/tty opens */
    return report(open("/dev/tty", O_RDWR | O_NOCTTY));
  }
  if (!strcmp(c, "mount") && argc == 5) return report(mount(argv[2], argv[3], argv[4], 0, NULL));
  if (!strcmp(c, "mknod-open") && argc == 5) {
    if (mknod(argv[2], S_IFBLK | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) != 0 && errno != EEXIST) return report(-1);
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) return report(-1);
    char b;
    return report(read(fd, &b, 1));
  }
  if (!strcmp(c, "open") && argc == 4) {
    int w = argv[3][0] == 'w';
    int fd = open(argv[2], w ? O_WRONLY : O_RDONLY);
    if (fd < 0) return report(-1);
    char b = '1';
    return report(w ? write(fd, &b, 1) : read(fd, &b, 1));
  }
  if (!strcmp(c, "ptrace") && argc == 3) return report(ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0));
  if (!strcmp(c, "init-module")) return report(syscall(SYS_init_module, "", 0UL, ""));
  if (!strcmp(c, "bpf")) {
    /* BPF_MAP_CREATE of a 1-entry array: succeeds only with bpf(2) allowed and CAP_BPF/SYS_ADMIN */
    unsigned int attr[16] = { 2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1 };
    return report(syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr));
  }
  if (!strcmp(c, "perf")) {
    unsigned char attr[128] = { 0 };
    ((unsigned int *)attr)[0] = 1; /* PERF_TYPE_SOFTWARE */
    ((unsigned int *)attr)[1] = sizeof attr;
    return report(syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
  }
  if (!strcmp(c, "fds")) {
    /* prints every open fd above 2 (besides the one reading the dir), "none" when there is none */
    DIR *d = opendir("/proc/self/fd");
    if (!d) return report(-1);
    int self = dirfd(d), any = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] == '.' || fd <= 2 || fd == self) continue;
      char link[256] = "", p[64];
      snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(p, link, sizeof link - 1);
      if (n > 0) link[n] = 0;
      printf("%d %s\n", fd, link);
      any = 1;
    }
    if (!any) puts("none");
    return 0;
  }
  if (!strcmp(c, "connect") && argc == 4) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return report(-1);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return usage();
    return report(connect(s, (struct sockaddr *)&a, sizeof a));
  }
  return usage();
}
