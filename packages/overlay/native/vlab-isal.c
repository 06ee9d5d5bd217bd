/*
 * vlab-isal.node: ISA-L's igzip (Debian's libisal) for both directions of layer compression, one
 * addon that @vlab/overlay builds and @vlab/image finds through it (src/native.ts: isalAddon).
 *   deflate(input, dictionary | null, output, level) -> Promise<number>   vlab-isal-deflate.c
 *     a segment of the parallel gzip of src/layer/pgzip.ts (push)
 *   stateSize(), init(state), inflate(state, input, output) -> Promise<[rc, used, made, fin]>
 *     gunzip of a pulled layer (packages/core/src/registry/inflate-pool.ts)   vlab-isal-inflate.c
 * Both run on libuv's thread pool (Node-API async work): the calling thread hashes and writes
 * while the pool compresses or decompresses the next block. Nothing throws: bad arguments
 * resolve with -1 / ISAL_INVALID_OPERATION.
 */
#include <string.h>

#include "vlab-isal.h"

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"deflate", vlab_deflate},
             {"stateSize", vlab_inflate_state_size},
             {"init", vlab_inflate_init},
             {"inflate", vlab_inflate}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, strlen(fns[i].name), fns[i].cb, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
