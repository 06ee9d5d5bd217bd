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
 *   vlab-sys xattrs1 PATH MATCH the same for PATH alone (not recursive)
 *   vlab-sys nodes ROOT OWNERS SPEC   what layer apply makes at the end (layer/pending.ts), each
 *                    under a parent opened from ROOT one component at a time with O_NOFOLLOW
 *                    (a symlink anywhere on the way fails with ELOOP/ENOTDIR). SPEC: one line per
 *                    item, paths and bytes in hex: `n PATH MODE RDEV UID GID MTIME` (mknodat,
 *                    then owner when OWNERS is 1, mode, mtime), `l PATH TARGET` (linkat),
 *                    `x PATH NAME VALUE` (lsetxattr of PATH itself, never what it points to).
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
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

static int xattrs(const char *dir, const char *match, int one) {
  match_all = strcmp(match, "-") == 0;
  if (!match_all) {
    int rc = regcomp(&match_re, match, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      regerror(rc, &match_re, err, sizeof err);
      return 2;
    }
  }
  /* one: only PATH itself (a union lookup asks one dir, not the whole layer) */
  int rc = one ? visit(dir, NULL, 0, NULL) : nftw(dir, visit, 64, FTW_PHYS) == 0 ? 0 : fail("xattrs", dir);
  if (!match_all) regfree(&match_re);
  return rc;
}

static int fail(const char *what, const char *target) {
  out_len = 0;
  snprintf(err, sizeof err, "%s %s: %s", what, target, strerror(errno));
  return 32;
}

/* Decodes hex in place; returns the length, or -1. */
static long unhex(char *s) {
  size_t n = strlen(s);
  if (n % 2) return -1;
  for (size_t i = 0; i < n; i += 2) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
      char c = s[i + k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    s[i / 2] = (char)v;
  }
  s[n / 2] = 0;
  return (long)(n / 2);
}

/* The parent of relative path `rel` under `root`, opened one component at a time with
 * O_NOFOLLOW; *base points at the last component. -1 (errno set) on failure. */
static int open_parent(int root, char *rel, char **base) {
  int cur = dup(root);
  char *p = rel;
  for (char *slash; cur >= 0 && (slash = strchr(p, '/')); p = slash + 1) {
    *slash = 0;
    int next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    *slash = '/';
    int saved = errno;
    close(cur);
    errno = saved;
    cur = next;
  }
  *base = p;
  if (cur >= 0 && (!*p || strcmp(p, ".") == 0 || strcmp(p, "..") == 0)) {
    close(cur);
    errno = EINVAL;
    return -1;
  }
  return cur;
}

static int node_line(int root, int owners, char *line) {
  char *f[8];
  int n = 0;
  for (char *tok = strtok(line, " "); tok && n < 8; tok = strtok(NULL, " ")) f[n++] = tok;
  if (n < 2 || unhex(f[1]) < 0) return errno = EINVAL, -1;
  char *base;
  int dir = open_parent(root, f[1], &base);
  if (dir < 0) return -1;
  int rc = -1;
  if (f[0][0] == 'n' && n == 7) {
    mode_t mode = (mode_t)strtoul(f[2], NULL, 10);
    struct timespec ts[2] = {{.tv_sec = strtoll(f[6], NULL, 10)}, {.tv_sec = strtoll(f[6], NULL, 10)}};
    if (mknodat(dir, base, mode, (dev_t)strtoull(f[3], NULL, 10)) == 0 &&
        (!owners || fchownat(dir, base, (uid_t)strtoul(f[4], NULL, 10), (gid_t)strtoul(f[5], NULL, 10), AT_SYMLINK_NOFOLLOW) == 0) &&
        fchmodat(dir, base, mode & 07777, 0) == 0 && utimensat(dir, base, ts, AT_SYMLINK_NOFOLLOW) == 0)
      rc = 0;
  } else if (f[0][0] == 'l' && n == 3 && unhex(f[2]) >= 0) {
    char *tbase;
    int tdir = open_parent(root, f[2], &tbase);
    if (tdir >= 0) {
      rc = linkat(tdir, tbase, dir, base, 0);
      close(tdir);
    }
  } else if (f[0][0] == 'x' && (n == 3 || n == 4) && unhex(f[2]) >= 0) {
    char empty[1] = {0};
    char *value = n == 4 ? f[3] : empty; /* an empty value leaves no field */
    long vlen = unhex(value);
    char at[64];
    snprintf(at, sizeof at, "/proc/self/fd/%d/", dir);
    size_t need = strlen(at) + strlen(base) + 1;
    char *path = malloc(need);
    if (vlen >= 0 && path) {
      snprintf(path, need, "%s%s", at, base);
      rc = lsetxattr(path, f[2], value, (size_t)vlen, 0);
    } else errno = EINVAL;
    free(path);
  } else errno = EINVAL;
  int saved = errno;
  close(dir);
  errno = saved;
  return rc;
}

static int nodes(const char *root, const char *owners, char *spec) {
  int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail("nodes", root);
  mode_t old = umask(0);
  int rc = 0, line_no = 0;
  for (char *save, *line = strtok_r(spec, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    line_no++;
    if (node_line(fd, strcmp(owners, "1") == 0, line) != 0) {
      char what[32];
      snprintf(what, sizeof what, "nodes (item %d)", line_no);
      rc = fail(what, root);
      break;
    }
  }
  umask(old);
  close(fd);
  return rc;
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
  if (argc >= 2 && strcmp(argv[0], "syncfs") == 0) {
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("open", argv[1]);
    int rc = syncfs(fd);
    close(fd);
    if (rc != 0) return fail("syncfs", argv[1]);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[0], "xattrs") == 0) return xattrs(argv[1], argv[2], 0);
  if (argc >= 3 && strcmp(argv[0], "xattrs1") == 0) return xattrs(argv[1], argv[2], 1);
  if (argc >= 4 && strcmp(argv[0], "nodes") == 0) return nodes(argv[1], argv[2], argv[3]);
  snprintf(err, sizeof err, "usage: vlab-sys mount FSTYPE SOURCE TARGET DATA | bind SOURCE TARGET [rec] [ro] | umount TARGET [lazy] | syncfs PATH | xattrs DIR MATCH | xattrs1 PATH MATCH | nodes ROOT OWNERS SPEC | serve");
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
