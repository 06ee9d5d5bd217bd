/*
 * vlab-sys: the system calls the overlay package needs and Node lacks: mount(2), umount2(2) and
 * reading extended attributes.
 *
 * Why by hand: util-linux mount(8) parses fstab/mountinfo, takes the utab lock and loads libmount
 * on every call, and getfattr(1) is a process too: ~8-12 ms each here, and every RUN step mounts,
 * unmounts and reads the xattrs of its upper dir once. This is the bare system calls; in `serve`
 * mode not even a process start per call. Nothing else: no option parsing beyond the words below,
 * no mtab. mount.ts and sys.ts fall back to mount(8) and getfattr(1) when this is not built.
 *
 *   vlab-sys mount  FSTYPE SOURCE TARGET DATA   (DATA as mount(8) -o; relative lowerdirs are
 *                                                resolved against the current directory)
 *   vlab-sys bind   SOURCE TARGET [rec] [ro]
 *   vlab-sys umount TARGET [lazy]
 *   vlab-sys xattrs DIR MATCH   every xattr under DIR (recursive, symlinks not followed) whose
 *                               name matches the extended regex MATCH ("-": all), printed like
 *                               `getfattr -R -P -h -d -e base64 --absolute-names`
 *   vlab-sys serve   requests on stdin, one at a time: NUL-terminated tokens CWD OP ARGS... and
 *                    an empty token; the answer is "CODE LENGTH\n" then LENGTH bytes: the output
 *                    (CODE 0) or the error (otherwise).
 *
 * Exit 0 on success; otherwise the error on stderr and exit 32 (mount(8)'s "mount failure").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <regex.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <unistd.h>

static char err[1024];

/* The output of an operation (xattrs), grown as needed. */
static char *out;
static size_t out_len, out_cap;

static void put(const void *p, size_t n) {
  if (out_len + n > out_cap) {
    out_cap = (out_len + n) * 2 + 4096;
    out = realloc(out, out_cap);
    if (!out) {
      perror("vlab-sys: realloc");
      exit(1);
    }
  }
  memcpy(out + out_len, p, n);
  out_len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

/* getfattr's escaping: backslash, '=', controls, space and non-ASCII bytes as \ooo octal. */
static void put_escaped(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char buf[8];
    if (*p == '\\') puts_("\\\\");
    else if (*p <= 32 || *p >= 127 || *p == '=') {
      snprintf(buf, sizeof buf, "\\%03o", *p);
      puts_(buf);
    } else put(p, 1);
  }
}

static void put_base64(const unsigned char *v, size_t n) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    unsigned b = v[i] << 16 | (i + 1 < n ? v[i + 1] << 8 : 0) | (i + 2 < n ? v[i + 2] : 0);
    char q[4] = {abc[b >> 18 & 63], abc[b >> 12 & 63], i + 1 < n ? abc[b >> 6 & 63] : '=', i + 2 < n ? abc[b & 63] : '='};
    put(q, 4);
  }
}

static regex_t match_re;
static int match_all;

static int visit(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  ssize_t n = llistxattr(path, NULL, 0);
  if (n <= 0) return 0;
  char *names = malloc(n);
  if (!names) return 0;
  n = llistxattr(path, names, n);
  int header = 0;
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
    const char *name = names + i;
    if (!match_all && regexec(&match_re, name, 0, NULL, 0) != 0) continue;
    ssize_t vl = lgetxattr(path, name, NULL, 0);
    if (vl < 0) continue;
    unsigned char *val = malloc(vl + 1);
    if (!val) continue;
    vl = lgetxattr(path, name, val, vl);
    if (vl >= 0) {
      if (!header) {
        puts_("# file: ");
        put_escaped(path);
        puts_("\n");
        header = 1;
      }
      put_escaped(name);
      puts_("=0s");
      put_base64(val, vl);
      puts_("\n");
    }
    free(val);
  }
  if (header) puts_("\n");
  free(names);
  return 0;
}

static int fail(const char *what, const char *target);

static int xattrs(const char *dir, const char *match) {
  match_all = strcmp(match, "-") == 0;
  if (!match_all) {
    int rc = regcomp(&match_re, match, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      regerror(rc, &match_re, err, sizeof err);
      return 2;
    }
  }
  int rc = nftw(dir, visit, 64, FTW_PHYS) == 0 ? 0 : fail("xattrs", dir);
  if (!match_all) regfree(&match_re);
  return rc;
}

static int fail(const char *what, const char *target) {
  out_len = 0;
  snprintf(err, sizeof err, "%s %s: %s", what, target, strerror(errno));
  return 32;
}

/* One operation; argv[0] is the operation's name. */
static int op(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[0], "mount") == 0) {
    if (mount(argv[2], argv[3], argv[1], 0, argv[4]) != 0) return fail("mount", argv[3]);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[0], "bind") == 0) {
    unsigned long flags = MS_BIND;
    int ro = 0;
    for (int i = 3; i < argc; i++) {
      if (strcmp(argv[i], "rec") == 0) flags |= MS_REC;
      if (strcmp(argv[i], "ro") == 0) ro = 1;
    }
    if (mount(argv[1], argv[2], NULL, flags, NULL) != 0) return fail("bind", argv[2]);
    /* A bind mount ignores MS_RDONLY on creation: read-only takes a remount (as mount(8) does). */
    if (ro && mount(NULL, argv[2], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) return fail("remount ro", argv[2]);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[0], "umount") == 0) {
    int flags = argc >= 3 && strcmp(argv[2], "lazy") == 0 ? MNT_DETACH : 0;
    if (umount2(argv[1], flags) != 0) return fail("umount", argv[1]);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[0], "xattrs") == 0) return xattrs(argv[1], argv[2]);
  snprintf(err, sizeof err, "usage: vlab-sys mount FSTYPE SOURCE TARGET DATA | bind SOURCE TARGET [rec] [ro] | umount TARGET [lazy] | xattrs DIR MATCH | serve");
  return 2;
}

/* Reads one NUL-terminated token; returns its length, or -1 at end of input. */
static ssize_t token(char **buf, size_t *cap) {
  ssize_t n = getdelim(buf, cap, '\0', stdin);
  if (n <= 0) return -1;
  if ((*buf)[n - 1] == '\0') n--;
  return n;
}

static int serve(void) {
  enum { MAX = 16 };
  char *args[MAX];
  size_t caps[MAX];
  memset(args, 0, sizeof args);
  memset(caps, 0, sizeof caps);
  for (;;) {
    int n = 0;
    for (;;) {
      char *scratch = NULL;
      size_t cap = 0;
      char **buf = n < MAX ? &args[n] : &scratch;
      size_t *c = n < MAX ? &caps[n] : &cap;
      ssize_t len = token(buf, c);
      free(scratch);
      if (len < 0) return 0; /* the caller closed stdin: done */
      if (len == 0) break;
      n++;
    }
    int rc;
    if (n < 2 || n > MAX) {
      snprintf(err, sizeof err, "bad request (%d tokens)", n);
      rc = 2;
    } else if (strcmp(args[0], "-") != 0 && chdir(args[0]) != 0) {
      rc = fail("chdir", args[0]);
    } else {
      rc = op(n - 1, args + 1);
    }
    if (chdir("/") != 0) { /* keep no directory busy between requests */ }
    if (rc == 0) {
      printf("0 %zu\n", out_len);
      fwrite(out, 1, out_len, stdout);
    } else {
      printf("%d %zu\n%s", rc, strlen(err), err);
    }
    out_len = 0;
    fflush(stdout);
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
  int rc = op(argc - 1, argv + 1);
  if (rc != 0) fprintf(stderr, "vlab-sys: %s\n", err);
  else fwrite(out, 1, out_len, stdout);
  return rc;
}
