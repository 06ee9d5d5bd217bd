/*
 * vlab-walk ROOT: every entry under ROOT (not ROOT itself), symlinks not followed, as binary
 * records on stdout, for the build context walk (src/context/walk.ts).
 *
 * Why by hand: in Node 20 each lstat makes an fs.Stats with four Dates and a dozen boxed
 * numbers: a 20,000-file context costs ~100 ms and tens of MB of garbage before any build work,
 * and 200,000 files ten times that. Here it is one fstatat(2) per entry and a few bytes out.
 *
 * Record (little-endian): u32 length of the path, the path relative to ROOT ('/'-separated,
 * bytes as the directory holds them), then 14 float64: dev ino mode nlink uid gid rdev size
 * atime_sec atime_nsec mtime_sec mtime_nsec ctime_sec ctime_nsec, each converted as Node converts
 * them (a plain double cast), so walk.ts computes the same *Ms values fs.lstat would.
 * Order: depth first, a directory's names as readdir gives them. An entry (or directory) removed
 * while walked is left out. A directory that is no longer the one its parent listed (another
 * inode: replaced, or a directory on the way swapped for a symlink to one outside ROOT, which
 * openat follows) is not read: exit 3. Exit 0; on any other error the message on stderr and exit 2.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rootfd;
static char rel[PATH_MAX];

static void die(const char *what, const char *path) {
  fprintf(stderr, "vlab-walk: %s %s: %s\n", what, *path ? path : ".", strerror(errno));
  exit(2);
}

static void put_double(double v) {
  unsigned char b[8];
  memcpy(b, &v, 8); /* x86-64 and arm64 are little-endian, as the reader expects */
  if (fwrite(b, 1, 8, stdout) != 8) die("write", "stdout");
}

static void emit(size_t len, const struct stat *st) {
  uint32_t n = (uint32_t)len;
  unsigned char b[4] = {n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >> 24};
  if (fwrite(b, 1, 4, stdout) != 4 || fwrite(rel, 1, len, stdout) != len) die("write", "stdout");
  double v[14] = {
      (double)st->st_dev,          (double)st->st_ino,           (double)st->st_mode,
      (double)st->st_nlink,        (double)st->st_uid,           (double)st->st_gid,
      (double)st->st_rdev,         (double)st->st_size,          (double)st->st_atim.tv_sec,
      (double)st->st_atim.tv_nsec, (double)st->st_mtim.tv_sec,   (double)st->st_mtim.tv_nsec,
      (double)st->st_ctim.tv_sec,  (double)st->st_ctim.tv_nsec,
  };
  for (int i = 0; i < 14; i++) put_double(v[i]);
}

struct sub {
  char *name;
  dev_t dev;
  ino_t ino;
};

/* The directory at rel[0..len) (len 0: ROOT), which its parent listed as dev/ino. Its
 * subdirectories are visited after it is closed: one directory fd open at a time, however deep
 * the tree. O_NOFOLLOW covers the last component only: the fstat tells whether the path led to
 * the very directory listed. */
static void walk(size_t len, dev_t dev, ino_t ino) {
  int fd = len ? openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : dup(rootfd);
  if (fd < 0) {
    if (len && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) return;
    die("cannot open", rel);
  }
  struct stat self;
  if (fstat(fd, &self) < 0) die("cannot stat", rel);
  if (len && (self.st_dev != dev || self.st_ino != ino)) {
    fprintf(stderr, "vlab-walk: %s changed while it was walked\n", rel);
    exit(3);
  }
  DIR *d = fdopendir(fd);
  if (!d) die("cannot read", rel);
  size_t nsub = 0, cap = 0;
  struct sub *subs = NULL;
  struct dirent *e;
  for (errno = 0; (e = readdir(d)); errno = 0) {
    const char *name = e->d_name;
    if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
    size_t nl = strlen(name);
    size_t full = len ? len + 1 + nl : nl;
    if (full >= sizeof rel) {
      errno = ENAMETOOLONG;
      die("path too long under", rel);
    }
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) continue;
      die("cannot lstat an entry of", rel);
    }
    if (len) rel[len] = '/';
    memcpy(rel + (len ? len + 1 : 0), name, nl);
    emit(full, &st);
    rel[len] = 0;
    if (S_ISDIR(st.st_mode)) {
      if (nsub == cap) {
        cap = cap ? cap * 2 : 16;
        subs = realloc(subs, cap * sizeof *subs);
        if (!subs) die("out of memory in", rel);
      }
      subs[nsub] = (struct sub){strdup(name), st.st_dev, st.st_ino};
      if (!subs[nsub++].name) die("out of memory in", rel);
    }
  }
  if (errno) die("cannot read", rel);
  closedir(d);
  for (size_t i = 0; i < nsub; i++) {
    size_t nl = strlen(subs[i].name);
    size_t full = len ? len + 1 + nl : nl;
    if (len) rel[len] = '/';
    memcpy(rel + (len ? len + 1 : 0), subs[i].name, nl);
    rel[full] = 0;
    walk(full, subs[i].dev, subs[i].ino);
    rel[len] = 0;
    free(subs[i].name);
  }
  free(subs);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: vlab-walk ROOT\n");
    return 2;
  }
  rootfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) die("cannot open", argv[1]);
  static char buf[1 << 20];
  setvbuf(stdout, buf, _IOFBF, sizeof buf);
  walk(0, 0, 0);
  if (fflush(stdout) != 0) die("write", "stdout");
  return 0;
}
