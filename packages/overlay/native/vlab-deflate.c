/*
 * vlab-deflate.node: raw deflate of one segment with ISA-L (igzip), for the parallel gzip of
 * src/layer/pgzip.ts. igzip's levels 1-3 are ~10x faster than zlib's level 1 for about the same
 * size, and, unlike whole-buffer libraries, it takes a preset dictionary and ends a segment with
 * a sync flush, so the segments still join into ONE gzip member (pigz's scheme).
 *
 * deflate(input, dictionary | null, output, level) -> Promise<number>: runs on libuv's thread
 * pool (Node-API async work) and resolves with the bytes written to `output`, or -1 when it did
 * not fit / igzip failed (the caller then uses zlib). The buffers are referenced until then.
 *
 * A Node-API addon without node_api.h (as native/vlab-fdpass.c in @vlab/image): the functions it
 * calls are declared below (the Node-API ABI is stable across Node versions).
 */
#include <isa-l/igzip_lib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef struct napi_async_work__ *napi_async_work;
typedef struct napi_deferred__ *napi_deferred;
typedef struct napi_ref__ *napi_ref;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
typedef void (*napi_async_execute_callback)(napi_env, void *);
typedef void (*napi_async_complete_callback)(napi_env, napi_status, void *);
napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
napi_status napi_get_value_int32(napi_env, napi_value, int32_t *);
napi_status napi_create_int32(napi_env, int32_t, napi_value *);
napi_status napi_get_buffer_info(napi_env, napi_value, void **, size_t *);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);
napi_status napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
napi_status napi_create_promise(napi_env, napi_deferred *, napi_value *);
napi_status napi_resolve_deferred(napi_env, napi_deferred, napi_value);
napi_status napi_create_reference(napi_env, napi_value, uint32_t, napi_ref *);
napi_status napi_delete_reference(napi_env, napi_ref);
napi_status napi_create_async_work(napi_env, napi_value, napi_value, napi_async_execute_callback,
                                   napi_async_complete_callback, void *, napi_async_work *);
napi_status napi_queue_async_work(napi_env, napi_async_work);
napi_status napi_delete_async_work(napi_env, napi_async_work);

#define MAX_DICT (32 << 10)

struct job {
  uint8_t *in, *dict, *out;
  size_t in_len, dict_len, out_len;
  int level;
  int32_t result;
  napi_ref refs[3];
  int nrefs;
  napi_deferred deferred;
  napi_async_work work;
};

static const uint32_t level_buf_size[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
                                          ISAL_DEF_LVL3_DEFAULT};

/* Each pool thread keeps one level buffer per level (a few hundred KiB): allocated once. */
static __thread uint8_t *level_buf[4];

static void run(napi_env env, void *data) {
  (void)env;
  struct job *j = data;
  j->result = -1;
  if (!level_buf[j->level] && !(level_buf[j->level] = malloc(level_buf_size[j->level]))) return;
  struct isal_zstream s;
  isal_deflate_init(&s);
  s.level = (uint32_t)j->level;
  s.level_buf = level_buf[j->level];
  s.level_buf_size = level_buf_size[j->level];
  s.flush = SYNC_FLUSH; /* byte-aligned, not final: the next segment's deflate follows */
  s.end_of_stream = 0;
  s.gzip_flag = IGZIP_DEFLATE;
  if (j->dict_len && isal_deflate_set_dict(&s, j->dict, (uint32_t)j->dict_len) != COMP_OK) return;
  s.next_in = j->in;
  s.avail_in = (uint32_t)j->in_len;
  s.next_out = j->out;
  s.avail_out = (uint32_t)j->out_len;
  /* all input taken and room left: the flush is complete (a full output may hold back bytes) */
  if (isal_deflate(&s) != COMP_OK || s.avail_in != 0 || s.avail_out == 0) return;
  j->result = (int32_t)(j->out_len - s.avail_out);
}

static void done(napi_env env, napi_status status, void *data) {
  struct job *j = data;
  napi_value v;
  napi_create_int32(env, status == 0 ? j->result : -1, &v);
  napi_resolve_deferred(env, j->deferred, v);
  for (int i = 0; i < j->nrefs; i++) napi_delete_reference(env, j->refs[i]);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value deflate_segment(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_value promise;
  struct job *j = calloc(1, sizeof *j);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_create_promise(env, &j->deferred, &promise);
  void *p;
  size_t n;
  int32_t level = -1;
  int ok = argc == 4 && napi_get_buffer_info(env, argv[0], &p, &n) == 0 && n <= UINT32_MAX;
  if (ok) j->in = p, j->in_len = n;
  if (ok && napi_get_buffer_info(env, argv[1], &p, &n) == 0) j->dict = p, j->dict_len = n < MAX_DICT ? n : MAX_DICT;
  if (j->dict_len && j->dict_len < n) j->dict += n - j->dict_len; /* the last 32 KiB */
  ok = ok && napi_get_buffer_info(env, argv[2], &p, &n) == 0 && n <= UINT32_MAX;
  if (ok) j->out = p, j->out_len = n;
  ok = ok && napi_get_value_int32(env, argv[3], &level) == 0 && level >= 0 && level <= ISAL_DEF_MAX_LEVEL;
  j->level = level;
  j->result = -1;
  napi_value name;
  napi_create_string_utf8(env, "vlab-deflate", 12, &name);
  if (!ok || napi_create_async_work(env, NULL, name, run, done, j, &j->work) != 0) {
    napi_value v;
    napi_create_int32(env, -1, &v);
    napi_resolve_deferred(env, j->deferred, v);
    free(j);
    return promise;
  }
  for (int i = 0; i < 3; i++)
    if (napi_create_reference(env, argv[i], 1, &j->refs[j->nrefs]) == 0) j->nrefs++;
  napi_queue_async_work(env, j->work);
  return promise;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "deflate", 7, deflate_segment, NULL, &f);
  napi_set_named_property(env, exports, "deflate", f);
  return exports;
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }
