/*
 * vlab-init's seccomp filter: built with libseccomp from the spec's rules (exec/seccomp.ts decides
 * them: Docker's default profile for the container's capabilities) and loaded right before execve,
 * after the privilege drop and no_new_privs, as runc does.
 *
 *   seccomp ERRNO               start a filter: a call no rule allows fails with ERRNO
 *   scarch NAME                 also cover this arch (x86, x32, …: 32-bit binaries get the same rules)
 *   scrule NAME ACTION ARGS     ACTION allow or an errno; ARGS "-" or INDEX:OP:VALUE:VALUE2,… (all hold)
 *
 * A syscall name the running libseccomp does not know is skipped (runc does the same): the call
 * then gets the default action.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <seccomp.h>
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

void install_seccomp(char **tok, int ntok) {
  scmp_filter_ctx ctx = NULL;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    const char *k = tok[i];
    char **a = tok + i + 1;
    if (strcmp(k, "seccomp") == 0) {
      char *end;
      ctx = seccomp_init(SCMP_ACT_ERRNO((unsigned)num64(a[0], &end)));
      if (!ctx) die("seccomp_init", NULL);
      /* drop_privileges set no_new_privs already. */
      check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "seccomp attribute", "nnp");
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
  if (!ctx) return;
  check(seccomp_load(ctx), "seccomp_load", NULL);
  seccomp_release(ctx);
}
