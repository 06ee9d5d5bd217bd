/*
 * vlab-fadvise.node: posix_fadvise(POSIX_FADV_DONTNEED), which Node lacks. A blob writer drops
 * the page cache of a range it has just flushed to disk (store/writeback.ts), so a 1 GB layer
 * cycles through a window of pages instead of taking 1 GB of new ones (on a loaded or virtual
 * machine, fresh pages made writing a 1.2 GB layer take ~8x as long as writing into reused ones).
 * And POSIX_FADV_WILLNEED: a context checksum asks for the files it reads next (context/hash-cache.ts, TableHashes.prefetch),
 * so the disk reads of an uncached context overlap instead of waiting one file at a time.
 *
 * A Node-API addon without node_api.h (vlab-napi.h declares what it calls), so building it needs
 * only a C compiler. Returns 0 or -errno; nothing throws.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "vlab-napi.h"

/* advise(fd, offset, length) with one posix_fadvise advice: the two exported calls differ only in it. */
static napi_value advise(napi_env env, napi_callback_info info, int advice) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  int64_t off = -1, len = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != 0 || napi_get_value_int64(env, argv[1], &off) != 0 ||
      napi_get_value_int64(env, argv[2], &len) != 0 || fd < 0 || off < 0 || len < 0)
    return num(env, -EINVAL);
  return num(env, -posix_fadvise(fd, (off_t)off, (off_t)len, advice));
}

/* dontneed(fd, offset, length): the clean pages of [offset, offset + length) leave the page cache. */
static napi_value dontneed(napi_env env, napi_callback_info info) { return advise(env, info, POSIX_FADV_DONTNEED); }

/* willneed(fd, offset, length): the kernel starts reading [offset, offset + length) into the page cache (no wait). */
static napi_value willneed(napi_env env, napi_callback_info info) { return advise(env, info, POSIX_FADV_WILLNEED); }

static const struct vlab_napi_fn fns[] = {{"dontneed", dontneed}, {"willneed", willneed}};
VLAB_NAPI_MODULE(fns)
