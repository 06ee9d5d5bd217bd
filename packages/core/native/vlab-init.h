/* Shared by vlab-init.c (one container) and vlab-init-serve.c (the long-lived launcher). */
#ifndef VLAB_INIT_H
#define VLAB_INIT_H

/* Prints "vlab-init: WHAT ARG: strerror(errno)" and exits 125. */
void die(const char *what, const char *arg);
/* Number of arguments a spec keyword takes; -1 = unknown (vlab-init.c). */
int arity(const char *k);
/* Compiles the seccomp filter the spec's seccomp/scarch/scrule tokens describe, if any (or reads
 * it from its sccache file); load_seccomp() installs it (needs no_new_privs). vlab-init-seccomp.c */
void prepare_seccomp(char **tok, int ntok);
void load_seccomp(void);
/* Starts the container SPEC describes and exits with its status (see vlab-init.c). */
void launch(const char *spec) __attribute__((noreturn));
/* The server loop (see vlab-init-serve.c); returns when Node closes stdin. */
int serve(void);

#endif
