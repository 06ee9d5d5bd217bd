/**
 * The registry caches of one build (--cache-from / --cache-to) around the solver: opened before
 * it (the solver retries when a cache layer fails its checks), exported after the image is made,
 * closed with the build's engine.
 */
import type { LayerRef } from '../image/types.ts';
import type { RegistryOptions } from '../registry/client.ts';
import type { EventSink } from '../solve/events.ts';
import { exportCache } from '../cache/export.ts';
import { RegistryCaches } from '../cache/registry.ts';
import type { CacheExportSpec, CacheImportSpec } from '../cache/spec.ts';
import type { Engine } from './engine.ts';

/** Each build's open caches, by its engine: closed with it (closeCaches), however the build ends. */
const opened = new WeakMap<Engine, RegistryCaches>();

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
  opened.set(engine, caches);
  return caches;
}

/** Close the registry connections of the engine's build caches (idempotent). */
export function closeCaches(engine: Engine): void {
  opened.get(engine)?.close();
  opened.delete(engine);
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
