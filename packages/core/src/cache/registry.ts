/**
 * One build's registry caches (`--cache-from`): each cache manifest is read once at the start,
 * and its entries answer lookups by key; the layers a hit names are fetched only when something
 * reads them (a step that runs on them, a view of them, the final image), so a hit costs nothing
 * but the lookup and an intermediate stage's layers are never pulled when every use of it hits.
 *
 * The registry and its manifests are untrusted: a hit must extend the parent's own layer chain
 * by at most one layer; a fetched blob is named in the store only after its digest and diff_id
 * check out (registry/blob-get.ts), and the image counts sizes from the store, not the cache. A
 * layer that fails is remembered as bad, the fetch rejects with E_CACHE_LAYER, and the build is
 * solved again with every entry that names it a miss (solve/solver.ts), so a broken cache
 * costs a rebuild and a warning, never a wrong image.
 */
import { VlabError } from '@vlab/errors';
import type { LayerRef } from '../image/types.ts';
import type { Store } from '../store/store.ts';
import { BlobInfo } from '../registry/blob-info.ts';
import { fetchSmallBlob, layerLimit, pullLayer } from '../registry/blob-get.ts';
import { RegistryClient, pullScope, type RegistryOptions } from '../registry/client.ts';
import { fetchManifest } from '../registry/manifest.ts';
import { formatReference, parseReference, repoName, type Reference } from '../registry/reference.ts';
import type { CacheEventSink } from './events.ts';
import { localRef, readCache, type CacheEntry, type CacheLayer } from './format.ts';
import type { CacheImportSpec } from './spec.ts';
import type { BuildCache, CacheRecord } from './types.ts';

/** A cache read from one ref, and the client its layers are fetched with. */
export interface ImportedCache {
  ref: Reference;
  /** The normalised reference, as events name it. */
  name: string;
  client: RegistryClient;
  entries: Map<string, CacheEntry>;
  hits: number;
  layersPulled: number;
  bytesPulled: number;
}

/** What a step found in the registry caches. */
export type RemoteLookup =
  { hit: { layers: LayerRef[]; created: string; from: string } } | { unusable: string } | undefined;

/** One step's result, as a cache export records it. */
export interface RecordedStep {
  key: string;
  layers: LayerRef[];
  created: string;
  history: CacheEntry['history'];
}

const sameChain = (a: { diffId: string }[], b: { diffId: string }[]) =>
  a.length === b.length && a.every((l, i) => l.diffId === b[i]!.diffId);

export class RegistryCaches {
  /** Where each diff_id can be fetched from (the first cache that names it). */
  private readonly sources = new Map<string, { cache: ImportedCache; layer: CacheLayer }>();
  private readonly bad = new Map<string, string>();
  private readonly fetching = new Map<string, Promise<void>>();
  /** Layers that failed since the last `takeFailures()`. */
  private failures: string[] = [];
  /** Every step's result in this build, by key (what a --cache-to exports). */
  readonly recorded = new Map<string, RecordedStep>();
  /** Hits to remember in the local cache once their layers are in the store. */
  private readonly local = new Map<string, CacheRecord>();

  /** Caches already read (`open` reads them from their registries). */
  constructor(
    readonly caches: ImportedCache[],
    private readonly store: Store,
    private readonly emit: CacheEventSink,
  ) {
    for (const c of caches)
      for (const e of c.entries.values())
        for (const l of e.layers) if (!this.sources.has(l.diffId)) this.sources.set(l.diffId, { cache: c, layer: l });
  }

  /**
   * Read each `--cache-from` ref. A cache that cannot be read (not there, unreachable, malformed)
   * is a warning and the build goes on without it, as BuildKit's cache import does.
   */
  static async open(
    specs: CacheImportSpec[],
    store: Store,
    registry: RegistryOptions,
    emit: CacheEventSink,
  ): Promise<RegistryCaches> {
    const caches: ImportedCache[] = [];
    for (const spec of specs) {
      const ref = parseReference(spec.ref);
      const name = formatReference(ref);
      let client: RegistryClient | undefined;
      try {
        client = await RegistryClient.open(ref.domain, registry);
        const entries = await readRemote(client, ref, name);
        caches.push({
          ref,
          name,
          client,
          entries: new Map(entries.map((e) => [e.key, e])),
          hits: 0,
          layersPulled: 0,
          bytesPulled: 0,
        });
        emit({
          type: 'cache-import',
          ref: name,
          entries: entries.length,
          hits: 0,
          layersPulled: 0,
          bytesPulled: 0,
          time: Date.now(),
        });
      } catch (e) {
        client?.close();
        if (registry.signal?.aborted) throw e;
        const why = (e as VlabError).code === 'E_IMAGE_NOT_FOUND' ? 'not found' : (e as Error).message;
        emit({
          type: 'warning',
          message: `importing cache ${name} failed: ${why}: building without it`,
          time: Date.now(),
        });
      }
    }
    return new RegistryCaches(caches, store, emit);
  }

  /** The entry of `key` in the first cache that has a usable one, checked against the parent's layers. */
  lookup(key: string, parent: LayerRef[]): RemoteLookup {
    let unusable: string | undefined;
    for (const c of this.caches) {
      const e = c.entries.get(key);
      if (!e) continue;
      const own = e.layers.slice(parent.length);
      if (own.length > 1 || !sameChain(e.layers.slice(0, parent.length), parent)) {
        unusable ??= `the entry in registry cache ${c.name} does not extend this step's parent layers`;
        continue;
      }
      const broken = own.find((l) => this.bad.has(l.diffId));
      if (broken) {
        unusable ??= `registry cache ${c.name}: layer ${broken.diffId.slice(0, 19)} ${this.bad.get(broken.diffId)}`;
        continue;
      }
      c.hits++;
      return { hit: { layers: [...parent, ...own.map(localRef)], created: e.created, from: c.name } };
    }
    return unusable ? { unusable } : undefined;
  }

  /**
   * Fetch the layers among `layers` that the store lacks and a cache names (the others are left
   * to the caller's own checks). Rejects with E_CACHE_LAYER when one fails verification or cannot
   * be fetched; it is remembered as bad.
   */
  async fetchMissing(layers: LayerRef[]): Promise<void> {
    await Promise.all(
      layers.map(async (l) => {
        const src = this.sources.get(l.diffId);
        if (!src || l.digest !== l.diffId || (await this.store.blobs.has(l.diffId))) return;
        let p = this.fetching.get(l.diffId);
        if (!p) {
          p = this.fetchOne(src.cache, src.layer);
          this.fetching.set(l.diffId, p);
          p.catch(() => this.fetching.delete(l.diffId));
        }
        await p;
      }),
    );
  }

  private async fetchOne(c: ImportedCache, l: CacheLayer): Promise<void> {
    const bad = this.bad.get(l.diffId);
    if (bad) throw cacheLayerError(c, l, bad);
    const progress = (status: 'downloading' | 'done', bytes: number) =>
      this.emit({
        type: 'layer-progress',
        ref: c.name,
        digest: l.blob.digest,
        action: 'pull',
        status,
        bytes,
        total: l.blob.size,
        time: Date.now(),
      });
    const limit = await layerLimit(this.store.root);
    try {
      await pullLayer(
        this.store.blobs,
        c.client,
        c.ref.path,
        l.blob,
        l.diffId,
        [pullScope(c.ref.path)],
        (n) => progress('downloading', n),
        { limit },
      );
    } catch (e) {
      if (c.client.opts.signal?.aborted) throw e;
      const why = (e as Error).message;
      this.bad.set(l.diffId, `failed (${why})`);
      this.failures.push(`layer ${l.blob.digest.slice(0, 19)} of registry cache ${c.name} failed (${why})`);
      throw cacheLayerError(c, l, why, e);
    }
    progress('done', l.blob.size);
    c.layersPulled++;
    c.bytesPulled += l.blob.size;
    // verified: a later push of this layer to that registry finds it (HEAD or mount) without compressing
    await new BlobInfo(this.store.root).add(l.diffId, l.blob, repoName(c.ref)).catch(() => undefined);
  }

  /** Remember a hit in the local cache at the end of the build, if its layers were fetched by then. */
  keepLocally(rec: CacheRecord): void {
    this.local.set(rec.key, rec);
  }

  /**
   * The hits whose layers are all in the store now, into the local cache (a later build needs no
   * --cache-from for them); the others stay out, so the local cache never names a missing layer.
   */
  async saveLocal(cache: BuildCache): Promise<void> {
    for (const rec of this.local.values()) {
      const all = await Promise.all(rec.layers.map((l) => this.store.blobs.has(l.digest)));
      if (all.every(Boolean) && this.trusts(rec.layers)) await cache.put(rec);
    }
    this.local.clear();
  }

  /** False when one of `layers` came from a registry cache and failed its checks in this build. */
  trusts(layers: LayerRef[]): boolean {
    return !layers.some((l) => this.bad.has(l.diffId));
  }

  /** Layers that failed since the last call (each once): the build is solved again without them. */
  takeFailures(): string[] {
    const f = this.failures;
    this.failures = [];
    return f;
  }

  /** Where a layer of `recorded` can be had without a local blob: its blob in a cache. */
  remoteLayer(diffId: string): { cache: ImportedCache; layer: CacheLayer } | undefined {
    return this.bad.has(diffId) ? undefined : this.sources.get(diffId);
  }

  /** The import summaries (hits, layers and bytes pulled), one event per cache. */
  report(): void {
    for (const c of this.caches)
      this.emit({
        type: 'cache-import',
        ref: c.name,
        entries: c.entries.size,
        hits: c.hits,
        layersPulled: c.layersPulled,
        bytesPulled: c.bytesPulled,
        time: Date.now(),
      });
  }

  close(): void {
    for (const c of this.caches) c.client.close();
  }
}

function cacheLayerError(c: ImportedCache, l: CacheLayer, why: string, cause?: unknown): VlabError {
  return new VlabError(
    'E_CACHE_LAYER',
    `layer ${l.blob.digest.slice(0, 19)} of registry cache ${c.name} is unusable (${why}): its steps are built instead`,
    { cause, details: { diffId: l.diffId } },
  );
}

/** The entries of the cache at `ref` (E_IMAGE_NOT_FOUND when there is none). */
export async function readRemote(client: RegistryClient, ref: Reference, name: string): Promise<CacheEntry[]> {
  const scope = [pullScope(ref.path)];
  const top = await fetchManifest(client, ref.path, ref.digest ?? ref.tag!, scope);
  if (top.kind !== 'manifest') throw new VlabError('E_UNSUPPORTED', `${name} is an index, not a vbuild registry cache`);
  const config = await fetchSmallBlob(client, ref.path, top.manifest.config, scope);
  return readCache(top.manifest, config, name);
}
