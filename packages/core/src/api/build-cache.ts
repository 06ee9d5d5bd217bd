/**
 * The registry caches of one build (--cache-from / --cache-to) around the solver: opened before
 * it, the solve retried when a registry cache layer fails its checks (each retry has one more bad
 * layer, so the steps that named it are built; bounded), exported after the image is made.
 */
import { VlabError } from '@vlab/errors';
import type { LayerRef } from '../image/types.ts';
import type { RegistryOptions } from '../registry/client.ts';
import type { EventSink } from '../solve/events.ts';
import type { StageState } from '../solve/context.ts';
import { exportCache } from '../cache/export.ts';
import { RegistryCaches } from '../cache/registry.ts';
import type { CacheExportSpec, CacheImportSpec } from '../cache/spec.ts';
import type { Engine } from './engine.ts';

/** Solves again after a bad cache layer at most this many times (then the error stands). */
const MAX_RESOLVES = 3;

export interface CacheOptions {
  cacheFrom?: CacheImportSpec[];
  cacheTo?: CacheExportSpec[];
  registry?: RegistryOptions;
  signal?: AbortSignal;
}

/** The build's registry caches, or undefined when it names none; the engine fetches their layers lazily. */
export async function openCaches(
  opts: CacheOptions,
  engine: Engine,
  emit: EventSink,
): Promise<RegistryCaches | undefined> {
  if (!opts.cacheFrom?.length && !opts.cacheTo?.length) return undefined;
  const caches = await RegistryCaches.open(
    opts.cacheFrom ?? [],
    engine.store,
    { ...opts.registry, signal: opts.signal },
    emit,
  );
  engine.layers.fetchMissing = (layers) => caches.fetchMissing(layers);
  return caches;
}

/**
 * `solve()`, then the final image's layers in the store (fetched from a registry cache where
 * they came from one), with their true sizes. A cache layer that fails (E_CACHE_LAYER) is a
 * warning, and the build is solved again: its entries are misses now.
 */
export async function solveWithCaches(
  caches: RegistryCaches | undefined,
  engine: Engine,
  emit: EventSink,
  solve: () => Promise<StageState>,
): Promise<StageState> {
  for (let attempt = 0; ; attempt++) {
    try {
      const state = await solve();
      await engine.layers.ensureBlobs(state.layers);
      await caches?.saveLocal(engine.cache);
      const layers: LayerRef[] = await Promise.all(
        state.layers.map(async (l) => ({ ...l, size: await engine.store.blobs.size(l.digest) })),
      );
      return { ...state, layers };
    } catch (e) {
      const failed = caches?.takeFailures() ?? [];
      if (!(e instanceof VlabError) || e.code !== 'E_CACHE_LAYER' || !failed.length || attempt >= MAX_RESOLVES) throw e;
      for (const f of failed)
        emit({ type: 'warning', message: `${f}: the steps it was for are built instead`, time: Date.now() });
    }
  }
}

/** Each --cache-to, once the image is made; a failure fails the build unless ignore-error=true. */
export async function exportCaches(
  caches: RegistryCaches | undefined,
  opts: CacheOptions,
  engine: Engine,
  final: LayerRef[],
  emit: EventSink,
): Promise<void> {
  caches?.report();
  if (!caches) return;
  for (const spec of opts.cacheTo ?? []) {
    try {
      await exportCache(engine.store, caches, spec, final, {
        registry: { ...opts.registry, signal: opts.signal },
        emit,
      });
    } catch (e) {
      if (!spec.ignoreError || opts.signal?.aborted) throw e;
      emit({
        type: 'warning',
        message: `exporting cache to ${spec.ref} failed (ignored): ${(e as Error).message}`,
        time: Date.now(),
      });
    }
  }
}
