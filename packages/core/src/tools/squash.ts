/**
 * `vbuild squash IMAGE` and `build --squash`: the layers above the base (or all, `--all`) become
 * one layer. An export-time transform: the cache records keep their per-step layers, so the next
 * build still hits. The squashed layer is overlay's own diff of the image's tree against the
 * base's (both read-only views), so whiteouts and opaque dirs follow the one rule in @vlab/overlay.
 */
import { diffSource, writeLayer } from '@vlab/overlay';
import type { Engine } from '../api/engine.ts';
import { openEngine } from '../api/engine.ts';
import { MEDIA, type History, type ImageConfig } from '../image/types.ts';
import { layersOf } from '../solve/base.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import type { StoredImage } from '../store/store.ts';
import { findBase } from './base.ts';
import { imageOf, type ToolOptions } from './common.ts';

export interface SquashOptions extends ToolOptions {
  /** Name for the result (default: none; the image id is returned). */
  tag?: string;
  /** Squash the base's layers too: the result has one layer. */
  all?: boolean;
  /** Seconds since the epoch to clamp mtimes to (default: the layers' own mtimes). */
  sourceDateEpoch?: number;
}

export interface SquashResult {
  imageId: string;
  digest: string;
  /** Layers kept below the squashed one (the base's), the layers squashed, and the new layer. */
  baseLayers: number;
  squashedLayers: number;
  layer: { digest: string; size: number };
  base?: string;
  tag?: string;
}

export async function squash(image: string, opts: SquashOptions = {}): Promise<SquashResult> {
  const engine = await openEngine(opts.root ?? defaultStoreRoot());
  try {
    const img = await imageOf(engine.store, image);
    const out = await squashImage(engine, img, opts);
    if (opts.tag) await engine.store.tag(opts.tag, out.digest);
    return { ...out, ...(opts.tag ? { tag: opts.tag } : {}) };
  } finally {
    await engine.store.lease.release().catch(() => undefined);
  }
}

/** The squashed image of `img` (stored, not tagged): what `squash` and `build --squash` share. */
export async function squashImage(
  engine: Engine,
  img: StoredImage,
  opts: { all?: boolean; sourceDateEpoch?: number } = {},
): Promise<Omit<SquashResult, 'tag'>> {
  const base = opts.all ? { layers: 0 } : await findBase(engine.store, img);
  const all = layersOf(img);
  const below = all.slice(0, base.layers);
  const sde = opts.sourceDateEpoch;
  const layer = await engine.layers.withView(all, (top) =>
    below.length
      ? engine.layers.withView(below, (b) => writeBlob(engine, top, b, sde))
      : writeBlob(engine, top, undefined, sde),
  );
  const config: ImageConfig = {
    ...img.config,
    rootfs: { type: 'layers', diff_ids: [...below.map((l) => l.diffId), layer.diffId] },
    history: squashedHistory(img.config.history ?? [], base.layers),
  };
  const stored = await engine.store.putImage(config, [
    ...img.manifest.layers.slice(0, base.layers),
    { mediaType: MEDIA.layer, digest: layer.digest, size: layer.size },
  ]);
  return {
    imageId: stored.configDigest,
    digest: stored.manifestDigest,
    baseLayers: base.layers,
    squashedLayers: all.length - base.layers,
    layer: { digest: layer.digest, size: layer.size },
    ...(base.ref ? { base: base.ref } : {}),
  };
}

async function writeBlob(engine: Engine, dir: string, base: string | undefined, sde?: number) {
  const blob = await engine.store.blobs.create();
  try {
    const w = await writeLayer(diffSource({ kind: 'compare', dir, base }, { sourceDateEpoch: sde }), blob.stream);
    const stored = await blob.commit(w.diffId);
    return { digest: stored.digest, size: stored.size, diffId: w.diffId };
  } catch (e) {
    await blob.abort().catch(() => undefined);
    throw e;
  }
}

/**
 * The base's history entries (those up to its `baseLayers`-th non-empty one) stay; the squashed
 * ones become empty entries (their commands stay readable) followed by one entry for the layer.
 */
function squashedHistory(history: History[], baseLayers: number): History[] {
  let cut = 0;
  for (let seen = 0; cut < history.length && seen < baseLayers; cut++) if (!history[cut]!.empty_layer) seen++;
  const squashed = history.slice(cut);
  const last = squashed[squashed.length - 1];
  return [
    ...history.slice(0, cut),
    ...squashed.map((h) => ({ ...h, empty_layer: true })),
    { ...(last?.created ? { created: last.created } : {}), created_by: 'vbuild squash', comment: 'squashed layer' },
  ];
}
