/**
 * `vbuild system df` (docker system df): the store's disk usage by images, containers, volumes and
 * the build cache, and what the prunes would free. Sizes are disk usage as du counts it (allocated
 * blocks; a file hard-linked twice once). Content shared by images (a common base's layer blobs and
 * snapshots) is counted once in the totals. Reclaimable bytes come from the prunes' own selections
 * (gc's pruneSelection, the container service's prunable containers and volumes): df sizes what
 * those would delete, it never decides it.
 * - Images: what tags and containers reach, plus the unreferenced content (no tag, container or
 *   cache record reaches it) that `vbuild prune` frees: its reclaimable bytes.
 * - Build Cache: what only cache records reach; reclaimable: what `prune --all` frees beyond that.
 * - Containers: their writable snapshots; reclaimable: those `container prune` removes.
 * - Local Volumes: their data; reclaimable: those `volume prune` removes.
 */
import { promises as fsp } from 'node:fs';
import { dirUsage, diskBytes } from '@vlab/overlay';
import { containerService } from '../containers/api.ts';
import { commandText, statusText } from '../containers/format.ts';
import type { CacheRecord } from '../cache/types.ts';
import type { LayerRef } from '../image/types.ts';
import { keptImages, pruneSelection, reachImage, reachLayers, type Reach } from '../layers/gc.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import type { Store } from '../store/store.ts';
import type { ToolOptions } from './common.ts';

export type DfType = 'Images' | 'Containers' | 'Local Volumes' | 'Build Cache';

export interface DfRow {
  type: DfType;
  total: number;
  /** Images used by a container, running containers, volumes a container uses, cache records all of whose content an image (or a live build) keeps. */
  active: number;
  size: number;
  reclaimable: number;
}

export interface DfImage {
  /** `name:tag`, or `<none>` for an untagged image a container was made from. */
  ref: string;
  imageId: string;
  digest: string;
  created?: string;
  size: number;
  /** Bytes of it that another image has too. */
  sharedSize: number;
  uniqueSize: number;
  containers: number;
}

export interface DfContainer {
  id: string;
  name: string;
  image: string;
  /** The COMMAND column (quoted, cut to 20 characters). */
  command: string;
  localVolumes: number;
  /** Its writable snapshot (what it changed). */
  size: number;
  created: string;
  state: string;
  /** docker ps's STATUS text. */
  status: string;
}

export interface DfVolume {
  name: string;
  /** Containers that use it. */
  links: number;
  size: number;
}

export interface DfCacheEntry {
  id: string;
  created: string;
  /** Bytes only the build cache keeps for it. */
  size: number;
  /** Some of those bytes are kept by another cache record too. */
  shared: boolean;
  /** Nothing of it would be freed: an image (or a live build) keeps all it reaches. */
  inUse: boolean;
}

export interface DfReport {
  rows: DfRow[];
  images: DfImage[];
  containers: DfContainer[];
  volumes: DfVolume[];
  buildCache: DfCacheEntry[];
  /** Content no tag, container or cache record reaches (in the Images row): `vbuild prune` frees what no live build holds. */
  unreferenced: { blobs: number; snapshots: number; size: number };
}

/** `docker system df`: see the module comment. Reads only; holds nothing against gc. */
export async function systemDf(opts: ToolOptions = {}): Promise<DfReport> {
  const svc = await containerService(opts.root ?? defaultStoreRoot());
  const { store, cache } = svc.engine;
  const snaps = await svc.engine.snapshots();
  const blobSize = new Map<string, number>();
  for (const b of await store.blobs.list()) {
    const st = await fsp.stat(store.blobs.path(b)).catch(() => undefined); // removed meanwhile: 0
    blobSize.set(b, st ? diskBytes(st) : 0);
  }
  const snapSize = new Map<string, number>(); // committed snapshots, by ChainID
  const all = await snaps.walk();
  for (const s of all) if (s.kind === 'committed') snapSize.set(s.key, (await snaps.usage(s.key)).size);
  const bytes = (r: { blobs: Iterable<string>; chains: Iterable<string> }) => {
    let n = 0;
    for (const b of r.blobs) n += blobSize.get(b) ?? 0;
    for (const c of r.chains) n += snapSize.get(c) ?? 0;
    return n;
  };

  const ctrs = await svc.list({ all: true });
  const idx = await store.readIndex();
  const imageReach = new Map<string, Reach>();
  for (const d of await keptImages(store, idx)) imageReach.set(d, await reachImage(store, d));
  const byImages = union([...imageReach.values()]);
  const records: { rec: CacheRecord; reach: Reach }[] = [];
  for (const k of await cache.keys()) {
    const rec = await cache.get(k);
    if (rec) records.push({ rec, reach: reachLayers(emptyReach(), rec.layers as LayerRef[]) });
  }
  const cacheOnly = minus(union(records.map((r) => r.reach)), byImages);
  const unreferenced = minus(
    { blobs: new Set(blobSize.keys()), chains: new Set(snapSize.keys()) },
    union([byImages, cacheOnly]),
  );

  // what the prunes would delete, by their own rules
  const sel = await pruneSelection(store, cache, svc.engine.snapshots);
  const selAll = await pruneSelection(store, cache, svc.engine.snapshots, { all: true });
  const plain = { blobs: new Set(sel.blobs), chains: new Set(sel.snapshots) };
  const freedByAll = minus({ blobs: new Set(selAll.blobs), chains: new Set(selAll.snapshots) }, plain);
  const prunableCtrs = new Set((await svc.prunableContainers()).map((c) => c.config.id));
  const prunableVols = new Set((await svc.prunableVolumes()).map((v) => v.name));

  const images = await imageRows(store, imageReach, ctrs, bytes);
  const containers: DfContainer[] = [];
  const activeSnaps = new Map(all.map((s) => [s.key, s]));
  for (const c of ctrs)
    containers.push({
      id: c.config.id,
      name: c.config.name,
      image: c.config.image,
      command: commandText(c),
      localVolumes: c.config.mounts.filter((m) => m.type === 'volume').length,
      size: activeSnaps.has(c.config.snapshotKey) ? (await snaps.usage(c.config.snapshotKey)).size : 0,
      created: c.config.created,
      state: c.state.status,
      status: statusText(c),
    });
  const volumes: DfVolume[] = [];
  for (const v of await svc.volumes.list())
    volumes.push({
      name: v.name,
      links: (await svc.volumeUsers(v.name)).length,
      size: (await dirUsage(v.mountpoint)).size,
    });
  const buildCache: DfCacheEntry[] = records.map(({ rec, reach }, i) => {
    const own = intersect(reach, cacheOnly);
    const others = union(records.filter((_, j) => j !== i).map((r) => r.reach));
    return {
      id: rec.key,
      created: rec.created,
      size: bytes(own),
      shared: [...own.blobs].some((b) => others.blobs.has(b)) || [...own.chains].some((c) => others.chains.has(c)),
      inUse: bytes(intersect(reach, freedByAll)) === 0,
    };
  });

  const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((n, x) => n + f(x), 0);
  return {
    rows: [
      {
        type: 'Images',
        total: imageReach.size,
        active: new Set(ctrs.map((c) => c.config.imageDigest)).size,
        size: bytes(byImages) + bytes(unreferenced),
        reclaimable: bytes(plain),
      },
      {
        type: 'Containers',
        total: containers.length,
        active: ctrs.filter((c) => c.state.status === 'running').length,
        size: sum(containers, (c) => c.size),
        reclaimable: sum(
          containers.filter((c) => prunableCtrs.has(c.id)),
          (c) => c.size,
        ),
      },
      {
        type: 'Local Volumes',
        total: volumes.length,
        active: volumes.filter((v) => v.links > 0).length,
        size: sum(volumes, (v) => v.size),
        reclaimable: sum(
          volumes.filter((v) => prunableVols.has(v.name)),
          (v) => v.size,
        ),
      },
      {
        type: 'Build Cache',
        total: records.length,
        active: buildCache.filter((e) => e.inUse).length,
        size: bytes(cacheOnly),
        reclaimable: bytes(freedByAll),
      },
    ],
    images,
    containers,
    volumes,
    buildCache,
    unreferenced: { blobs: unreferenced.blobs.size, snapshots: unreferenced.chains.size, size: bytes(unreferenced) },
  };
}

/** One row per name (an untagged image a container uses: `<none>`), with its shared and unique bytes. */
async function imageRows(
  store: Store,
  reach: Map<string, Reach>,
  ctrs: { config: { imageDigest: string } }[],
  bytes: (r: Reach) => number,
): Promise<DfImage[]> {
  const refs = new Map<string, string[]>();
  for (const r of await store.listImages()) refs.set(r.digest, [...(refs.get(r.digest) ?? []), r.ref]);
  const out: DfImage[] = [];
  for (const [digest, r] of reach) {
    const others = union([...reach].filter(([d]) => d !== digest).map(([, x]) => x));
    const size = bytes(r);
    const shared = bytes(intersect(r, others));
    const img = await store.loadManifest(digest).catch(() => undefined);
    for (const ref of refs.get(digest) ?? ['<none>'])
      out.push({
        ref,
        imageId: img?.configDigest ?? '',
        digest,
        ...(img?.config.created ? { created: img.config.created } : {}),
        size,
        sharedSize: shared,
        uniqueSize: size - shared,
        containers: ctrs.filter((c) => c.config.imageDigest === digest).length,
      });
  }
  return out;
}

const emptyReach = (): Reach => ({ blobs: new Set(), chains: new Set() });
const union = (rs: Reach[]): Reach => {
  const u = emptyReach();
  for (const r of rs) {
    for (const b of r.blobs) u.blobs.add(b);
    for (const c of r.chains) u.chains.add(c);
  }
  return u;
};
const filter = (r: Reach, keep: (kind: 'blobs' | 'chains', x: string) => boolean): Reach => ({
  blobs: new Set([...r.blobs].filter((b) => keep('blobs', b))),
  chains: new Set([...r.chains].filter((c) => keep('chains', c))),
});
const minus = (a: Reach, b: Reach) => filter(a, (k, x) => !b[k].has(x));
const intersect = (a: Reach, b: Reach) => filter(a, (k, x) => b[k].has(x));
