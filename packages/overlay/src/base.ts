/**
 * What both drivers share: key bookkeeping, parent rules and errors, in containerd's semantics.
 * A driver supplies only how a snapshot's directories are made and which mounts describe it.
 */
import { promises as fs, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { debuglog } from 'node:util';
import { VlabError } from '@vlab/errors';
import {
  VOLATILE_LABEL,
  type Mount,
  type Snapshotter,
  type SnapshotInfo,
  type SnapshotKind,
  type Usage,
  type WhiteoutMode,
  type DiffSourceInfo,
} from './types.ts';
import { MetaStore, isVolatile, type Record_ } from './store.ts';
import { dirUsage } from './usage.ts';
import { syncFilesystem } from './sys.ts';

const log = debuglog('vlab');

export abstract class BaseSnapshotter implements Snapshotter {
  abstract readonly driver: 'overlay' | 'native';
  constructor(protected store: MetaStore) {}

  /** Create the on-disk dirs of a new snapshot `id` (parent chain given as ids, nearest first). */
  protected abstract createDirs(id: string, kind: SnapshotKind, parentIds: string[]): Promise<void>;
  /** Mounts describing snapshot `id` with parent chain `parentIds` (nearest first). */
  protected abstract mountsOf(id: string, kind: SnapshotKind, parentIds: string[]): Mount[];
  abstract writableDir(key: string): Promise<{ dir: string; whiteouts: WhiteoutMode }>;
  abstract diffSource(key: string): Promise<DiffSourceInfo>;

  /** A pure function of the id, kept: a step asks it for every layer below (two path.joins each). */
  fsDir(id: string): string {
    let dir = this.fsDirs.get(id);
    if (dir === undefined) {
      if (this.fsDirs.size >= 1 << 14) this.fsDirs.clear();
      this.fsDirs.set(id, (dir = path.join(this.store.dirOf(id), 'fs')));
    }
    return dir;
  }
  private readonly fsDirs = new Map<string, string>();

  /** `need` after picking up changes other processes made. */
  protected async fresh(key: string): Promise<Record_> {
    await this.store.refresh();
    return this.need(key);
  }

  /** The record of active snapshot `key`, fresh from disk; E_SNAPSHOT_KIND when it is not active. */
  protected async activeRecord(key: string, action: string): Promise<Record_> {
    const r = await this.fresh(key);
    if (r.kind !== 'active')
      throw new VlabError('E_SNAPSHOT_KIND', `cannot ${action} ${key}: it is ${r.kind}, not active`, {
        details: { key },
      });
    return r;
  }

  protected need(key: string): Record_ {
    const r = this.store.get(key);
    if (!r) throw new VlabError('E_SNAPSHOT_NOT_FOUND', `snapshot ${key} not found`, { details: { key } });
    return r;
  }

  protected parentIds(parent: string | undefined): string[] {
    return this.store.chain(parent).map((k) => this.store.get(k)!.id);
  }

  private async create(
    kind: SnapshotKind,
    key: string,
    parent: string | undefined,
    labels: Record<string, string> = {},
  ): Promise<Mount[]> {
    if (!key) throw new VlabError('E_SNAPSHOT_KEY', 'snapshot key must not be empty');
    const volatile = labels[VOLATILE_LABEL] === 'true';
    // a durable record never stands on a volatile commit (it would lose its parent in a crash);
    // checked again under the lock: another process may have committed its chain volatile since
    for (let attempt = 0; ; attempt++) {
      if (!volatile && parent && (await this.volatileChain(parent)).length) await this.settle();
      const mounts = await this.createOnce(kind, key, parent, labels, volatile, attempt < 3);
      if (mounts) return mounts;
    }
  }

  /** `create` under the lock; undefined (nothing done) when `retry` and the parent chain became volatile. */
  private createOnce(
    kind: SnapshotKind,
    key: string,
    parent: string | undefined,
    labels: Record<string, string>,
    volatile: boolean,
    retry: boolean,
  ): Promise<Mount[] | undefined> {
    return this.store.update(async (snaps) => {
      if (this.store.get(key))
        throw new VlabError('E_SNAPSHOT_EXISTS', `snapshot ${key} already exists`, { details: { key } });
      if (parent) {
        const p = this.need(parent);
        if (p.kind !== 'committed') {
          throw new VlabError(
            'E_SNAPSHOT_KIND',
            `parent ${parent} is ${p.kind}; only committed snapshots can be parents`,
            { details: { parent } },
          );
        }
        if (!volatile && this.volatileChainNow(parent).length) {
          if (retry) return undefined;
          throw new VlabError('E_SNAPSHOT_KIND', `parent ${parent} keeps being committed volatile; retry`, {
            details: { parent },
          });
        }
      }
      const id = this.store.allocId(volatile);
      const pids = this.parentIds(parent);
      // dirs first, metadata after: a crash in between leaves an unnamed dir that open() removes
      // (synchronous: µs each, on the critical path of every step)
      rmSync(this.store.dirOf(id), { recursive: true, force: true });
      mkdirSync(this.store.dirOf(id), { recursive: true, mode: 0o700 });
      await this.createDirs(id, kind, pids);
      snaps[key] = { id, kind, parent: parent || undefined, labels: { ...labels }, created: new Date().toISOString() };
      return this.mountsOf(id, kind, pids);
    });
  }

  prepare(key: string, parent?: string, labels?: Record<string, string>): Promise<Mount[]> {
    return this.create('active', key, parent, labels);
  }

  view(key: string, parent?: string, labels?: Record<string, string>): Promise<Mount[]> {
    return this.create('view', key, parent, labels);
  }

  async commit(name: string, key: string, labels?: Record<string, string>): Promise<void> {
    const volatile = labels?.[VOLATILE_LABEL] === 'true';
    // The content is durable before a name points at it: a step's upper is mounted `volatile` and
    // an unpack writes without fsyncs, and a named snapshot is a lower of every later step. One
    // syncfs, as overlay's own sync on unmount would do: fsyncs of each file and dir a step wrote
    // cost more (steps20 cold 0.83-0.93 s against 0.55 s here: a journal commit each). A volatile
    // commit's name lasts only as long as the page cache that holds its content (this boot): no
    // sync now, `settle()` does one for all of them.
    if (!volatile) await this.syncOrDrop(this.store.dirOf(this.need(key).id));
    await this.store.update(async (snaps) => {
      const r = this.need(key);
      if (r.kind !== 'active')
        throw new VlabError('E_SNAPSHOT_KIND', `cannot commit ${key}: it is ${r.kind}, not active`, {
          details: { key },
        });
      if (this.store.get(name))
        throw new VlabError('E_SNAPSHOT_EXISTS', `snapshot ${name} already exists`, { details: { key: name } });
      delete snaps[key];
      const { [VOLATILE_LABEL]: _volatile, ...kept } = { ...r.labels, ...labels };
      snaps[name] = {
        ...r,
        kind: 'committed',
        labels: volatile ? { ...kept, [VOLATILE_LABEL]: 'true' } : kept,
        created: new Date().toISOString(),
      };
      // a durable commit on volatile commits: the syncfs above wrote their content too (they were
      // committed before this snapshot was prepared on them), so their records become durable with it
      if (!volatile) for (const k of this.volatileChainNow(r.parent)) snaps[k] = durableRecord(snaps[k]!);
    });
    // the work dir is of no use to a committed snapshot (best effort, after the metadata; a few
    // empty dirs: synchronous)
    try {
      rmSync(path.join(this.store.dirOf(this.store.get(name)!.id), 'work'), { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }

  async settle(): Promise<void> {
    await this.store.refresh();
    // only those committed before the syncfs: their content is on disk when it returns
    const pending = this.volatileCommitsNow();
    if (!pending.length) return;
    await this.syncOrDrop(this.store.snapshotsDir());
    await this.store.update((snaps) => {
      // the same record (key and id): not one removed and committed again under its key meanwhile,
      // whose content the syncfs may not have seen
      for (const { key, id } of pending) {
        const r = this.store.get(key);
        if (r && r.id === id && r.kind === 'committed' && isVolatile(r)) snaps[key] = durableRecord(r);
      }
    });
  }

  /** Whether the chain from `key` down holds one of `keys`. */
  private standsOn(key: string | undefined, keys: Set<string>): boolean {
    for (let k = key; k; k = this.store.get(k)?.parent) if (keys.has(k)) return true;
    return false;
  }

  /** The volatile commits (not temporaries) as this process last read them, with their ids. */
  private volatileCommitsNow(): { key: string; id: string }[] {
    return this.store
      .all()
      .filter((i) => i.kind === 'committed' && isVolatile(this.store.get(i.key)!))
      .map((i) => ({ key: i.key, id: this.store.get(i.key)!.id }));
  }

  /**
   * One syncfs; when it fails, every volatile commit is forgotten, with the volatile snapshots on
   * it, before the error is thrown: the kernel reports a writeback error once (sys.ts), so a later
   * syncfs would pass and a later settle or durable commit would name lost content durable. They
   * are caches of durable layer blobs: a later step unpacks its layer again. A running step on one
   * of them fails its commit (its record is gone with them).
   */
  private async syncOrDrop(file: string): Promise<void> {
    try {
      await syncFilesystem(file);
    } catch (e) {
      const dropped = await this.store
        .update((snaps) => {
          const gone = new Set(this.volatileCommitsNow().map((c) => c.key));
          const out = [...gone];
          for (const k of Object.keys(snaps)) {
            if (gone.has(k)) continue;
            const r = this.store.get(k);
            if (r && isVolatile(r) && this.standsOn(r.parent, gone)) out.push(k);
          }
          const ids = out.map((k) => this.store.get(k)!.id);
          for (const k of out) delete snaps[k];
          return { keys: out, ids };
        })
        .catch((e2: unknown) => ({ keys: [`(not dropped: ${(e2 as Error).message})`], ids: [] }));
      if (dropped.keys.length)
        log('%s: dropped %d volatile snapshots: %s', (e as Error).message, dropped.keys.length, dropped.keys.join(' '));
      // metadata first, then the dirs (as remove does); a step with one mounted fails its commit
      for (const id of dropped.ids) await fs.rm(this.store.dirOf(id), { recursive: true, force: true }).catch(() => {});
      throw e;
    }
  }

  /** The volatile commits in the chain from `key` down (after picking up other processes' changes). */
  private async volatileChain(key: string): Promise<string[]> {
    await this.store.refresh();
    return this.volatileChainNow(key);
  }

  private volatileChainNow(key: string | undefined): string[] {
    return this.store.chain(key).filter((k) => isVolatile(this.store.get(k)!));
  }

  async mounts(key: string): Promise<Mount[]> {
    await this.store.refresh();
    const r = this.need(key);
    if (r.kind === 'committed') {
      // containerd gives a read-only view of a committed snapshot's own content
      return [{ type: 'bind', source: this.fsDir(r.id), options: ['ro', 'rbind'] }];
    }
    return this.mountsOf(r.id, r.kind, this.parentIds(r.parent));
  }

  async remove(key: string): Promise<void> {
    const id = await this.store.update((snaps) => {
      const r = this.store.get(key);
      if (!r) return undefined;
      if (this.store.hasChildren(key))
        throw new VlabError('E_SNAPSHOT_IN_USE', `snapshot ${key} has children; remove them first`, {
          details: { key },
        });
      delete snaps[key];
      return r.id;
    });
    // metadata first, then the dir: a crash in between leaves an orphan that open() removes
    if (id) await fs.rm(this.store.dirOf(id), { recursive: true, force: true });
  }

  /** Bytes (allocated blocks) and inodes of the snapshot's own content (not its parents'). */
  async usage(key: string): Promise<Usage> {
    await this.store.refresh();
    return dirUsage(this.fsDir(this.need(key).id));
  }

  async stat(key: string): Promise<SnapshotInfo | undefined> {
    await this.store.refresh();
    return this.store.info(key);
  }

  async walk(): Promise<SnapshotInfo[]> {
    await this.store.refresh();
    return this.store.all();
  }
}

/** `r` without the volatile label: it goes to the durable document at the next write. */
function durableRecord(r: Record_): Record_ {
  const { [VOLATILE_LABEL]: _volatile, ...labels } = r.labels;
  return { ...r, labels };
}
