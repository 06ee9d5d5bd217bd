/**
 * Blobs from a registry. Bytes are hashed as they arrive and nothing is named before the digest
 * (and, for a layer, the diff_id of the decompressed tar) checks out: a layer streams into a temp
 * blob of the store, which is committed only then (BlobStore.create). A broken connection resumes
 * with a Range request where the registry allows it; a retry starts the blob over.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { VlabError } from '@vlab/errors';
import { MEDIA, type Descriptor } from '../image/types.ts';
import { MAX_JSON_BYTES } from '../image/validate.ts';
import { writableBytes } from '../store/space.ts';
import type { CommitBatch } from '../store/batch.ts';
import type { Blobs } from '../store/types.ts';
import { discard, isRetryable, readBody, withRetry, type HttpResponse } from './http.ts';
import { registryError, type RegistryClient } from './client.ts';
import type { InflateFailure, InflatePool } from './inflate-pool.ts';
import { rawGet, type BodySink } from './raw-get.ts';
import { zstdDecompressStream } from './zstd-decode.ts';

const MAX_REDIRECTS = 5;

/** GET a blob from `offset` on, following redirects (a blob store elsewhere gets no registry credentials). */
async function blobResponse(
  client: RegistryClient,
  repo: string,
  digest: string,
  offset: number,
  scope: string[],
): Promise<HttpResponse> {
  const headers: Record<string, string> = offset ? { range: `bytes=${offset}-` } : {};
  let res = await client.fetch({ method: 'GET', url: `/v2/${repo}/blobs/${digest}`, headers, scope });
  for (let i = 0; res.status >= 300 && res.status < 400 && res.headers.location; i++) {
    if (i >= MAX_REDIRECTS) throw new VlabError('E_REGISTRY', `blob ${digest}: more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(res.headers.location, res.url);
    discard(res);
    if (next.protocol !== 'https:' && next.protocol !== 'http:')
      throw new VlabError('E_REGISTRY', `blob ${digest}: redirect to ${next.protocol} refused`);
    res = await client.fetch({ method: 'GET', url: next.href, headers, scope });
  }
  if (res.status !== 200 && res.status !== 206) throw await registryError(res, `blob ${digest} of ${repo}`);
  return res;
}

/**
 * The blob's bytes, resuming after a broken connection (Range) up to `retries` times. With `sink`,
 * each try first reads the body straight into it (raw-get.ts) and yields nothing; an answer that
 * reader leaves (a redirect, 401, an error, chunked) is asked again through the client and yielded.
 */
async function* blobBytes(
  client: RegistryClient,
  repo: string,
  desc: Descriptor,
  scope: string[],
  onBytes: (n: number) => void,
  sink?: BodySink,
): AsyncGenerator<Buffer> {
  let offset = 0;
  let resumes = 0;
  const retries = client.opts.retries ?? 3;
  for (;;) {
    let broke: unknown;
    const target = sink && (await client.rawTarget(`/v2/${repo}/blobs/${desc.digest}`, scope));
    let handled = false;
    if (target)
      try {
        handled = (await rawGet(target, offset, desc.size, sink!, (n) => onBytes((offset += n)))).handled;
      } catch (e) {
        if (!isRetryable(e)) throw e;
        [broke, handled] = [e, true];
      }
    if (!handled) {
      const res = await blobResponse(client, repo, desc.digest, offset, scope);
      if (offset > 0 && res.status !== 206) {
        discard(res);
        throw new VlabError('E_REGISTRY', `blob ${desc.digest}: the registry cannot resume (no Range support)`, {
          details: { retryable: true },
        });
      }
      try {
        for await (const c of res.body as AsyncIterable<Buffer>) {
          offset += c.length;
          if (offset > desc.size)
            throw new VlabError(
              'E_DIGEST_MISMATCH',
              `blob ${desc.digest}: the registry sent more than its ${desc.size} bytes: refused`,
            );
          onBytes(offset);
          yield c;
        }
      } catch (e) {
        if (!isRetryable(e)) throw e;
        broke = e;
      }
    }
    if (!broke && offset === desc.size) return;
    if (resumes++ >= retries)
      throw new VlabError(
        'E_REGISTRY',
        `blob ${desc.digest}: the transfer ${broke ? `broke (${(broke as Error).message})` : 'ended early'} at byte ${offset} of ${desc.size}, ${retries + 1} times: is the registry or the network failing?`,
        { cause: broke },
      );
    client.opts.signal?.throwIfAborted();
    await sleep(100 * 2 ** (resumes - 1), undefined, { signal: client.opts.signal });
  }
}

/** A small blob (a config) in memory, digest-checked. */
export async function fetchSmallBlob(
  client: RegistryClient,
  repo: string,
  desc: Descriptor,
  scope: string[],
): Promise<Buffer> {
  if (desc.size > MAX_JSON_BYTES)
    throw new VlabError('E_BAD_MANIFEST', `config ${desc.digest} is ${desc.size} bytes, over the 4 MiB limit`);
  const bytes = await withRetry(
    async () =>
      readBody(await blobResponse(client, repo, desc.digest, 0, scope), MAX_JSON_BYTES, `blob ${desc.digest}`),
    { retries: client.opts.retries, signal: client.opts.signal },
  );
  checkDigest(createHash('sha256').update(bytes).digest('hex'), bytes.length, desc);
  return bytes;
}

function checkDigest(hex: string, size: number, desc: Descriptor): void {
  if (`sha256:${hex}` !== desc.digest || size !== desc.size)
    throw new VlabError(
      'E_DIGEST_MISMATCH',
      `blob ${desc.digest}: the registry sent ${size} bytes with digest sha256:${hex}: refused (corrupt or tampered with)`,
    );
}

/**
 * gunzip in 256 KiB outputs (zlib's 16 KiB default makes a callback, a hash update and a file
 * write per 16 KiB: the pull took 2× as long), taking up to 4 MiB of input while it works, so the
 * socket keeps being read.
 */
const BIG_BUFFERS = { chunkSize: 256 << 10, writableHighWaterMark: 4 << 20, readableHighWaterMark: 1 << 20 };

type Compression = 'none' | 'gzip' | 'zstd';

/** A layer's compression by its media type; E_UNSUPPORTED for a type that is not a layer. */
function compressionOf(mediaType: string): Compression {
  if (mediaType === MEDIA.layer || mediaType === MEDIA.dockerLayer) return 'none';
  if (mediaType === MEDIA.layerGzip || mediaType === MEDIA.dockerLayerGzip) return 'gzip';
  if (mediaType === MEDIA.layerZstd) return 'zstd';
  throw new VlabError('E_UNSUPPORTED', `layer media type "${mediaType}" is not a tar, tar+gzip or tar+zstd layer`);
}

function decompressor(mediaType: string): Transform {
  const c = compressionOf(mediaType);
  return c === 'none' ? new PassThrough() : c === 'gzip' ? zlib.createGunzip(BIG_BUFFERS) : zstdDecompressStream();
}

const isGzip = (mediaType: string) => compressionOf(mediaType) === 'gzip';
/** gzip layers from this size on go to a worker (inflate-pool.ts); below it a worker's start costs more than it saves. */
const OFF_THREAD_BYTES = 1 << 20;

function invalidLayer(desc: Descriptor, why: string, cause?: unknown): VlabError {
  return new VlabError('E_LAYER_INVALID', `layer ${desc.digest} does not decompress as ${desc.mediaType} (${why})`, {
    cause,
  });
}

function tooLarge(desc: Descriptor, limit: number): VlabError {
  return new VlabError(
    'E_LAYER_TOO_LARGE',
    `layer ${desc.digest} decompresses to more than ${limit} bytes, more than the store may take (its free space, or VLAB_PULL_MAX_BYTES): refused (a gzip bomb?); free space on the store's filesystem or raise VLAB_PULL_MAX_BYTES`,
  );
}

/**
 * The most one layer may decompress to: the store's writable space (space.ts), and at most
 * VLAB_PULL_MAX_BYTES when set. A gzip bomb (a few MB that inflate to terabytes) is refused with
 * E_LAYER_TOO_LARGE there, before it fills the disk; the store keeps only what it had.
 */
export async function layerLimit(root: string): Promise<number> {
  const env = process.env.VLAB_PULL_MAX_BYTES;
  const max = env === undefined || env === '' ? Infinity : Number(env);
  if (!(max > 0))
    throw new VlabError(
      'E_BAD_ARG',
      `VLAB_PULL_MAX_BYTES=${env}: not a positive number of bytes (unset it for no limit)`,
    );
  return Math.min(max, await writableBytes(root));
}

const failure = (desc: Descriptor, limit: number, f: InflateFailure) =>
  f.kind === 'big' ? tooLarge(desc, limit) : invalidLayer(desc, f.message);

/** Passes the tar through, failing with E_LAYER_TOO_LARGE past `limit` bytes. */
function bounded(desc: Descriptor, limit: number): Transform {
  let n = 0;
  return new Transform({
    transform(c: Buffer, _enc, cb) {
      n += c.length;
      cb(n > limit ? tooLarge(desc, limit) : null, c);
    },
  });
}

export interface LayerOptions {
  /** The most bytes the tar may have (layerLimit). */
  limit: number;
  /** Big gzip layers are gunzipped, hashed and written by its workers. */
  pool?: InflatePool;
  /** The blob is named at the batch's flush (one syncfs for many layers), not at once. */
  batch?: CommitBatch;
}

/**
 * Fetch one layer into the store uncompressed: the compressed bytes must hash to `desc.digest`,
 * the tar to `diffId`, and the tar may be at most `limit` bytes (pull.ts: layerLimit); the blob is
 * named (as `diffId`) only then, or at `batch.flush()`. Retried from the start on transport
 * failures. Returns the stored (uncompressed) size.
 */
export async function pullLayer(
  blobs: Blobs,
  client: RegistryClient,
  repo: string,
  desc: Descriptor,
  diffId: string,
  scope: string[],
  onBytes: (n: number) => void,
  { limit, pool, batch }: LayerOptions,
): Promise<number> {
  const compression = compressionOf(desc.mediaType); // an unknown type fails before any transfer
  return withRetry(
    async () => {
      if (pool && isGzip(desc.mediaType) && desc.size >= OFF_THREAD_BYTES)
        return pullOffThread(blobs, pool, client, repo, desc, diffId, scope, onBytes, limit, batch);
      if (desc.size < IN_MEMORY_BYTES && compression !== 'zstd') {
        const gz = await blobInMemory(client, repo, desc, scope, onBytes);
        const stored = await storeInMemory(blobs, gz, desc, diffId, limit, batch);
        if (stored !== undefined) return stored;
        // a tar too big to inflate in memory: the streaming path below, from these verified bytes
        return pullStreaming(blobs, [gz], desc, diffId, limit, batch);
      }
      return pullStreaming(blobs, blobBytes(client, repo, desc, scope, onBytes), desc, diffId, limit, batch);
    },
    { retries: client.opts.retries, signal: client.opts.signal },
  );
}

/**
 * Layers (gzip or tar) under this many compressed bytes are read into memory, checked, inflated
 * and written on the main thread in one go: a 30 KB layer through streams was ~25 thread-pool
 * round trips (open, writes, close, a stream per stage), most of a small layer's cost.
 */
const IN_MEMORY_BYTES = 256 << 10;
/** The most such a layer inflates to in memory (~10 ms of the main thread); a bigger tar streams. */
const IN_MEMORY_TAR = 8 << 20;

/** The whole blob, its digest checked before anything reads it. */
async function blobInMemory(
  client: RegistryClient,
  repo: string,
  desc: Descriptor,
  scope: string[],
  onBytes: (n: number) => void,
): Promise<Buffer> {
  const gz = Buffer.allocUnsafe(desc.size);
  let n = 0;
  // blobBytes refuses more than desc.size bytes and resumes at the offset it reached
  for await (const c of blobBytes(client, repo, desc, scope, onBytes)) n += c.copy(gz, n);
  checkDigest(createHash('sha256').update(gz).digest('hex'), n, desc);
  return gz;
}

/**
 * `gz` (verified) inflated into a temp blob with synchronous writes, named as `diffId` (or at the
 * batch's flush) if the tar hashes to it; undefined when the tar would be over IN_MEMORY_TAR (and
 * under `limit`): the caller streams it instead.
 */
async function storeInMemory(
  blobs: Blobs,
  gz: Buffer,
  desc: Descriptor,
  diffId: string,
  limit: number,
  batch?: CommitBatch,
): Promise<number | undefined> {
  let tar = gz;
  if (isGzip(desc.mediaType)) {
    const max = Math.min(limit, IN_MEMORY_TAR);
    try {
      tar = zlib.gunzipSync(gz, { maxOutputLength: max });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE')
        throw invalidLayer(desc, (e as Error).message, e);
      if (max === limit) throw tooLarge(desc, limit);
      return undefined;
    }
  } else if (tar.length > limit) throw tooLarge(desc, limit);
  const blob = await blobs.createSync();
  try {
    blob.write(tar);
  } catch (e) {
    await blob.abort();
    throw e;
  }
  return (await blob.commit(diffId, batch)).size;
}

/** The streaming path: `source` (the blob's bytes) through the decompressor into a temp blob, both digests checked. */
async function pullStreaming(
  blobs: Blobs,
  source: AsyncIterable<Buffer> | Iterable<Buffer>,
  desc: Descriptor,
  diffId: string,
  limit: number,
  batch?: CommitBatch,
): Promise<number> {
  const blob = await blobs.create();
  const dec = decompressor(desc.mediaType);
  let failed: unknown;
  const written = pipeline(dec, bounded(desc, limit), blob.stream).catch((e: unknown) => void (failed ??= e));
  const hash = createHash('sha256');
  let n = 0;
  try {
    for await (const c of source) {
      hash.update(c);
      n += c.length;
      // after a decompression error the bytes are still hashed: a wrong digest is the better report
      if (failed) continue;
      if (!dec.write(c)) await Promise.race([once(dec, 'drain').catch(() => undefined), written]);
    }
    if (!failed) dec.end();
    await written;
    checkDigest(hash.digest('hex'), n, desc);
    // E_LAYER_TOO_LARGE, or the blob's write stream: E_NO_SPACE / E_STORE (a full disk is not a bad layer)
    if (failed instanceof VlabError) throw failed;
    if (failed) throw invalidLayer(desc, (failed as Error).message, failed);
  } catch (e) {
    dec.destroy();
    await blob.abort();
    throw e;
  }
  return (await blob.commit(diffId, batch)).size;
}

/** pullLayer's work for one gzip layer, done by a worker of `pool`: the same checks, in the same order. */
async function pullOffThread(
  blobs: Blobs,
  pool: InflatePool,
  client: RegistryClient,
  repo: string,
  desc: Descriptor,
  diffId: string,
  scope: string[],
  onBytes: (n: number) => void,
  limit: number,
  batch?: CommitBatch,
): Promise<number> {
  const blob = await blobs.createFile();
  const job = pool.start(blob.path, limit);
  let tar: string;
  try {
    for await (const c of blobBytes(client, repo, desc, scope, onBytes, job)) await job.write(c);
    const r = await job.end();
    checkDigest(r.digest, r.n, desc);
    if (r.bad) throw failure(desc, limit, r.bad);
    tar = `sha256:${r.tar}`;
  } catch (e) {
    await job.abort();
    throw await blob.abort(e);
  }
  return (await blob.commit(tar, diffId, batch)).size;
}
