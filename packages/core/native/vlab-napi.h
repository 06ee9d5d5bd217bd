/*
 * The Node-API that packages/core's addons (vlab-fdpass.c, vlab-fadvise.c) use, declared here
 * instead of including node_api.h: the Node-API ABI is stable across Node versions, so building an
 * addon needs only a C compiler (scripts/build-native.sh), no Node headers. Include it from one
 * file per addon: VLAB_NAPI_MODULE defines the addon's two entry points.
 */
#ifndef VLAB_NAPI_H
#define VLAB_NAPI_H
#include <stddef.h>
#include <stdint.h>
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
napi_status napi_create_array_with_length(napi_env, size_t, napi_value *);
napi_status napi_set_element(napi_env, napi_value, uint32_t, napi_value);
napi_status napi_create_buffer_copy(napi_env, size_t, const void *, void **, napi_value *);
napi_status napi_get_buffer_info(napi_env, napi_value, void **, size_t *);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);

/* A JavaScript number from an int32 (the addons' results: >= 0, or -errno). */
static inline napi_value num(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

struct vlab_napi_fn {
  const char *name;
  napi_callback cb;
};

/*
 * The addon's entry points: its exports are the functions of FNS (a static array of struct
 * vlab_napi_fn), and it asks for Node-API version 8.
 */
#define VLAB_NAPI_MODULE(FNS)                                                     \
  napi_value napi_register_module_v1(napi_env env, napi_value exports) {          \
    for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++) {                     \
      napi_value f;                                                               \
      napi_create_function(env, FNS[i].name, strlen(FNS[i].name), FNS[i].cb, NULL, &f); \
      napi_set_named_property(env, exports, FNS[i].name, f);                      \
    }                                                                             \
    return exports;                                                               \
  }                                                                               \
  int32_t node_api_module_get_api_version_v1(void) { return 8; }

#endif
