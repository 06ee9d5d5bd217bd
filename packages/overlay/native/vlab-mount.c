/*
 * vlab-mount: mount(2) and umount2(2) for Node, which has neither.
 *
 * Why by hand: util-linux mount(8) parses fstab/mountinfo, takes the utab lock and loads
 * libmount on every call: ~8-12 ms a call here, and a RUN step mounts and unmounts one overlay.
 * This is one system call behind an exec (~1 ms over the bare spawn). Nothing else: no option
 * parsing beyond the flags below, no mtab. mount.ts falls back to mount(8) without it.
 *
 *   vlab-mount mount  FSTYPE SOURCE TARGET DATA   (DATA as mount(8) -o; relative lowerdirs are
 *                                                  resolved against the cwd the caller chose)
 *   vlab-mount bind   SOURCE TARGET [rec] [ro]
 *   vlab-mount umount TARGET [lazy]
 *
 * Exit 0 on success; otherwise the error on stderr and exit 32 (mount(8)'s "mount failure").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

static int fail(const char *what, const char *target) {
  fprintf(stderr, "vlab-mount: %s %s: %s\n", what, target, strerror(errno));
  return 32;
}

int main(int argc, char **argv) {
  if (argc >= 6 && strcmp(argv[1], "mount") == 0) {
    if (mount(argv[3], argv[4], argv[2], 0, argv[5]) != 0) return fail("mount", argv[4]);
    return 0;
  }
  if (argc >= 4 && strcmp(argv[1], "bind") == 0) {
    unsigned long flags = MS_BIND;
    int ro = 0;
    for (int i = 4; i < argc; i++) {
      if (strcmp(argv[i], "rec") == 0) flags |= MS_REC;
      if (strcmp(argv[i], "ro") == 0) ro = 1;
    }
    if (mount(argv[2], argv[3], NULL, flags, NULL) != 0) return fail("bind", argv[3]);
    /* A bind mount ignores MS_RDONLY on creation: read-only takes a remount (as mount(8) does). */
    if (ro && mount(NULL, argv[3], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) return fail("remount ro", argv[3]);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "umount") == 0) {
    int flags = argc >= 4 && strcmp(argv[3], "lazy") == 0 ? MNT_DETACH : 0;
    if (umount2(argv[2], flags) != 0) return fail("umount", argv[2]);
    return 0;
  }
  fprintf(stderr, "usage: vlab-mount mount FSTYPE SOURCE TARGET DATA | bind SOURCE TARGET [rec] [ro] | umount TARGET [lazy]\n");
  return 2;
}
