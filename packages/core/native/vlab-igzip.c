/*
 * vlab-igzip.node: gunzip with ISA-L's inflate (Debian's libisal), for pulled layers
 * (src/registry/inflate-pool.ts). It decodes the same gzip as zlib, 3-4x faster here (a 512 MiB
 * layer: 0.37 s against zlib's 1.32 s), which is most of a pull's CPU. The caller keeps the
 * state (a Buffer of stateSize() bytes: V8 never moves a Buffer's memory) and calls inflate()
 * synchronously, on a worker thread; hashing and writing stay in JavaScript.
 *
 * A Node-API addon without node_api.h, as vlab-fdpass.c: the few functions it calls are declared
 * below. Nothing throws: bad arguments give ISAL_INVALID_OPERATION.
 */
#include <isa-l/igzip_lib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
napi_status napi_create_int32(napi_env, int32_t, napi_value *);
napi_status napi_create_array_with_length(napi_env, size_t, napi_value *);
napi_status napi_set_element(napi_env, napi_value, uint32_t, napi_value);
napi_status napi_get_buffer_info(napi_env, napi_value, void **, size_t *);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);

static napi_value num(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

/* The inflate_state in argv[0], or NULL when the Buffer is not one. */
static struct inflate_state *state_arg(napi_env env, napi_value v) {
  void *p = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, v, &p, &len) != 0 || len < sizeof(struct inflate_state)) return NULL;
  return p;
}

static napi_value state_size(napi_env env, napi_callback_info info) {
  (void)info;
  return num(env, (int32_t)sizeof(struct inflate_state));
}

/* init(state) -> 0: a new gzip member (header parsed, CRC-32 and size checked at its end). */
static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct inflate_state *s = argc < 1 ? NULL : state_arg(env, argv[0]);
  if (!s) return num(env, ISAL_INVALID_OPERATION);
  isal_inflate_init(s);
  s->crc_flag = ISAL_GZIP;
  return num(env, 0);
}

/*
 * inflate(state, input, output) -> [rc, consumed, produced, finished]: decodes from input into
 * output until the input is used up, the output is full or the member ends (finished = 1: its
 * trailer checked). rc < 0 is ISA-L's error (bad data, a wrong checksum).
 */
static napi_value inflate(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  void *in = NULL, *o = NULL;
  size_t in_len = 0, o_len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct inflate_state *s = argc < 3 ? NULL : state_arg(env, argv[0]);
  int32_t rc = ISAL_INVALID_OPERATION, consumed = 0, produced = 0, finished = 0;
  if (s && napi_get_buffer_info(env, argv[1], &in, &in_len) == 0 &&
      napi_get_buffer_info(env, argv[2], &o, &o_len) == 0 && in_len <= UINT32_MAX && o_len <= UINT32_MAX) {
    s->next_in = in;
    s->avail_in = (uint32_t)in_len;
    s->next_out = o;
    s->avail_out = (uint32_t)o_len;
    rc = isal_inflate(s);
    consumed = (int32_t)(in_len - s->avail_in);
    produced = (int32_t)(o_len - s->avail_out);
    finished = s->block_state == ISAL_BLOCK_FINISH;
    s->next_in = s->next_out = NULL; /* the Buffers may go: no pointer into them is kept */
  }
  napi_create_array_with_length(env, 4, &out);
  napi_set_element(env, out, 0, num(env, rc));
  napi_set_element(env, out, 1, num(env, consumed));
  napi_set_element(env, out, 2, num(env, produced));
  napi_set_element(env, out, 3, num(env, finished));
  return out;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"stateSize", state_size}, {"init", init}, {"inflate", inflate}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, strlen(fns[i].name), fns[i].cb, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
