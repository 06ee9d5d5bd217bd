/**
 * The registry output of a build: `--push` (every tag to its registry, as docker buildx) and
 * `--output type=registry,name=R[,compression=gzip|zstd]`, through the registry client; the
 * layers' progress goes to the build's event sink.
 */
import type { Store, StoredImage } from '../store/store.ts';
import { pushImage } from '../registry/push.ts';
import type { RegistryOptions } from '../registry/client.ts';
import type { EventSink } from '../solve/events.ts';
import type { OutputSpec } from './export.ts';

export async function pushOutputs(
  store: Store,
  img: StoredImage,
  opts: { push?: boolean; tags?: string[]; output?: OutputSpec[]; registry?: RegistryOptions; signal?: AbortSignal },
  emit: EventSink,
): Promise<string[]> {
  const targets: { name: string; compression?: string }[] = [];
  if (opts.push) for (const t of opts.tags ?? []) targets.push({ name: t });
  for (const o of opts.output ?? [])
    if (o.type === 'registry') targets.push({ name: o.dest, compression: o.compression });
  const digests: string[] = [];
  for (const t of targets) {
    const r = await pushImage(store, img, t.name, {
      ...opts.registry,
      signal: opts.signal,
      compression: t.compression as 'gzip' | 'zstd' | undefined,
      onProgress: emit,
    });
    digests.push(r.digest);
  }
  return digests;
}
