/**
 * `vbuild push`: an image of the store to a registry. Layers are stored uncompressed; each is
 * compressed once (gzip by default, or zstd) while it is uploaded, and the
 * compressed digest is remembered per diff_id (blob-info.ts). So a second push finds every layer
 * by HEAD (or mounts it from another repository of the same registry) and compresses nothing.
 * A push whose manifest the registry already holds sends one HEAD (alreadyThere below).
 */
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import { writeLayer } from '@vlab/overlay';
import { MEDIA, type Descriptor, type Manifest } from '../image/types.ts';
import type { Store, StoredImage } from '../store/store.ts';
import { MAX_JSON_BYTES } from '../image/validate.ts';
import { sha256 } from '../store/blobs.ts';
import { BlobInfo, type CompressedBlob } from './blob-info.ts';
import {
  ChunkedUpload,
  DEFAULT_CHUNK,
  finishUpload,
  hasBlob,
  startUpload,
  uploadBytes,
  type Upload,
} from './blob-put.ts';
import { RegistryClient, pullScope, pushScope, type RegistryOptions } from './client.ts';
import { throttled, type LayerProgress, type TransferSink } from './events.ts';
import { discard, withRetry } from './http.ts';
import { INDEX_TYPES, MANIFEST_TYPES, putManifest } from './manifest.ts';
import { DEFAULT_PARALLEL, eachLimited } from './parallel.ts';
import { formatReference, parseReference, repoName, type Reference } from './reference.ts';
import { phases } from '../debug/phases.ts';

export type PushCompression = 'gzip' | 'zstd';

export interface PushOptions extends RegistryOptions {
  compression?: PushCompression;
  /** gzip 1-9, zstd 1-22 (podman's --compression-level); default GZIP_LEVEL for gzip, zstd's 3. */
  compressionLevel?: number;
  parallel?: number;
  /** Bytes per PATCH of a chunked upload (default 16 MiB; the registry's minimum wins). */
  chunkSize?: number;
  onProgress?: TransferSink;
  /**
   * HEAD every blob even when the registry already holds this very manifest (regctl's
   * `--force-recursive`): repairs a repository whose blobs were deleted under its manifests.
   */
  forceRecursive?: boolean;
}

export interface PushResult {
  ref: string;
  /** Digest of the manifest as the registry stores it. */
  digest: string;
  size: number;
  layers: { digest: string; status: 'done' | 'exists' | 'mounted' }[];
}

const COMPRESSED: Record<PushCompression, string> = { gzip: MEDIA.layerGzip, zstd: MEDIA.layerZstd };
const PLAIN = new Set<string>([MEDIA.layer, MEDIA.dockerLayer]);
/**
 * gzip level of a push unless told: zlib's fastest. Level 6 is 3–7× slower on compressible data
 * for blobs ~10 % smaller (bench/README.md); the push is what users wait for, and a layer is
 * compressed once.
 */
export const GZIP_LEVEL = 1;

/** The compression a push uses (gzip unless told; zstd through overlay's writeLayer, on any Node). */
export function pushCompression(c: string | undefined): PushCompression {
  if (c === undefined || c === 'gzip') return 'gzip';
  if (c === 'zstd') return 'zstd';
  throw new VlabError('E_BAD_ARG', `--compression "${c}": expected gzip or zstd`);
}

function checkLevel(c: PushCompression, level: number | undefined): void {
  const [lo, hi] = c === 'gzip' ? [0, 9] : [1, 22];
  if (level !== undefined && !(Number.isInteger(level) && level >= lo && level <= hi))
    throw new VlabError('E_BAD_ARG', `--compression-level ${level}: ${c} takes ${lo} to ${hi}`);
}

export async function pushImage(
  store: Store,
  img: StoredImage,
  dest: string,
  opts: PushOptions = {},
): Promise<PushResult> {
  const lap = phases('push');
  const compression = pushCompression(opts.compression);
  checkLevel(compression, opts.compressionLevel);
  const ref = parseReference(dest);
  const full = formatReference(ref);
  const info = new BlobInfo(store.root);
  // what we already know of each layer: candidate sources for a HEAD or a mount
  const known = await Promise.all(
    img.manifest.layers.map((l, i) =>
      PLAIN.has(l.mediaType) ? info.get(img.config.rootfs.diff_ids[i] ?? l.digest) : Promise.resolve([]),
    ),
  );
  const mountFrom = new Set<string>();
  for (const list of known)
    for (const b of list)
      for (const r of b.repos) if (r.startsWith(`${ref.domain}/`) && r !== repoName(ref)) mountFrom.add(r);
  const scope = [pushScope(ref.path), ...[...mountFrom].map((r) => pullScope(r.slice(ref.domain.length + 1)))];
  lap('known');
  const client = await RegistryClient.open(ref.domain, opts);
  const sink = throttled(opts.onProgress);
  try {
    const reportFor = (e: Omit<LayerProgress, 'type' | 'ref' | 'action' | 'time'>) =>
      sink({ ...e, type: 'layer-progress', ref: full, action: 'push', time: Date.now() });
    const exists = async (l: Descriptor, i: number, there: Descriptor) => {
      if (PLAIN.has(l.mediaType))
        await info.add(img.config.rootfs.diff_ids[i] ?? l.digest, there, repoName(ref), known[i]);
      return done(there, 'exists', reportFor);
    };
    const configBytes = await readSmall(store, img.configDigest);
    const expected = opts.forceRecursive ? undefined : expectedLayers(img, known, compression);
    let tagDigest: string | undefined;
    if (expected) {
      const bytes = manifestBytes(img, configBytes, expected);
      const at = await alreadyThere(client, ref, bytes, scope, opts);
      lap('manifest-head');
      if (at.there) {
        const layers = await Promise.all(img.manifest.layers.map((l, i) => exists(l, i, expected[i]!)));
        lap('layers');
        const statuses = layers.map((l) => ({ digest: l.desc.digest, status: l.status }));
        return { ref: full, digest: sha256(bytes), size: bytes.length, layers: statuses };
      }
      tagDigest = at.tagDigest;
    }
    // A push that only verifies is one HEAD per layer and one for the config and the tag: those go
    // many at once, before any upload (200 layers 3 at a time took 0.5 s of round trips).
    const [present, configThere, tagNow] = await Promise.all([
      eachLimited(img.manifest.layers, HEAD_PARALLEL, (l, i) =>
        presentLayer(client, ref, l, known[i]!, compression, scope),
      ),
      hasBlob(client, ref.path, img.configDigest, scope),
      ref.digest || expected ? tagDigest : manifestDigestAt(client, ref, ref.tag ?? 'latest', scope),
    ]);
    tagDigest = tagNow;
    lap('heads');
    const layers = await eachLimited(img.manifest.layers, opts.parallel ?? DEFAULT_PARALLEL, async (l, i) => {
      const there = present[i];
      if (there) return exists(l, i, there);
      return pushLayer(
        store,
        client,
        ref,
        l,
        img.config.rootfs.diff_ids[i] ?? l.digest,
        known[i]!,
        compression,
        scope,
        opts,
        reportFor,
      );
    });
    lap('layers');
    if (!configThere) await uploadBytes(client, ref.path, img.configDigest, configBytes, scope);
    lap('config');
    const bytes = manifestBytes(
      img,
      configBytes,
      layers.map((l) => l.desc),
    );
    const digest = sha256(bytes);
    // the tag names this very manifest already (the registry checked its blobs when it took it)
    if (tagDigest !== digest) await putManifest(client, ref, bytes, scope, `manifest ${full}`, opts);
    lap('manifest');
    if (ref.digest && ref.digest !== digest)
      throw new VlabError('E_BAD_REF', `${full}: the image's manifest digest is ${digest}, not the one named`);
    return {
      ref: full,
      digest,
      size: bytes.length,
      layers: layers.map((l) => ({ digest: l.desc.digest, status: l.status })),
    };
  } finally {
    client.close();
  }
}

type Status = 'done' | 'exists' | 'mounted';
type Report = (e: Pick<LayerProgress, 'digest' | 'status' | 'bytes' | 'total'>) => void;

export async function pushLayer(
  store: Store,
  client: RegistryClient,
  ref: Reference,
  local: Descriptor,
  diffId: string,
  known: CompressedBlob[],
  compression: PushCompression,
  scope: string[],
  opts: PushOptions,
  report: Report,
): Promise<{ desc: Descriptor; status: Status }> {
  const info = new BlobInfo(store.root);
  const repo = repoName(ref);
  const remember = (desc: Descriptor) =>
    info.add(diffId, { digest: desc.digest, mediaType: desc.mediaType, size: desc.size }, repo);
  // a layer kept compressed in the store (a loaded archive) goes as it is
  if (!PLAIN.has(local.mediaType)) {
    const desc = { mediaType: local.mediaType, digest: local.digest, size: local.size };
    if (await hasBlob(client, ref.path, desc.digest, scope)) return done(desc, 'exists', report);
    await withRetry(
      async () => {
        const sender = new ChunkedUpload(
          client,
          (await startUpload(client, ref.path, scope)) as Upload,
          scope,
          opts.chunkSize ?? DEFAULT_CHUNK,
          (n) => report({ digest: desc.digest, status: 'uploading', bytes: n, total: desc.size }),
        );
        await pipeline(store.blobs.open(desc.digest), sender);
        await finishUpload(client, sender.upload, desc.digest, scope);
      },
      { retries: opts.retries, signal: opts.signal },
    );
    return done(desc, 'done', report);
  }
  let upload: Upload | undefined;
  for (const b of newestFirst(known, compression)) {
    const desc = { mediaType: b.mediaType, digest: b.digest, size: b.size };
    if (await hasBlob(client, ref.path, b.digest, scope)) {
      await remember(desc);
      return done(desc, 'exists', report);
    }
    const from = [...b.repos].reverse().find((r) => r.startsWith(`${ref.domain}/`) && r !== repo);
    if (!from) continue;
    const r = await startUpload(client, ref.path, scope, { digest: b.digest, from: from.slice(ref.domain.length + 1) });
    if (r === 'mounted') {
      await remember(desc);
      return done(desc, 'mounted', report);
    }
    upload = r; // the registry could not mount: it opened an upload instead, used below
  }
  const desc = await withRetry(
    async (attempt) => {
      const up = attempt || !upload ? ((await startUpload(client, ref.path, scope)) as Upload) : upload;
      const sender = new ChunkedUpload(client, up, scope, opts.chunkSize ?? DEFAULT_CHUNK, (n) =>
        report({ digest: local.digest, status: 'uploading', bytes: n, total: local.size }),
      );
      const level = opts.compressionLevel ?? (compression === 'gzip' ? GZIP_LEVEL : undefined);
      const w = await writeLayer(readLayer(store, local.digest), sender, { compression, level });
      if (w.diffId !== diffId)
        throw new VlabError(
          'E_DIGEST_MISMATCH',
          `layer ${local.digest} in the store has content ${w.diffId}: run vbuild fsck`,
        );
      await finishUpload(client, sender.upload, w.digest, scope);
      return { mediaType: COMPRESSED[compression], digest: w.digest, size: w.compressedSize };
    },
    { retries: opts.retries, signal: opts.signal },
  );
  await remember(desc);
  return done(desc, 'done', report);
}

/** How many HEADs a push sends at once to find the layers the registry already has. */
const HEAD_PARALLEL = 16; // the HostConnection agents keep at most 16 sockets

/** The descriptor this layer would be pushed as, when it is known and the registry has it. */
async function presentLayer(
  client: RegistryClient,
  ref: Reference,
  local: Descriptor,
  known: CompressedBlob[],
  compression: PushCompression,
  scope: string[],
): Promise<Descriptor | undefined> {
  for (const c of PLAIN.has(local.mediaType) ? newestFirst(known, compression) : [local]) {
    const desc = { mediaType: c.mediaType, digest: c.digest, size: c.size };
    if (await hasBlob(client, ref.path, desc.digest, scope)) return desc;
  }
  return undefined;
}

/**
 * The known compressed forms of a layer in `compression`, the latest remembered first: what this
 * install makes now (an older one, another engine's bytes, is tried after it).
 */
const newestFirst = (known: CompressedBlob[], compression: PushCompression) =>
  known.filter((k) => k.mediaType === COMPRESSED[compression]).reverse();

/**
 * The layers of the manifest this push would PUT, when each one's compressed form is known (the
 * newest remembered one, as pushLayer tries first); undefined when a layer was never compressed.
 */
function expectedLayers(
  img: StoredImage,
  known: CompressedBlob[][],
  compression: PushCompression,
): Descriptor[] | undefined {
  const out: Descriptor[] = [];
  for (const [i, l] of img.manifest.layers.entries()) {
    const b = PLAIN.has(l.mediaType) ? newestFirst(known[i]!, compression)[0] : l;
    if (!b) return undefined;
    out.push({ mediaType: b.mediaType, digest: b.digest, size: b.size });
  }
  return out;
}

/** The manifest a push PUTs: the image's config and these layer descriptors. */
function manifestBytes(img: StoredImage, config: Buffer, layers: Descriptor[]): Buffer {
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: img.manifest.config.mediaType || MEDIA.config, digest: img.configDigest, size: config.length },
    layers,
    ...(img.manifest.annotations ? { annotations: img.manifest.annotations } : {}),
  };
  return Buffer.from(JSON.stringify(manifest));
}

/**
 * Whether the repository already holds this very manifest under `ref` (one HEAD), or holds it by
 * digest under another tag or none (a second HEAD, then the tag is PUT). Then its blobs are not
 * HEADed one by one: a registry that took a manifest had its blobs (docker-registry Stats every
 * one in the repository at the PUT, and does again for the new tag), and a blob cannot change
 * under its digest. This is go-containerregistry's `manifestExists` (crane, ko: always) and
 * c/image's OptimizeDestinationImageAlreadyExists (skopeo sync). What it trusts: the spec lets a
 * registry accept a manifest whose blobs it lacks (MAY reject), and a blob deleted under a
 * manifest leaves the image unresolvable; neither is a push's to detect on every run, so
 * `forceRecursive` (regctl's `--force-recursive`) HEADs each blob and uploads what is missing.
 * Anything else (another digest, 404, an error) goes the full way; `tagDigest` saves its HEAD.
 */
async function alreadyThere(
  client: RegistryClient,
  ref: Reference,
  bytes: Buffer,
  scope: string[],
  opts: PushOptions,
): Promise<{ there: boolean; tagDigest?: string }> {
  const digest = sha256(bytes);
  const tagDigest = await manifestDigestAt(client, ref, ref.digest ?? ref.tag ?? 'latest', scope);
  if (tagDigest === digest) return { there: true };
  if (ref.digest || (await manifestDigestAt(client, ref, digest, scope)) !== digest) return { there: false, tagDigest };
  try {
    await putManifest(client, ref, bytes, scope, `manifest ${formatReference(ref)}`, opts);
    return { there: true };
  } catch (e) {
    // the registry now finds a blob missing (MANIFEST_BLOB_UNKNOWN, a 400): upload it the full way
    const status = (e as VlabError).details?.status;
    if (e instanceof VlabError && (status === 400 || status === 404)) return { there: false, tagDigest };
    throw e;
  }
}

/** The digest of the manifest `reference` (a tag or digest) names in `ref`'s repository; undefined when none (or unknown). */
async function manifestDigestAt(
  client: RegistryClient,
  ref: Reference,
  reference: string,
  scope: string[],
): Promise<string | undefined> {
  const res = await client
    .fetch({
      method: 'HEAD',
      url: `/v2/${ref.path}/manifests/${reference}`,
      headers: { accept: [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ') },
      scope,
    })
    .catch(() => undefined); // only spares a PUT: the PUT tells what is wrong
  if (!res) return undefined;
  discard(res);
  const said = res.headers['docker-content-digest'];
  return res.status === 200 && typeof said === 'string' ? said : undefined;
}

function done(desc: Descriptor, status: Status, report: Report): { desc: Descriptor; status: Status } {
  report({ digest: desc.digest, status, bytes: desc.size, total: desc.size });
  return { desc, status };
}

/** Reads in 1 MiB: pgzip's segment, 16× fewer reads and buffers than the 64 KiB default. */
const readLayer = (store: Store, digest: string) =>
  fs.createReadStream(store.blobs.path(digest), { highWaterMark: 1 << 20 });

/** A config from the store, in memory (bounded as any JSON document). */
async function readSmall(store: Store, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of store.blobs.open(digest) as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_JSON_BYTES) throw new VlabError('E_BAD_MANIFEST', `config ${digest} is over the 4 MiB limit`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
