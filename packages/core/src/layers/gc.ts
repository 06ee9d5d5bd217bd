import type { Snapshotter } from '@vlab/overlay';
import type { BuildCache } from '../cache/cache.ts';
import type { LayerRef, Manifest } from '../image/types.ts';
import { chainIds } from '../image/chain.ts';
import { isVlabError } from '@vlab/errors';
import type { Store } from '../store/store.ts';
import { liveLeases, withGcLock } from '../store/lease.ts';
import { containerImages } from '../containers/records.ts';

export interface PruneResult {
  blobsRemoved: number;
  bytesFreed: number;
  snapshotsRemoved: number;
  cacheRecordsRemoved: number;
}

/**
 * Garbage collection: keep what a tag, a container or (unless `all`) a build-cache record reaches — manifests,
 * configs, layers and the snapshots of their layer chains — and delete the rest. With `all` the
 * build cache is dropped first, so `rmi` + `prune --all` frees an image's intermediate layers.
 * Whatever a live build's lease holds is kept too (lease.ts): a running build loses nothing it made
 * or uses. Runs under the gc lock (holds wait for it) and the index lock, so a concurrent tag
 * cannot lose its blobs mid-way.
 */
export function prune(
  store: Store,
  cache: BuildCache,
  snapshots: () => Promise<Snapshotter>,
  opts: { all?: boolean } = {},
): Promise<PruneResult> {
  return withGcLock(store.root, () => collect(store, cache, snapshots, opts));
}

async function collect(
  store: Store,
  cache: BuildCache,
  snapshots: () => Promise<Snapshotter>,
  opts: { all?: boolean },
): Promise<PruneResult> {
  const res: PruneResult = { blobsRemoved: 0, bytesFreed: 0, snapshotsRemoved: 0, cacheRecordsRemoved: 0 };
  if (opts.all) {
    for (const k of await cache.keys()) {
      await cache.remove(k);
      res.cacheRecordsRemoved++;
    }
  }
  await store.updateIndex(async (idx) => {
    const keepBlobs = new Set<string>();
    const keepChains = new Set<string>();
    const keepLayers = (layers: { digest: string; diffId: string }[]) => {
      for (const l of layers) keepBlobs.add(l.digest);
      for (const c of chainIds(layers.map((l) => l.diffId))) keepChains.add(c);
    };
    // an image a container was made from stays whole even when untagged (rmi -f): commit needs it
    const manifests = [...idx.manifests.map((d) => d.digest)];
    for (const c of await containerImages(store.root)) manifests.push(c.imageDigest);
    for (const digest of manifests) {
      const d = { digest };
      keepBlobs.add(d.digest);
      const m = await store.blobs.readJson<Manifest>(d.digest).catch(() => undefined);
      if (!m) continue;
      keepBlobs.add(m.config.digest);
      const cfg = await store.blobs
        .readJson<{ rootfs: { diff_ids: string[] } }>(m.config.digest)
        .catch(() => undefined);
      keepLayers(m.layers.map((l, i) => ({ digest: l.digest, diffId: cfg?.rootfs.diff_ids[i] ?? l.digest })));
    }
    for (const k of await cache.keys()) {
      const rec = await cache.get(k);
      if (rec) keepLayers(rec.layers as LayerRef[]);
    }
    const leased = await liveLeases(store.root);
    for (const b of leased.blobs) keepBlobs.add(b);
    for (const c of leased.snapshots) keepChains.add(c);
    for (const b of await store.blobs.list()) {
      if (keepBlobs.has(b)) continue;
      res.bytesFreed += await store.blobs.size(b).catch(() => 0);
      await store.blobs.remove(b);
      res.blobsRemoved++;
    }
    // Committed snapshots no kept chain names; leaves first (a parent is refused while a child lives).
    let progress = true;
    while (progress) {
      progress = false;
      const snaps = await snapshots();
      const all = await snaps.walk();
      const parents = new Set(all.map((s) => s.parent).filter(Boolean));
      for (const s of all) {
        if (s.kind !== 'committed' || keepChains.has(s.key) || parents.has(s.key)) continue;
        try {
          await snaps.remove(s.key);
        } catch (e) {
          // a build stacked a step on it since the walk: it is in use
          if (isVlabError(e, 'E_SNAPSHOT_IN_USE')) continue;
          throw e;
        }
        res.snapshotsRemoved++;
        progress = true;
      }
    }
    return idx;
  });
  return res;
}
