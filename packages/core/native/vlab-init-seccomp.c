/*
 * vlab-init's seccomp filter: built with libseccomp from the spec's rules (exec/seccomp.ts decides
 * them: Docker's default profile for the container's capabilities) before the privilege drop, and
 * loaded right before execve, after the drop and no_new_privs, as runc does.
 *
 *   seccomp ERRNO               start a filter: a call no rule allows fails with ERRNO
 *   scarch NAME                 also cover this arch (x86, x32, …: 32-bit binaries get the same rules)
 *   scrule NAME ACTION ARGS     ACTION allow or an errno; ARGS "-" or INDEX:OP:VALUE:VALUE2,… (all hold)
 *   sccache FILE                the compiled program for exactly these rules (the caller names it
 *                               by their hash): read when it is there, else written. Building
 *                               ~400 rules for 3 arches costs ~7 ms of CPU; reading it ~0.1 ms.
 *
 * A syscall name the running libseccomp does not know is skipped (runc does the same): the call
 * then gets the default action.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vlab-init.h"

static void bad_rule(const char *what, const char *tok) {
  fprintf(stderr, "vlab-init: bad seccomp %s: %s\n", what, tok);
  _exit(125);
}

static void check(int rc, const char *what, const char *arg) {
  if (rc < 0) {
    errno = -rc;
    die(what, arg);
  }
}

static unsigned long long num64(const char *s, char **end) {
  errno = 0;
  unsigned long long v = strtoull(s, end, 10);
  if (errno || *end == s) bad_rule("number", s);
  return v;
}

static enum scmp_compare op_of(const char *s, size_t n) {
  static const struct { const char *w; enum scmp_compare op; } ops[] = {
      {"ne", SCMP_CMP_NE}, {"lt", SCMP_CMP_LT}, {"le", SCMP_CMP_LE}, {"eq", SCMP_CMP_EQ},
      {"ge", SCMP_CMP_GE}, {"gt", SCMP_CMP_GT}, {"masked_eq", SCMP_CMP_MASKED_EQ},
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (strlen(ops[i].w) == n && strncmp(ops[i].w, s, n) == 0) return ops[i].op;
  bad_rule("operator", s);
  return SCMP_CMP_EQ;
}

/* "0:masked_eq:2114060288:0,1:eq:5:0" → args; returns their number. */
static unsigned parse_args(const char *s, struct scmp_arg_cmp *args) {
  unsigned n = 0;
  if (strcmp(s, "-") == 0) return 0;
  for (const char *p = s;;) {
    if (n == 6) bad_rule("arguments", s);
    char *end;
    unsigned long long idx = num64(p, &end);
    if (*end != ':' || idx > 5) bad_rule("argument", s);
    const char *op = end + 1, *colon = strchr(op, ':');
    if (!colon) bad_rule("argument", s);
    unsigned long long a = num64(colon + 1, &end);
    if (*end != ':') bad_rule("argument", s);
    unsigned long long b = num64(end + 1, &end);
    args[n++] = (struct scmp_arg_cmp){(unsigned)idx, op_of(op, colon - op), a, b};
    if (*end == 0) return n;
    if (*end != ',') bad_rule("argument", s);
    p = end + 1;
  }
}

static struct sock_fprog prog;

#define MAX_PROG (BPF_MAXINSNS * sizeof(struct sock_filter))

/* A cache file we wrote: regular, ours, not writable by anyone else, a whole program. */
static int read_cache(const char *file) {
  int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  char *buf = NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) || st.st_size == 0 ||
      st.st_size % sizeof(struct sock_filter) || (size_t)st.st_size > MAX_PROG || !(buf = malloc(st.st_size)) ||
      read(fd, buf, st.st_size) != st.st_size) {
    free(buf);
    close(fd);
    return 0;
  }
  close(fd);
  prog.len = st.st_size / sizeof(struct sock_filter);
  prog.filter = (struct sock_filter *)buf;
  return 1;
}

/* Best effort: a failed write only costs the next container a rebuild. */
static void write_cache(const char *file, const void *buf, size_t n) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.%d", file, getpid()) >= (int)sizeof tmp) return;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return;
  int ok = write(fd, buf, n) == (ssize_t)n;
  close(fd);
  if (!ok || rename(tmp, file) != 0) unlink(tmp);
}

static scmp_filter_ctx build(char **tok, int ntok) {
  scmp_filter_ctx ctx = NULL;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    const char *k = tok[i];
    char **a = tok + i + 1;
    if (strcmp(k, "seccomp") == 0) {
      char *end;
      ctx = seccomp_init(SCMP_ACT_ERRNO((unsigned)num64(a[0], &end)));
      if (!ctx) die("seccomp_init", NULL);
    } else if (strcmp(k, "scarch") == 0) {
      if (!ctx) bad_rule("order", k);
      uint32_t arch = seccomp_arch_resolve_name(a[0]);
      if (arch == 0) bad_rule("arch", a[0]);
      int rc = seccomp_arch_add(ctx, arch);
      if (rc != -EEXIST) check(rc, "seccomp arch", a[0]); /* the native arch is there already */
    } else if (strcmp(k, "scrule") == 0) {
      if (!ctx) bad_rule("order", k);
      int nr = seccomp_syscall_resolve_name(a[0]);
      if (nr == __NR_SCMP_ERROR) continue; /* unknown to this libseccomp */
      uint32_t action = SCMP_ACT_ALLOW;
      if (strcmp(a[1], "allow") != 0) {
        char *end;
        action = SCMP_ACT_ERRNO((unsigned)num64(a[1], &end));
        if (*end) bad_rule("action", a[1]);
      }
      struct scmp_arg_cmp args[6];
      unsigned n = parse_args(a[2], args);
      check(seccomp_rule_add_array(ctx, action, nr, n, args), "seccomp rule", a[0]);
    }
  }
  return ctx;
}

void prepare_seccomp(char **tok, int ntok) {
  const char *cache = NULL;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1)
    if (strcmp(tok[i], "sccache") == 0) cache = tok[i + 1];
  if (cache && read_cache(cache)) return;
  scmp_filter_ctx ctx = build(tok, ntok);
  if (!ctx) return;
  /* The program as the kernel takes it: exported once, loaded by prctl below, kept for next time. */
  int fd = memfd_create("vlab-seccomp", MFD_CLOEXEC);
  if (fd < 0) die("memfd_create", NULL);
  check(seccomp_export_bpf(ctx, fd), "seccomp export", NULL);
  seccomp_release(ctx);
  off_t n = lseek(fd, 0, SEEK_END);
  char *buf = n > 0 && (size_t)n <= MAX_PROG ? malloc(n) : NULL;
  if (!buf || pread(fd, buf, n, 0) != n) die("seccomp program", NULL);
  close(fd);
  prog.len = n / sizeof(struct sock_filter);
  prog.filter = (struct sock_filter *)buf;
  if (cache) write_cache(cache, buf, n);
}

void load_seccomp(void) {
  if (prog.len && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) die("seccomp filter", NULL);
}
