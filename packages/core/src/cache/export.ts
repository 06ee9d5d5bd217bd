/**
 * `--cache-to type=registry,ref=R[,mode=min|max]`: this build's steps (mode=min: those on the
 * final image's layer chain; max: every stage's) merged with what R already holds, written to R
 * as one cache manifest (format.ts). Layers in the store are pushed as `vbuild push` pushes them
 * (compressed once, found by HEAD or mounted when the registry has them); a layer this build only
 * knows from a registry cache is referred to where it already is in R's repository, or mounted
 * from its cache's repository on the same registry; an entry whose layers R cannot get is dropped.
 */
import { debuglog } from 'node:util';
import { VlabError } from '@vlab/errors';
import { MEDIA, type Descriptor, type LayerRef, type Manifest } from '../image/types.ts';
import type { Store } from '../store/store.ts';
import { BlobInfo } from '../registry/blob-info.ts';
import { hasBlob, startUpload, uploadBytes } from '../registry/blob-put.ts';
import { RegistryClient, pullScope, pushScope, type RegistryOptions } from '../registry/client.ts';
import { putManifest } from '../registry/manifest.ts';
import { DEFAULT_PARALLEL, eachLimited } from '../registry/parallel.ts';
import { pushLayer } from '../registry/push.ts';
import { formatReference, parseReference, repoName, type Reference } from '../registry/reference.ts';
import { sha256 } from '../store/blobs.ts';
import type { CacheEventSink } from './events.ts';
import {
  CACHE_ARTIFACT_TYPE,
  CACHE_CONFIG_TYPE,
  mergeEntries,
  writeCache,
  type CacheEntry,
  type CacheLayer,
} from './format.ts';
import { readRemote, type RecordedStep, type RegistryCaches } from './registry.ts';
import type { CacheExportSpec } from './spec.ts';

const log = debuglog('vlab');

const onChain = (step: LayerRef[], final: LayerRef[]) =>
  step.length <= final.length && step.every((l, i) => l.diffId === final[i]!.diffId);

export async function exportCache(
  store: Store,
  caches: RegistryCaches,
  spec: CacheExportSpec,
  final: LayerRef[],
  opts: { registry: RegistryOptions; emit: CacheEventSink },
): Promise<void> {
  const steps = [...caches.recorded.values()].filter(
    (s) => s.layers.length && (spec.mode === 'max' || onChain(s.layers, final)),
  );
  const ref = parseReference(spec.ref);
  const name = formatReference(ref);
  const info = new BlobInfo(store.root);
  const diffIds = [...new Set(steps.flatMap((s) => s.layers.map((l) => l.diffId)))];
  const byDiff = new Map(steps.flatMap((s) => s.layers.map((l) => [l.diffId, l] as const)));
  const known = new Map(await Promise.all(diffIds.map(async (d) => [d, await info.get(d)] as const)));
  const mountFrom = new Set<string>();
  for (const list of known.values())
    for (const b of list) for (const r of b.repos) if (r.startsWith(`${ref.domain}/`)) mountFrom.add(r);
  for (const d of diffIds) {
    const far = caches.remoteLayer(d)?.cache.ref;
    if (far && far.domain === ref.domain) mountFrom.add(repoName(far));
  }
  mountFrom.delete(repoName(ref));
  const scope = [pushScope(ref.path), ...[...mountFrom].map((r) => pullScope(r.slice(ref.domain.length + 1)))];
  const client = await RegistryClient.open(ref.domain, opts.registry);
  let pushed = 0;
  let bytesPushed = 0;
  try {
    const old = await oldEntries(caches, client, ref, name);
    // each layer of this build's steps as a blob of R's repository, or undefined when R cannot have it
    const blobs = new Map<string, CacheLayer | undefined>();
    await eachLimited(diffIds, DEFAULT_PARALLEL, async (diffId) => {
      const l = byDiff.get(diffId)!;
      if (await store.blobs.has(l.digest)) {
        const r = await pushLayer(
          store,
          client,
          ref,
          { mediaType: l.mediaType, digest: l.digest, size: l.size },
          diffId,
          known.get(diffId) ?? [],
          spec.compression ?? 'gzip',
          scope,
          opts.registry,
          (e) => opts.emit({ ...e, type: 'layer-progress', ref: name, action: 'push', time: Date.now() }),
        );
        if (r.status === 'done') {
          pushed++;
          bytesPushed += r.desc.size;
        }
        // a layer kept compressed (a loaded archive's) has no uncompressed size at hand
        return void blobs.set(diffId, { blob: r.desc, diffId, ...(l.digest === diffId ? { size: l.size } : {}) });
      }
      blobs.set(diffId, await remoteBlob(caches, client, ref, diffId, scope));
    });
    const fresh: CacheEntry[] = [];
    for (const s of steps) {
      const layers = s.layers.map((l) => blobs.get(l.diffId));
      if (layers.every((l): l is CacheLayer => !!l)) fresh.push(entryOf(s, layers));
      else log('cache export: %s left out: a layer is neither in the store nor in %s', s.key, name);
    }
    const merged = mergeEntries(
      fresh,
      await reachable(client, ref, old, new Set(fresh.flatMap((e) => e.layers.map((l) => l.blob.digest))), scope),
    );
    const doc = writeCache(merged);
    const configDigest = sha256(doc.config);
    if (!(await hasBlob(client, ref.path, configDigest, scope)))
      await uploadBytes(client, ref.path, configDigest, doc.config, scope);
    await putCacheManifest(
      client,
      ref,
      name,
      doc.layers,
      { mediaType: CACHE_CONFIG_TYPE, digest: configDigest, size: doc.config.length },
      scope,
      opts.registry,
    );
    opts.emit({
      type: 'cache-export',
      ref: name,
      mode: spec.mode,
      entries: merged.length,
      layers: doc.layers.length,
      layersPushed: pushed,
      bytesPushed,
      time: Date.now(),
    });
  } finally {
    client.close();
  }
}

function entryOf(s: RecordedStep, layers: CacheLayer[]): CacheEntry {
  return { key: s.key, layers, created: s.created, ...(s.history ? { history: s.history } : {}) };
}

/** What R holds already (read in this build when it was a --cache-from too); nothing when R has no cache yet. */
async function oldEntries(
  caches: RegistryCaches,
  client: RegistryClient,
  ref: Reference,
  name: string,
): Promise<CacheEntry[]> {
  const imported = caches.caches.find((c) => c.name === name);
  if (imported) return [...imported.entries.values()];
  return readRemote(client, ref, name).catch((e: VlabError) => {
    if (e.code !== 'E_IMAGE_NOT_FOUND') log('cache export: the old cache at %s is not merged: %s', name, e.message);
    return [];
  });
}

/** The old entries whose blobs R still has (one HEAD per blob this build did not push). */
async function reachable(
  client: RegistryClient,
  ref: Reference,
  old: CacheEntry[],
  have: Set<string>,
  scope: string[],
): Promise<CacheEntry[]> {
  const digests = [...new Set(old.flatMap((e) => e.layers.map((l) => l.blob.digest)))].filter((d) => !have.has(d));
  const present = new Set(have);
  await eachLimited(digests, DEFAULT_PARALLEL * 2, async (d) => {
    if (await hasBlob(client, ref.path, d, scope)) present.add(d);
  });
  return old.filter((e) => e.layers.every((l) => present.has(l.blob.digest)));
}

/** A layer only a registry cache has: in R's repository already, or mounted from the cache's repository. */
async function remoteBlob(
  caches: RegistryCaches,
  client: RegistryClient,
  ref: Reference,
  diffId: string,
  scope: string[],
): Promise<CacheLayer | undefined> {
  const src = caches.remoteLayer(diffId);
  if (!src || src.cache.ref.domain !== ref.domain) return undefined;
  const digest = src.layer.blob.digest;
  if (src.cache.ref.path === ref.path || (await hasBlob(client, ref.path, digest, scope))) return src.layer;
  const r = await startUpload(client, ref.path, scope, { digest, from: src.cache.ref.path });
  return r === 'mounted' ? src.layer : undefined;
}

async function putCacheManifest(
  client: RegistryClient,
  ref: Reference,
  name: string,
  layers: Descriptor[],
  config: Descriptor,
  scope: string[],
  opts: RegistryOptions,
): Promise<void> {
  const manifest: Manifest & { artifactType: string } = {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    artifactType: CACHE_ARTIFACT_TYPE,
    config,
    layers,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await putManifest(client, ref, bytes, scope, `cache manifest ${name}`, opts);
}
