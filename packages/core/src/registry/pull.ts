/**
 * `vbuild pull`: an image from a registry into the store. The manifest (an index picks the
 * platform), the config and every layer are checked before the image gets its name; layers are
 * kept uncompressed (blob digest = diff_id) and the compressed digest each came as is remembered
 * (blob-info.ts). The image is named in docker's familiar form (`busybox:latest`,
 * `127.0.0.1:5000/app:v1`; by digest: `name@sha256:…`).
 */
import { VlabError } from '@vlab/errors';
import { MEDIA, type Descriptor, type ImageConfig } from '../image/types.ts';
import { parseDocument, requireSha256 } from '../image/validate.ts';
import type { Store, StoredImage } from '../store/store.ts';
import { CommitBatch } from '../store/batch.ts';
import { phases } from '../debug/phases.ts';
import { BlobInfo } from './blob-info.ts';
import { fetchSmallBlob, layerLimit, pullLayer } from './blob-get.ts';
import { RegistryClient, pullScope, type RegistryOptions } from './client.ts';
import { throttled, type TransferSink } from './events.ts';
import { inflatePool } from './inflate-pool.ts';
import { fetchManifest } from './manifest.ts';
import { DEFAULT_PARALLEL, allSettled, eachLimited } from './parallel.ts';
import { parsePlatform, pickPlatform } from './platform.ts';
import { familiarName, formatReference, parseReference, repoName } from './reference.ts';

export interface PullOptions extends RegistryOptions {
  /** `os/arch[/variant]` to pick from an index (default: the host's). */
  platform?: string;
  /** Layers fetched at once (default 3). */
  parallel?: number;
  onProgress?: TransferSink;
}

export interface PullResult extends StoredImage {
  /** The local name it was given. */
  ref: string;
  /** The registry's manifest digest (docker's RepoDigest), of the platform's manifest. */
  remoteDigest: string;
  /** The digest the reference resolved to (the index's, for a multi-platform image). */
  resolvedDigest: string;
  /** Bytes fetched for layers (0 when every layer was in the store). */
  bytesFetched: number;
}

const CONFIG_TYPES: string[] = [MEDIA.config, MEDIA.dockerConfig];
/** From this many layers on, they are named together after one syncfs (store/batch.ts), not fsynced one by one. */
const BATCH_FROM = 8;
/** An image whose layers are all under this size fetches this many at once: each is mostly a round trip. */
const SMALL_LAYER = 1 << 20;
const SMALL_PARALLEL = 8;

export async function pullImage(store: Store, reference: string, opts: PullOptions = {}): Promise<PullResult> {
  const lap = phases('pull');
  const ref = parseReference(reference);
  const want = parsePlatform(opts.platform);
  const full = formatReference(ref);
  const client = await RegistryClient.open(ref.domain, opts);
  const scope = [pullScope(ref.path)];
  const sink = throttled(opts.onProgress);
  const pool = inflatePool();
  lap('open');
  try {
    let top = await fetchManifest(client, ref.path, ref.digest ?? ref.tag!, scope);
    const resolvedDigest = top.digest;
    if (top.kind === 'index') {
      const d = pickPlatform(top.index.manifests, want, full);
      top = await fetchManifest(client, ref.path, requireSha256(d.digest, `${full}: index entry`), scope);
      if (top.kind !== 'manifest') throw new VlabError('E_BAD_MANIFEST', `${full}: an index inside an index`);
    }
    const manifest = top.manifest;
    if (!CONFIG_TYPES.includes(manifest.config.mediaType))
      throw new VlabError(
        'E_UNSUPPORTED',
        `${full}: config media type "${manifest.config.mediaType}" is not an image config (an artifact?)`,
      );
    requireSha256(manifest.config.digest, `${full}: config`);
    const configBytes = await fetchSmallBlob(client, ref.path, manifest.config, scope);
    const config: ImageConfig = await parseDocument(
      'config',
      configBytes,
      `${full}: config ${manifest.config.digest.slice(0, 19)}`,
      'E_BAD_MANIFEST',
    );
    lap('manifest+config');
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length)
      throw new VlabError(
        'E_BAD_MANIFEST',
        `${full}: the manifest has ${manifest.layers.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`,
      );
    const info = new BlobInfo(store.root);
    const limit = await layerLimit(store.root);
    const batch = manifest.layers.length >= BATCH_FROM ? new CommitBatch(store.root) : undefined;
    const repo = repoName(ref);
    let bytesFetched = 0;
    const came: Promise<void>[] = [];
    // every layer's name held at once (one append to the lease, lease.ts: a name may be held
    // before its blob exists), not once per layer as each is sealed
    await store.lease.hold({ blobs: diffIds.map((d, i) => requireSha256(d, `${full}: rootfs.diff_ids[${i}]`)) });
    const small = manifest.layers.every((l) => l.size < SMALL_LAYER);
    const parallel = opts.parallel ?? (small ? SMALL_PARALLEL : DEFAULT_PARALLEL);
    let layers: Descriptor[];
    try {
      layers = await eachLimited(manifest.layers, parallel, async (l, i) => {
        const digest = requireSha256(l.digest, `${full}: layers[${i}]`);
        const diffId = requireSha256(diffIds[i]!, `${full}: rootfs.diff_ids[${i}]`);
        const event = (status: 'downloading' | 'done' | 'exists', bytes: number) =>
          sink({
            type: 'layer-progress',
            ref: full,
            digest,
            action: 'pull',
            status,
            bytes,
            total: l.size,
            time: Date.now(),
          });
        let size: number;
        if ((await store.blobs.has(diffId)) && (await store.holdLayers([{ digest: diffId, diffId }]))) {
          size = await store.blobs.size(diffId);
          event('exists', l.size);
        } else {
          const progress = (n: number) => event('downloading', n);
          size = await pullLayer(store.blobs, client, ref.path, l, diffId, scope, progress, { limit, pool, batch });
          bytesFetched += l.size;
          event('done', l.size);
        }
        // what this diff_id came as (a push back finds it: blob-info.ts), written while other layers
        // are in flight but outside this slot: a verified fact even before the batch names the blob
        // (an entry names no blob)
        const entry = info.addNew(diffId, { digest, mediaType: l.mediaType, size: l.size }, repo);
        entry.catch(() => undefined); // awaited below
        came.push(entry);
        return { mediaType: MEDIA.layer, digest: diffId, size } satisfies Descriptor;
      });
      lap('layers');
      await allSettled(came);
      lap('blob-info');
    } catch (e) {
      await Promise.allSettled(came);
      await batch?.discard();
      throw e;
    }
    await batch?.flush(opts.signal);
    lap('flush');
    const stored = await store.putImage(config, layers, configBytes);
    lap('putImage');
    const name = familiarName(ref);
    await store.tag(name, stored.manifestDigest);
    lap('tag');
    return { ...stored, ref: name, remoteDigest: top.digest, resolvedDigest, bytesFetched };
  } finally {
    client.close();
    pool.release();
  }
}
