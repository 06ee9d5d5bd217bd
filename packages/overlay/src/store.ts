/**
 * Snapshot metadata store: one JSON document, replaced atomically and durably (meta-files.ts), so
 * the parent chains on disk are consistent after a crash at any point. Directory work is ordered
 * around it: created before the metadata names them, deleted after the metadata forgot them;
 * `open()` removes whatever a crash left unnamed. Keys (may be long, e.g. `sha256:<hex>`) map to
 * short ids used on disk.
 *
 * Records labelled VOLATILE_LABEL (a build's temporaries, and its steps' volatile commits) live in a second
 * document, metadata.volatile.json, written without fsyncs: a step's prepare and the removal of its
 * temporary wait for no disk under the lock that every step of every build takes (4 builds at
 * once queued on those fsyncs: bench/README.md, "parallel4: volatile temporaries"). That document
 * carries the boot id; one of another boot, or unreadable (a crash during its write-back), counts
 * as empty: its owners died with the machine. A volatile record whose key or id a durable record
 * has (a commit killed between its two writes, the durable one first) is ignored: the durable
 * record wins, and a stale temporary's removal never reaches the committed snapshot's directory.
 *
 * Several processes may share a root (two builds on one store): every mutation runs under a
 * lock file and starts by re-reading the documents, and reads reload them when they changed on disk.
 */
import { promises as fs, statSync } from 'node:fs';
import * as path from 'node:path';
import { debuglog } from 'node:util';
import { VlabError } from '@vlab/errors';
import { VOLATILE_LABEL, type SnapshotInfo, type SnapshotKind } from './types.ts';
import { withFileLock } from './lock.ts';
import { bootId, isMetadataTemp, readIfChanged, replaceFile, syncDir } from './meta-files.ts';

const log = debuglog('vlab');

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

interface VolatileDoc extends Doc {
  boot: string;
}

const emptyDoc = (): Doc => ({ version: 1, nextId: 1, snapshots: {} });
const emptyVolatile = (): VolatileDoc => ({ version: 1, boot: bootId(), nextId: 1, snapshots: {} });

/** Whether record `r` belongs in the volatile document (a temporary, or a volatile commit). */
export const isVolatile = (r: Record_) => r.labels[VOLATILE_LABEL] === 'true';

export class MetaStore {
  private doc: Doc = emptyDoc();
  private vol: VolatileDoc = emptyVolatile();
  /** Both documents' records, durable over volatile: what every lookup and update sees. */
  private snaps: Record<string, Record_> = {};
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Each document's stamp and text as last read or written ('' for none); the durable one's
   * counter then (undefined before either: the first update writes the document).
   */
  private seen: { doc: string; docText: string; docNextId?: number; vol: string; volRead: string; volText: string } = {
    doc: '',
    docText: '',
    vol: '',
    volRead: '',
    volText: '',
  };
  readonly file: string;
  readonly volatileFile: string;
  constructor(readonly root: string) {
    this.file = path.join(root, 'metadata.json');
    this.volatileFile = path.join(root, 'metadata.volatile.json');
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

  /**
   * A name of this store's snapshot dir that no other dir gets in this boot (its inode and birth
   * time): with a snapshot's id (never given twice: the counters never go back) it names that
   * snapshot's content, also across a store removed and made again at the same path. Undefined
   * where the filesystem keeps no birth time.
   */
  dirIdentity(): string | undefined {
    const st = statSync(this.snapshotsDir(), { bigint: true });
    return st.birthtimeNs > 0n ? `${st.ino}:${st.birthtimeNs}` : undefined;
  }

  /** Load (or create) the store and remove what an interrupted operation left behind. */
  async open(): Promise<void> {
    await fs.mkdir(this.snapshotsDir(), { recursive: true });
    // under the lock: another process's half-made snapshot is only unnamed while it holds it
    await withFileLock(this.lockFile(), async () => {
      await this.refresh();
      for (const f of await fs.readdir(this.root)) {
        if (isMetadataTemp(f)) await fs.rm(path.join(this.root, f), { force: true });
      }
      const known = new Set(Object.values(this.snaps).map((r) => r.id));
      for (const d of await fs.readdir(this.snapshotsDir())) {
        if (!known.has(d)) await fs.rm(this.dirOf(d), { recursive: true, force: true });
      }
    });
  }

  /** Re-read the documents another process replaced. */
  async refresh(): Promise<void> {
    let changed = false;
    const d = readIfChanged(this.file, this.seen.doc);
    if (d) {
      try {
        this.doc = JSON.parse(d.text) as Doc;
      } catch (e) {
        throw new VlabError('E_SNAPSHOT_METADATA', `cannot read snapshot metadata ${this.file}`, { cause: e });
      }
      Object.assign(this.seen, { doc: d.stamp, docText: d.text, docNextId: this.doc.nextId });
      changed = true;
    }
    // Read each time (a few temporaries: µs), and compared by text, not by stamp: its writes are
    // µs apart and not synced, and ext4 gives the replacement the inode the rename freed, so on a
    // kernel with coarse mtimes two writes can leave the stamp another process saw last.
    const v = readIfChanged(this.volatileFile, '');
    if (v && v.text !== this.seen.volRead) {
      let vol: VolatileDoc | undefined;
      try {
        vol = JSON.parse(v.text) as VolatileDoc;
      } catch {
        log('snapshot metadata: %s unreadable (written back only in part before a crash): empty', this.volatileFile);
      }
      if (vol && vol.boot !== bootId()) vol = undefined; // from before a reboot: its owners are gone
      this.vol = vol ?? emptyVolatile();
      // an empty one replaces it at the next write (its text is not what we would write)
      Object.assign(this.seen, { vol: v.stamp, volRead: v.text, volText: vol ? v.text : '' });
      changed = true;
    }
    if (changed) this.merge();
  }

  private merge(): void {
    const ids = new Set(Object.values(this.doc.snapshots).map((r) => r.id));
    const vol = Object.entries(this.vol.snapshots).filter(([, r]) => !ids.has(r.id));
    this.snaps = { ...Object.fromEntries(vol), ...this.doc.snapshots };
  }

  get(key: string): Record_ | undefined {
    return Object.prototype.hasOwnProperty.call(this.snaps, key) ? this.snaps[key] : undefined;
  }

  info(key: string): SnapshotInfo | undefined {
    const r = this.get(key);
    if (!r) return undefined;
    return { key, kind: r.kind, parent: r.parent, labels: { ...r.labels }, created: r.created };
  }

  all(): SnapshotInfo[] {
    return Object.keys(this.snaps)
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
    return Object.values(this.snaps).some((r) => r.parent === key);
  }

  /** A new snapshot's id (short: committed ids are overlay lowerdirs), from its document's counter. */
  allocId(volatile = false): string {
    if (!volatile) return (this.doc.nextId++).toString(36);
    // a volatile counter starts again after a reboot: skip the ids its old records kept once committed
    const used = new Set(Object.values(this.snaps).map((r) => r.id));
    let id;
    do id = `v${(this.vol.nextId++).toString(36)}`;
    while (used.has(id));
    return id;
  }

  /**
   * Serialise mutations (in-process) and persist the documents atomically after `fn`; durably,
   * when the durable one changed, before this returns. The directory's fsync (the rename's) runs
   * after the lock is let go: the next writer then waits for one disk flush, not two. A writer
   * that read our document meanwhile writes a superset of it, its data flushed before its rename,
   * so whichever entry a crash keeps names a whole, consistent document.
   */
  update<T>(fn: (snapshots: Record<string, Record_>) => T | Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      let renamed = false;
      const r = await withFileLock(this.lockFile(), async () => {
        await this.refresh();
        const out = await this.mutate(fn);
        renamed = out.durable;
        return out.r;
      });
      if (renamed) await syncDir(this.root);
      return r;
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** `update` for a caller that already holds the lock file (fsck's repair). */
  async replace(fn: (snapshots: Record<string, Record_>) => void): Promise<void> {
    await this.refresh();
    if ((await this.mutate(fn)).durable) await syncDir(this.root);
  }

  private async mutate<T>(
    fn: (snapshots: Record<string, Record_>) => T | Promise<T>,
  ): Promise<{ r: T; durable: boolean }> {
    // The keys `fn` sets or deletes: an update that touches no durable record rewrites only the
    // volatile document, from its few records, without a pass over the whole store.
    const touched = new Set<string>();
    const view = new Proxy(this.snaps, {
      set: (t, k, v) => (typeof k === 'string' && touched.add(k), Reflect.set(t, k, v)),
      defineProperty: (t, k, d) => (typeof k === 'string' && touched.add(k), Reflect.defineProperty(t, k, d)),
      deleteProperty: (t, k) => (typeof k === 'string' && touched.add(k), Reflect.deleteProperty(t, k)),
    });
    try {
      const r = await fn(view);
      return { r, durable: await this.persist(touched) };
    } catch (e) {
      // Back to the documents as last read or written: what memory held when `fn` began (update
      // and replace refresh first, and only fn and persist change them). Parsed again here, on the
      // rare failure, instead of a copy of both taken before every update (O(store) each time).
      // The id counters never go back: an id handed out may have a dir already.
      const counters = { doc: this.doc.nextId, vol: this.vol.nextId };
      this.doc = this.seen.docText ? (JSON.parse(this.seen.docText) as Doc) : emptyDoc();
      this.vol = this.seen.volText ? (JSON.parse(this.seen.volText) as VolatileDoc) : emptyVolatile();
      this.doc.nextId = Math.max(this.doc.nextId, counters.doc);
      this.vol.nextId = Math.max(this.vol.nextId, counters.vol);
      this.merge();
      throw e;
    }
  }

  /**
   * Split the records into their documents and write each that changed: the durable one first (a
   * commit names its snapshot there before its volatile record goes), its data flushed before
   * its rename. Whether it wrote the durable one (its directory is then to be synced).
   */
  private async persist(touched: Set<string>): Promise<boolean> {
    const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
    const durableTouched =
      this.doc.nextId !== this.seen.docNextId ||
      [...touched].some((k) => has(this.doc.snapshots, k) || (has(this.snaps, k) && !isVolatile(this.snaps[k]!)));
    const doc: Doc = durableTouched ? { ...this.doc, snapshots: {} } : this.doc;
    const vol: VolatileDoc = { ...this.vol, boot: bootId(), snapshots: {} };
    if (durableTouched) {
      for (const k in this.snaps) {
        const r = this.snaps[k]!;
        (isVolatile(r) ? vol : doc).snapshots[k] = r;
      }
    } else {
      // the volatile records the view showed (not those a durable one hides), then the touched ones
      for (const k in this.vol.snapshots)
        if (!touched.has(k) && this.snaps[k] === this.vol.snapshots[k]) vol.snapshots[k] = this.vol.snapshots[k]!;
      for (const k of touched) if (has(this.snaps, k)) vol.snapshots[k] = this.snaps[k]!;
    }
    // The durable document is written again only when one of its records or its counter changed.
    // Updates replace a record, never edit it in place, so a change is a touched key or another
    // object under a key: compared by identity, not by text (stringifying and splitting every record
    // on every update made each step slower as the store grew: about 12 ms a step at 700 snapshots).
    const same =
      !durableTouched || (doc.nextId === this.seen.docNextId && sameRecords(doc.snapshots, this.doc.snapshots));
    const docText = same ? this.seen.docText : JSON.stringify(doc, null, 1);
    const volText = JSON.stringify(vol, null, 1);
    const durable = docText !== this.seen.docText;
    if (durable) {
      const stamp = await replaceFile(this.file, docText, true);
      this.doc = doc;
      Object.assign(this.seen, { doc: stamp, docText, docNextId: doc.nextId });
    }
    let volStale = false;
    if (volText !== this.seen.volText) {
      try {
        const stamp = await replaceFile(this.volatileFile, volText, false);
        this.vol = vol;
        Object.assign(this.seen, { vol: stamp, volRead: volText, volText });
      } catch (e) {
        // After a durable write the update holds: the volatile records it replaced are hidden by
        // the durable ones (merge) and go with the next write.
        if (!durable) throw e;
        log('snapshot metadata: %s not written (%s): the next update writes it', this.volatileFile, e);
        volStale = true;
      }
    }
    // `snaps` is what the documents now hold, unless a volatile record shares its id with a
    // durable one (merge hides it): only then is it made again (O(store)).
    // After a volatile write that failed, the view goes back to what the documents hold (as
    // `this.vol` does), or the next update would write a volatile document short of its records.
    if (!volStale && !this.volatileIdsShadowed()) return durable;
    this.merge();
    return durable;
  }

  /** Whether a volatile record's id is also a durable record's (without building the whole view). */
  private volatileIdsShadowed(): boolean {
    const ids = new Set<string>();
    for (const k in this.vol.snapshots) ids.add(this.vol.snapshots[k]!.id);
    if (!ids.size) return false;
    for (const k in this.doc.snapshots) if (ids.has(this.doc.snapshots[k]!.id)) return true;
    return false;
  }
}

/** Whether two record maps hold the same keys, each with the same record object. */
function sameRecords(a: Record<string, Record_>, b: Record<string, Record_>): boolean {
  let n = 0;
  for (const k in a) {
    if (a[k] !== b[k]) return false;
    n++;
  }
  for (const _ in b) n--;
  return n === 0;
}
