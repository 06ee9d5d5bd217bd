/* Shared by vlab-init.c (one container) and its companions: vlab-init-serve.c (the long-lived
 * launcher), vlab-init-seccomp.c (the filter), vlab-init-exec.c (the shell launcher's last step). */
#ifndef VLAB_INIT_H
#define VLAB_INIT_H

/* Prints "vlab-init: WHAT ARG: strerror(errno)" and exits 125. */
void die(const char *what, const char *arg);
/* The spec (vlab-init.c): its tokens, read and checked; arity of a keyword (-1 = unknown). */
extern char *tok[];
extern int ntok;
void read_spec(const char *file);
void check_spec(void);
int arity(const char *k);
/* A spec error: message on stderr, exit 125. */
void bad_spec(const char *why) __attribute__((noreturn));
unsigned long num(const char *s, int base);
/* execve argv with envp; argv[0] looked up in envp's PATH; 127/126 when that fails. */
void exec_command(char **argv, char **envp) __attribute__((noreturn));
/* vlab-init exec SPEC: the shell launcher's last step (vlab-init-exec.c). */
void exec_tail(const char *spec) __attribute__((noreturn));
/* Compiles the seccomp filter the spec's seccomp/scarch/scrule tokens describe, if any (or reads
 * it from its sccache file); load_seccomp() installs it (needs no_new_privs). vlab-init-seccomp.c */
void prepare_seccomp(char **tok, int ntok);
void load_seccomp(void);
/* Starts the container SPEC describes and exits with its status (see vlab-init.c). */
void launch(const char *spec) __attribute__((noreturn));
/* Bounding set, ambient cleared, groups, ids, capabilities (root only), no_new_privs. vlab-init.c */
void drop_privileges(long uid, long gid, const char *groups, const char *caps);
/* vlab-init enter SPEC: a process in a running container (vlab-init-enter.c). */
void enter(const char *spec) __attribute__((noreturn));
/* The pty (vlab-init-tty.c): a master of PTMX (window size from our terminal, else ROWS x COLS),
 * the slave made the caller's controlling terminal and stdio, bytes relayed until the slave is closed. */
int open_pty_master(const char *ptmx, char *slave, size_t len, unsigned rows, unsigned cols);
void attach_slave(const char *slave);
void relay_pty(int master);
/* A zygote (vlab-init-serve.c) joined these cgroup.procs files before its spec came: launch()
 * moves nothing when the spec names exactly these. */
void set_joined_cgroups(char **files, int n);
/* The server loop (see vlab-init-serve.c); returns when Node closes stdin. */
int serve(void);

#endif
