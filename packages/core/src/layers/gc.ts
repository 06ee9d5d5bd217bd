import type { SnapshotInfo, Snapshotter } from '@vlab/overlay';
import type { BuildCache } from '../cache/cache.ts';
import type { ImageIndex, LayerRef, Manifest } from '../image/types.ts';
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

/** What an image or a cache record keeps from gc: blob digests and the ChainIDs of its snapshots. */
export interface Reach {
  blobs: Set<string>;
  chains: Set<string>;
}

const emptyReach = (): Reach => ({ blobs: new Set(), chains: new Set() });

/** Add what `layers` reach (their blobs and their chain's snapshots) to `r`. */
export function reachLayers(r: Reach, layers: { digest: string; diffId: string }[]): Reach {
  for (const l of layers) r.blobs.add(l.digest);
  for (const c of chainIds(layers.map((l) => l.diffId))) r.chains.add(c);
  return r;
}

/** Add what the image with manifest `digest` reaches (manifest, config, layers, snapshots) to `r`. */
export async function reachImage(store: Store, digest: string, r: Reach = emptyReach()): Promise<Reach> {
  r.blobs.add(digest);
  const m = await store.blobs.readJson<Manifest>(digest).catch(() => undefined);
  if (!m) return r;
  r.blobs.add(m.config.digest);
  const cfg = await store.blobs.readJson<{ rootfs: { diff_ids: string[] } }>(m.config.digest).catch(() => undefined);
  return reachLayers(
    r,
    m.layers.map((l, i) => ({ digest: l.digest, diffId: cfg?.rootfs.diff_ids[i] ?? l.digest })),
  );
}

/** The images gc keeps: every tagged one, and the image each container was made from (even untagged: commit needs it). */
export async function keptImages(store: Store, idx: ImageIndex): Promise<string[]> {
  const out = idx.manifests.map((d) => d.digest);
  for (const c of await containerImages(store.root)) out.push(c.imageDigest);
  return [...new Set(out)];
}

/**
 * What a gc would delete now: blobs, committed snapshots (leaves first: a parent goes only after
 * its children), and with `all` every cache record. The one selection rule, used by `prune` (which
 * then deletes it) and by `systemDf` (which sizes it).
 */
export interface PruneSelection {
  blobs: string[];
  snapshots: string[];
  cacheRecords: string[];
}

/**
 * The committed snapshots of `all` that are neither kept nor a parent of another snapshot: what one
 * round of removal may take. Repeated on what is left, it reaches the parents.
 */
export function removableLeaves(all: SnapshotInfo[], keepChains: Set<string>): SnapshotInfo[] {
  const parents = new Set(all.map((s) => s.parent).filter(Boolean));
  return all.filter((s) => s.kind === 'committed' && !keepChains.has(s.key) && !parents.has(s.key));
}

/** What tags, containers, (unless `all`) cache records and live leases keep. */
async function kept(store: Store, cache: BuildCache, idx: ImageIndex, all: boolean): Promise<Reach> {
  const keep = emptyReach();
  for (const digest of await keptImages(store, idx)) await reachImage(store, digest, keep);
  if (!all)
    for (const k of await cache.keys()) {
      const rec = await cache.get(k);
      if (rec) reachLayers(keep, rec.layers as LayerRef[]);
    }
  const leased = await liveLeases(store.root);
  for (const b of leased.blobs) keep.blobs.add(b);
  for (const c of leased.snapshots) keep.chains.add(c);
  return keep;
}

/** The selection of a gc over `idx` (read, nothing deleted). */
export async function pruneSelection(
  store: Store,
  cache: BuildCache,
  snapshots: () => Promise<Snapshotter>,
  opts: { all?: boolean; index?: ImageIndex } = {},
): Promise<PruneSelection> {
  const keep = await kept(store, cache, opts.index ?? (await store.readIndex()), Boolean(opts.all));
  const sel: PruneSelection = {
    blobs: (await store.blobs.list()).filter((b) => !keep.blobs.has(b)),
    snapshots: [],
    cacheRecords: opts.all ? await cache.keys() : [],
  };
  let left = await (await snapshots()).walk();
  for (let round = removableLeaves(left, keep.chains); round.length; round = removableLeaves(left, keep.chains)) {
    const gone = new Set(round.map((s) => s.key));
    sel.snapshots.push(...gone);
    left = left.filter((s) => !gone.has(s.key));
  }
  return sel;
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
    const sel = await pruneSelection(store, cache, snapshots, { index: idx });
    const keepChains = new Set<string>();
    for (const b of sel.blobs) {
      res.bytesFreed += await store.blobs.size(b).catch(() => 0);
      await store.blobs.remove(b);
      res.blobsRemoved++;
    }
    // Removed leaves first, each round on a fresh walk (a parent is refused while a child lives,
    // and a build may have stacked a step on one since the selection).
    const selected = new Set(sel.snapshots);
    let progress = true;
    while (progress) {
      progress = false;
      const snaps = await snapshots();
      const all = await snaps.walk();
      for (const s of all) if (!selected.has(s.key)) keepChains.add(s.key);
      for (const s of removableLeaves(all, keepChains)) {
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
