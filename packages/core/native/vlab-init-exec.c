/*
 * vlab-init exec: built into the same binary as vlab-init.c (scripts/build-native.sh compiles
 * native/vlab-init*.c together).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vlab-init.h"

/*
 * vlab-init exec SPEC: the last step of the util-linux shell launcher (exec/builtin.ts), run from
 * the container's root as cwd with the ids and caps setpriv left: chroot("."), cwd, uid, the seccomp
 * filter, execve. It replaces `unshare --root=. --setuid`, whose unshare(0) the filter forbids.
 */
void exec_tail(const char *spec) {
  read_spec(spec);
  check_spec();
  const char *cwd = "/";
  long uid = 0;
  char **argv = calloc(ntok + 1, sizeof *argv), **envp = calloc(ntok + 1, sizeof *envp);
  if (!argv || !envp) die("calloc", NULL);
  int nargs = 0, nenv = 0;
  for (int i = 0; i < ntok; i += arity(tok[i]) + 1) {
    if (strcmp(tok[i], "cwd") == 0) cwd = tok[i + 1];
    if (strcmp(tok[i], "uid") == 0) uid = (long)num(tok[i + 1], 10);
    if (strcmp(tok[i], "env") == 0) envp[nenv++] = tok[i + 1];
    if (strcmp(tok[i], "arg") == 0) argv[nargs++] = tok[i + 1];
  }
  if (nargs == 0) bad_spec("no arg");
  prepare_seccomp(tok, ntok);
  if (chroot(".") != 0) die("chroot", ".");
  if (chdir(cwd) != 0) die("chdir", cwd);
  if (setresuid(uid, uid, uid) != 0) die("setresuid", NULL);
  load_seccomp();
  exec_command(argv, envp);
}
