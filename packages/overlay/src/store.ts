/**
 * Snapshot metadata store: one JSON document, replaced atomically (write temp, fsync, rename,
 * fsync dir), so the parent chains on disk are consistent after a crash at any point. Directory
 * work is ordered around it: created before the metadata names them, deleted after the metadata
 * forgot them; `open()` removes whatever a crash left unnamed. Keys (may be long, e.g.
 * `sha256:<hex>`) map to short numeric ids used on disk.
 *
 * Several processes may share a root (two builds on one store): every mutation runs under a
 * lock file and starts by re-reading the document, and reads reload it when it changed on disk.
 */
import {
  promises as fs,
  closeSync,
  fsync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { promisify } from 'node:util';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import type { SnapshotInfo, SnapshotKind } from './types.ts';
import { withFileLock } from './lock.ts';

const fsyncAsync = promisify(fsync);

export interface Record_ {
  id: string;
  kind: SnapshotKind;
  parent?: string;
  labels: Record<string, string>;
  created: string;
}

interface Doc {
  version: 1;
  nextId: number;
  snapshots: Record<string, Record_>;
}

export class MetaStore {
  private doc: Doc = { version: 1, nextId: 1, snapshots: {} };
  private queue: Promise<unknown> = Promise.resolve();
  private stamp = '';
  readonly file: string;
  constructor(readonly root: string) {
    this.file = path.join(root, 'metadata.json');
  }

  snapshotsDir(): string {
    return path.join(this.root, 'snapshots');
  }

  lockFile(): string {
    return path.join(this.root, 'metadata.lock');
  }

  dirOf(id: string): string {
    return path.join(this.snapshotsDir(), id);
  }

  /** Load (or create) the store and remove what an interrupted operation left behind. */
  async open(): Promise<void> {
    await fs.mkdir(this.snapshotsDir(), { recursive: true });
    // under the lock: another process's half-made snapshot is only unnamed while it holds it
    await withFileLock(this.lockFile(), async () => {
      await this.refresh();
      for (const f of await fs.readdir(this.root)) {
        if (f.startsWith('metadata.json.tmp-')) await fs.rm(path.join(this.root, f), { force: true });
      }
      const known = new Set(Object.values(this.doc.snapshots).map((r) => r.id));
      for (const d of await fs.readdir(this.snapshotsDir())) {
        if (!known.has(d)) await fs.rm(this.dirOf(d), { recursive: true, force: true });
      }
    });
  }

  /** Re-read the document if another process replaced it. */
  async refresh(): Promise<void> {
    // Synchronous stat and read: µs each on the critical path of every step (a stat per snapshot
    // looked up), where a thread-pool trip under load is not.
    let st;
    try {
      st = statSync(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return;
    }
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (stamp === this.stamp) return;
    try {
      this.doc = JSON.parse(readFileSync(this.file, 'utf8')) as Doc;
    } catch (e) {
      throw new VlabError('E_SNAPSHOT_METADATA', `cannot read snapshot metadata ${this.file}`, { cause: e });
    }
    this.stamp = stamp;
  }

  get(key: string): Record_ | undefined {
    return Object.prototype.hasOwnProperty.call(this.doc.snapshots, key) ? this.doc.snapshots[key] : undefined;
  }

  info(key: string): SnapshotInfo | undefined {
    const r = this.get(key);
    if (!r) return undefined;
    return { key, kind: r.kind, parent: r.parent, labels: { ...r.labels }, created: r.created };
  }

  all(): SnapshotInfo[] {
    return Object.keys(this.doc.snapshots)
      .sort()
      .map((k) => this.info(k)!);
  }

  /** Keys from `key` down to the base, e.g. [key, parent, grandparent…]. */
  chain(key: string | undefined): string[] {
    const out: string[] = [];
    while (key) {
      const r = this.get(key);
      if (!r) throw new VlabError('E_SNAPSHOT_NOT_FOUND', `snapshot ${key} not found`);
      out.push(key);
      key = r.parent;
    }
    return out;
  }

  hasChildren(key: string): boolean {
    return Object.values(this.doc.snapshots).some((r) => r.parent === key);
  }

  allocId(): string {
    return (this.doc.nextId++).toString(36);
  }

  /** Serialise mutations (in-process) and persist the document atomically after `fn`. */
  update<T>(fn: (snapshots: Record<string, Record_>) => T | Promise<T>): Promise<T> {
    const next = this.queue.then(() =>
      withFileLock(this.lockFile(), async () => {
        await this.refresh();
        const before = JSON.stringify(this.doc);
        try {
          const r = await fn(this.doc.snapshots);
          await this.persist();
          return r;
        } catch (e) {
          this.doc = JSON.parse(before) as Doc;
          throw e;
        }
      }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** `update` for a caller that already holds the lock file (fsck's repair). */
  async replace(fn: (snapshots: Record<string, Record_>) => void): Promise<void> {
    await this.refresh();
    fn(this.doc.snapshots);
    await this.persist();
  }

  /** Only the two fsyncs go to the thread pool (they wait for the disk); the rest is µs, synchronous. */
  private async persist(): Promise<void> {
    const tmp = `${this.file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      try {
        writeFileSync(fd, JSON.stringify(this.doc, null, 1));
        await fsyncAsync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
    } catch (e) {
      // e.g. ENOSPC: no half-written temp file stays behind
      rmSync(tmp, { force: true });
      throw e;
    }
    const st = statSync(this.file);
    this.stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    const dir = openSync(this.root, 'r');
    try {
      await fsyncAsync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
