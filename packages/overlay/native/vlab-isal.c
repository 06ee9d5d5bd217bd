/*
 * vlab-isal.node: ISA-L's igzip (Debian's libisal) for both directions of layer compression, one
 * addon that @vlab/overlay builds and @vlab/image finds through it (src/native.ts: isalAddon).
 *   deflate(input, dictionary | null, output, level) -> Promise<number>   vlab-isal-deflate.c
 *     a segment of the parallel gzip of src/layer/pgzip.ts (push)
 *   stateSize(), init(state), inflate(state, input, output) -> Promise<[rc, used, made, fin]>
 *     gunzip of a pulled layer (packages/core/src/registry/inflate-pool.ts)   vlab-isal-inflate.c
 *   misalign(buffer, align) -> number
 *     how many bytes from the buffer's start to the next multiple of `align` in memory: O_DIRECT
 *     writes of the pulled tar need aligned buffers (inflate-worker.ts), which JS cannot see
 * Both run on libuv's thread pool (Node-API async work): the calling thread hashes and writes
 * while the pool compresses or decompresses the next block. Nothing throws: bad arguments
 * resolve with -1 / ISAL_INVALID_OPERATION.
 */
#include <string.h>

#include "vlab-isal.h"

static napi_value vlab_misalign(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *p = NULL;
  size_t len = 0;
  int32_t align = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_buffer_info(env, argv[0], &p, &len) != 0 || napi_get_value_int32(env, argv[1], &align) != 0 ||
      align <= 0 || (align & (align - 1)))
    return vlab_int(env, -1);
  return vlab_int(env, (int32_t)((align - (uintptr_t)p % (uintptr_t)align) % (uintptr_t)align));
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"deflate", vlab_deflate},
             {"stateSize", vlab_inflate_state_size},
             {"init", vlab_inflate_init},
             {"inflate", vlab_inflate},
             {"misalign", vlab_misalign}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, strlen(fns[i].name), fns[i].cb, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
