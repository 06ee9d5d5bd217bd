/*
 * vlab-isal.node's deflate (see vlab-isal.c): raw deflate of one segment with ISA-L, for the
 * parallel gzip of src/layer/pgzip.ts. igzip's levels 1-3 are ~10x faster than zlib's level 1 for
 * about the same size, and, unlike whole-buffer libraries, it takes a preset dictionary and ends a
 * segment with a sync flush, so the segments still join into ONE gzip member (pigz's scheme).
 *
 * deflate(input, dictionary | null, output, level) -> Promise<number>: resolves with the bytes
 * written to `output`, or -1 when it did not fit / igzip failed (the caller then uses zlib). The
 * buffers are referenced until then.
 */
#include <isa-l/igzip_lib.h>
#include <stdlib.h>

#include "vlab-isal.h"
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

napi_value vlab_deflate(napi_env env, napi_callback_info info) {
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

