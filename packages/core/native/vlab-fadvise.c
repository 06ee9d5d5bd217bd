/*
 * vlab-fadvise.node: posix_fadvise(POSIX_FADV_DONTNEED), which Node lacks. A blob writer drops
 * the page cache of a range it has just flushed to disk (store/writeback.ts), so a 1 GB layer
 * cycles through a window of pages instead of taking 1 GB of new ones (on a loaded or virtual
 * machine, fresh pages made writing a 1.2 GB layer take ~8x as long as writing into reused ones).
 *
 * A Node-API addon without node_api.h (as vlab-fdpass.c): the functions it calls are declared
 * below, so building it needs only a C compiler. Returns 0 or -errno; nothing throws.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
napi_status napi_get_value_int32(napi_env, napi_value, int32_t *);
napi_status napi_get_value_int64(napi_env, napi_value, int64_t *);
napi_status napi_create_int32(napi_env, int32_t, napi_value *);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);

/* dontneed(fd, offset, length): the clean pages of [offset, offset + length) leave the page cache. */
static napi_value dontneed(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  int64_t off = -1, len = -1;
  napi_value r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != 0 || napi_get_value_int64(env, argv[1], &off) != 0 ||
      napi_get_value_int64(env, argv[2], &len) != 0 || fd < 0 || off < 0 || len < 0) {
    napi_create_int32(env, -EINVAL, &r);
    return r;
  }
  napi_create_int32(env, -posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED), &r);
  return r;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "dontneed", strlen("dontneed"), dontneed, NULL, &f);
  napi_set_named_property(env, exports, "dontneed", f);
  return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
