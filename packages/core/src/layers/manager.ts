import { randomBytes } from 'node:crypto';
import { mkdirSync, rmdirSync } from 'node:fs';
import { debuglog } from 'node:util';

/** `NODE_DEBUG=vlab` prints the time each phase of a step took. */
const log = debuglog('vlab');
import fsp from 'node:fs/promises';
import {
  apply,
  diff,
  mountAll,
  mountScratch,
  unmountAll,
  writeLayer,
  VOLATILE_LABEL,
  type SnapshotInfo,
  type Snapshotter,
} from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import type { Store } from '../store/store.ts';
import { MEDIA, type LayerRef } from '../image/types.ts';
import { chainIds } from '../image/chain.ts';
import { layerStream } from '../image/load.ts';
import { pidAlive } from '../store/owner.ts';
import { isNoSpace, nearlyFull, noSpaceError } from '../store/space.ts';
import { phases } from '../debug/phases.ts';

/** Key of a temporary snapshot: kind, owner pid (for crash recovery), random part. */
function tempKey(kind: 'step' | 'extract' | 'view'): string {
  return `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * A temporary's record needs no fsync (it dies with its build; a crash's leftovers are removed):
 * a step's prepare then waits for no disk under the snapshot store's lock (parallel4).
 */
const TEMP: Record<string, string> = { [VOLATILE_LABEL]: 'true' };

/** A step's mount dir, unmounted: empty, so one rmdir (µs); anything else the slow way. */
async function removeMountDir(target: string): Promise<void> {
  try {
    rmdirSync(target);
  } catch {
    await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Temporary snapshots (and views) whose owner pid is dead: what a killed build leaves. */
export function staleSnapshots(all: SnapshotInfo[]): string[] {
  return all
    .filter((info) => {
      const m = /^(?:step|extract|view)-(\d+)-[0-9a-f]+$/.exec(info.key);
      return m && info.kind !== 'committed' && !pidAlive(Number(m[1]));
    })
    .map((info) => info.key);
}

/** Unmount a dead owner's temporary snapshot, remove its mount dir, drop it. Never throws. */
export async function dropStaleSnapshot(store: Store, s: Snapshotter, key: string): Promise<void> {
  const target = store.path('tmp', `mnt-${key}`);
  await unmountAll(target).catch(() => undefined);
  await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined);
  await s.remove(key).catch(() => undefined);
}

/**
 * Layers ↔ snapshots. Committed snapshots are named by ChainID, so a layer stack is unpacked once
 * and reused as overlay lowerdirs by every image that shares it.
 */
export class LayerManager {
  private opened?: Promise<Snapshotter>;
  /**
   * Brings in the blobs of `layers` the store lacks, where it knows them (a build's registry
   * caches, fetched lazily); layers it does not know are left to the usual missing-blob errors.
   */
  fetchMissing?: (layers: LayerRef[]) => Promise<void>;

  /** The snapshotter is opened on first use: a fully cached build never probes or mounts. */
  constructor(
    readonly store: Store,
    private readonly openSnapshotter: () => Promise<Snapshotter>,
  ) {}

  snapshots(): Promise<Snapshotter> {
    return (this.opened ??= this.openSnapshotter().then(async (s) => {
      await this.recoverStale(s);
      return s;
    }));
  }

  /**
   * A build killed mid-step (SIGKILL, power loss) leaves its temporary snapshot and maybe its mount.
   * Temporary keys carry the owner's pid, so the next build can tell a dead owner's leftovers
   * from a concurrent build's live work, unmount them and drop them.
   */
  private async recoverStale(s: Snapshotter): Promise<void> {
    for (const key of staleSnapshots(await s.walk())) {
      await dropStaleSnapshot(this.store, s, key);
      log('removed stale snapshot %s of a dead build', key);
    }
  }

  /** Make sure the snapshot for `layers` exists (unpacking missing ones); its key, or undefined for no layers. */
  async ensureSnapshot(layers: LayerRef[]): Promise<string | undefined> {
    const snaps = await this.snapshots();
    const chain = chainIds(layers.map((l) => l.diffId));
    // held before they are looked at: a gc cannot take one between the stat and its use
    await this.store.lease.holdLayers(layers);
    let first = chain.length;
    while (first > 0 && !(await snaps.stat(chain[first - 1]!))) first--;
    await this.ensureBlobs(layers.slice(first));
    for (let i = first; i < chain.length; i++) {
      const active = tempKey('extract');
      await snaps.prepare(active, i > 0 ? chain[i - 1] : undefined, TEMP);
      try {
        const { dir, whiteouts } = await snaps.writableDir(active);
        const res = await apply(layerStream(this.store.blobs.open(layers[i]!.digest), layers[i]!.mediaType), dir, {
          whiteouts,
        });
        if (res.diffId !== layers[i]!.diffId) {
          throw new VlabError(
            'E_LAYER_DIGEST',
            `layer ${layers[i]!.digest} unpacked to diffID ${res.diffId}, expected ${layers[i]!.diffId}`,
          );
        }
        await this.commitOrDrop(chain[i]!, active);
      } catch (e) {
        await this.discard(snaps, active, e);
        throw e;
      }
    }
    return chain[chain.length - 1];
  }

  /** Make sure the blobs of `layers` are in the store where they can be fetched (see fetchMissing). */
  async ensureBlobs(layers: LayerRef[]): Promise<void> {
    if (this.fetchMissing && layers.length) await this.fetchMissing(layers);
  }

  /**
   * Run `work` with a writable snapshot on top of `layers` mounted at a temp dir; then turn what it
   * changed into a layer blob (one pass: diff → tar → hash → blob) and commit the snapshot.
   * Returns the new layer; a step that changed nothing gives an empty one (only the tar end), as
   * BuildKit's RUN and WORKDIR do (its 32-byte gzip layer, docker/buildx#1910).
   */
  async withWritableSnapshot(
    layers: LayerRef[],
    work: (rootfs: string) => Promise<void>,
    opts: { sourceDateEpoch?: number } = {},
  ): Promise<LayerRef> {
    const snaps = await this.snapshots();
    const phase = phases('layer');
    const parent = await this.ensureSnapshot(layers);
    const active = tempKey('step');
    const mounts = await snaps.prepare(active, parent, TEMP);
    phase('prepare');
    const target = this.store.path('tmp', `mnt-${active}`);
    try {
      mkdirSync(target, { recursive: true }); // µs: no thread-pool trip on every step
      // No sync at each unmount (overlay's, for the whole filesystem): the commit below writes the
      // upper back once, before the snapshot is named, and a failed step's upper is dropped.
      await mountScratch(mounts, target);
      phase('mount');
      try {
        await work(target);
      } catch (e) {
        // a RUN that filled the store's filesystem (its upper dir is there) fails inside first
        throw (await nearlyFull(this.store.root)) ? noSpaceError(this.store.root, e) : e;
      } finally {
        phase('work');
        await unmountAll(target);
        phase('unmount');
      }
      const blob = await this.store.blobs.create();
      let written;
      try {
        // unmounted for good: the copy-ups left out of the layer go from the snapshot too
        written = await writeLayer(diff(snaps, active, { ...opts, pruneCopiedUp: true }) as never, blob.stream);
      } catch (e) {
        await blob.abort();
        throw e;
      }
      phase('diff');
      const stored = await blob.commit(written.diffId);
      phase('blob-commit');
      const layer: LayerRef = {
        digest: stored.digest,
        diffId: written.diffId,
        size: stored.size,
        mediaType: MEDIA.layer,
      };
      const chain = chainIds([...layers.map((l) => l.diffId), layer.diffId]);
      // a volatile commit: no syncfs and no durable metadata write per step; `settle()` at the
      // build's end does one for all its steps (the layer blob itself is durable already)
      await this.commitOrDrop(chain[chain.length - 1]!, active, TEMP);
      phase('snapshot-commit');
      return layer;
    } catch (e) {
      await this.discard(snaps, active, e);
      throw e;
    } finally {
      await removeMountDir(target);
    }
  }

  /**
   * Make the snapshots this build's steps committed durable (one syncfs for all of them): they
   * outlive a reboot then. Before that they outlive a killed build, not a machine crash, after
   * which the next open forgets them and a step that needs one unpacks its layer again. A failed
   * syncfs forgets them at once (the snapshotter does) and is thrown. `NODE_DEBUG=vlab`: build.settle.
   */
  async settle(): Promise<void> {
    if (!this.opened) return;
    const phase = phases('build');
    try {
      await (await this.opened).settle();
    } finally {
      phase('settle');
    }
  }

  /** Read-only access to the tree of `layers` (for COPY --from); mounted for the callback's duration. */
  async withView<T>(layers: LayerRef[], work: (rootfs: string) => Promise<T>): Promise<T> {
    const snaps = await this.snapshots();
    const parent = await this.ensureSnapshot(layers);
    const key = tempKey('view');
    const mounts = await snaps.view(key, parent, TEMP);
    const target = this.store.path('tmp', `mnt-${key}`);
    try {
      await fsp.mkdir(target, { recursive: true });
      await mountAll(mounts, target);
      try {
        return await work(target);
      } finally {
        await unmountAll(target);
      }
    } finally {
      await snaps.remove(key).catch(() => undefined);
      await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /**
   * Drop a failed step's snapshot. When the disk is full even the metadata and lock writes of the
   * removal fail: the step's own files go first (nobody else uses an active snapshot).
   */
  private async discard(snaps: Snapshotter, active: string, e: unknown): Promise<void> {
    if (isNoSpace(e)) {
      const dir = await snaps.writableDir(active).then(
        (w) => w.dir,
        () => undefined,
      );
      for (const n of dir ? await fsp.readdir(dir).catch(() => [] as string[]) : [])
        await fsp.rm(`${dir}/${n}`, { recursive: true, force: true }).catch(() => undefined);
    }
    // A few tries: on a store that was just full, the removal's metadata write can still fail
    // once (seen under load in the disk-full test); a dead owner's leftover is swept later anyway.
    for (let attempt = 1; ; attempt++) {
      try {
        await snaps.remove(active);
        return;
      } catch (err) {
        log('dropping snapshot %s failed (try %d): %s', active, attempt, (err as Error).message);
        if (attempt === 3) return;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  /** Two builds may make the same chain at once: the second one's copy is dropped. */
  private async commitOrDrop(name: string, active: string, labels?: Record<string, string>): Promise<void> {
    const snaps = await this.snapshots();
    await this.store.lease.hold({ snapshots: [name] });
    if (await snaps.stat(name)) {
      await snaps.remove(active);
      return;
    }
    try {
      await snaps.commit(name, active, labels);
    } catch (e) {
      if (await snaps.stat(name)) await snaps.remove(active);
      else throw e;
    }
  }
}
