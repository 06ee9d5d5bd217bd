/**
 * Leases (containerd's model): a running build holds the blobs and snapshots it made or uses, and
 * `gc` keeps everything a live lease names. A lease is a file `leases/<pid>-<random>` of lines
 * `blob <digest>` / `snapshot <key>`, appended as the build goes; a dead pid's lease counts for
 * nothing and is removed by the next gc or store open.
 *
 * The protocol with gc (which runs under `gc.lock` from start to end):
 * - hold: append the names, then wait until no gc runs. A gc that starts after the append reads
 *   it; one that was running when we looked is waited for. So once `hold` returns, no gc deletes
 *   the names, and the caller checks they still exist (a gc before the append may have taken them).
 * - new content: hold its name before it gets it (before the rename of a blob, the commit of a
 *   snapshot), so gc never sees it unheld.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { withFileLock } from '@vlab/overlay';
import { chainIds } from '../image/chain.ts';
import { deadOwner, ownerOf, pidAlive } from './owner.ts';
import { storeWriteError } from './space.ts';

export interface Held {
  blobs: Set<string>;
  snapshots: Set<string>;
}

type Items = { blobs?: Iterable<string>; snapshots?: Iterable<string> };

const GC_LOCK = 'gc.lock';
const LEASES = 'leases';

/** Lease files still on disk when this process exits normally are removed then. */
const liveFiles = new Set<string>();
let exitHook = false;

export class Lease {
  private readonly file: string;
  private readonly held = new Set<string>();
  /** Lines whose append has not landed yet, to the append writing them. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly root: string) {
    this.file = path.join(root, LEASES, `${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * Hold blobs and snapshot keys for as long as this lease lives (see the protocol above).
   * Returns the names it did not hold yet: only those need the caller's check.
   */
  async hold(items: Items): Promise<{ blobs: string[]; snapshots: string[] }> {
    const fresh = { blobs: [] as string[], snapshots: [] as string[] };
    const lines: string[] = [];
    const others = new Set<Promise<void>>();
    const add = (kind: 'blob' | 'snapshot', name: string) => {
      const line = `${kind} ${name}`;
      if (!this.held.has(line)) {
        this.held.add(line);
        lines.push(line);
        fresh[kind === 'blob' ? 'blobs' : 'snapshots'].push(name);
      } else {
        const pending = this.inFlight.get(line);
        if (pending) others.add(pending);
      }
    };
    for (const b of items.blobs ?? []) add('blob', b);
    for (const s of items.snapshots ?? []) add('snapshot', s);
    const mine = lines.length ? this.append(lines) : undefined;
    // names another hold is still writing are held only once that write lands (and not if it fails)
    await Promise.all([mine, ...others]);
    if (!lines.length && !others.size) return fresh;
    await waitForGc(this.root);
    return fresh;
  }

  private append(lines: string[]): Promise<void> {
    const write = (async () => {
      if (!liveFiles.has(this.file)) {
        await mkdirOnce(path.dirname(this.file));
        liveFiles.add(this.file);
        if (!exitHook) {
          exitHook = true;
          process.on('exit', () => liveFiles.forEach((f) => fs.rmSync(f, { force: true })));
        }
      }
      // the leading newline ends any fragment a failed append left (a short write before ENOSPC),
      // so this first name never runs on from it; liveLeases skips the empty lines
      await fsp.appendFile(this.file, `\n${lines.join('\n')}\n`);
    })().catch((e: unknown) => {
      // not held after all (a later hold writes them again); a full disk is E_NO_SPACE
      for (const l of lines) this.held.delete(l);
      throw storeWriteError(this.root, e);
    });
    const done = write.finally(() => {
      for (const l of lines) if (this.inFlight.get(l) === done) this.inFlight.delete(l);
    });
    for (const l of lines) this.inFlight.set(l, done);
    return done;
  }

  /** Layers and the snapshots of their chain (ChainIDs). */
  holdLayers(layers: { digest: string; diffId: string }[]): Promise<{ blobs: string[]; snapshots: string[] }> {
    return this.hold({ blobs: layers.map((l) => l.digest), snapshots: chainIds(layers.map((l) => l.diffId)) });
  }

  /** Names found missing after a hold: the next hold checks them again (the file may keep them). */
  forget(items: Items): void {
    for (const b of items.blobs ?? []) this.held.delete(`blob ${b}`);
    for (const s of items.snapshots ?? []) this.held.delete(`snapshot ${s}`);
  }

  /** Drop the lease: what only it held is gc's again. Idempotent. */
  async release(): Promise<void> {
    this.held.clear();
    liveFiles.delete(this.file);
    await fsp.rm(this.file, { force: true });
  }
}

/** mkdir of one level first: a recursive mkdir reports ENOSPC as ENOENT (and so not as a full disk). */
async function mkdirOnce(dir: string): Promise<void> {
  await fsp.mkdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EEXIST') return undefined;
    if (e.code === 'ENOENT') return fsp.mkdir(dir, { recursive: true });
    throw e;
  });
}

/** Run `fn` as the store's one gc: holds made meanwhile wait for it to end. */
export function withGcLock<T>(root: string, fn: () => Promise<T>): Promise<T> {
  return withFileLock(path.join(root, GC_LOCK), fn, 10 * 60_000);
}

/** What the live leases hold; dead pids' lease files are removed on the way. */
export async function liveLeases(root: string): Promise<Held> {
  const held: Held = { blobs: new Set(), snapshots: new Set() };
  const dir = path.join(root, LEASES);
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (staleLease(name)) {
      await fsp.rm(path.join(dir, name), { force: true });
      continue;
    }
    const text = await fsp.readFile(path.join(dir, name), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const sp = line.indexOf(' ');
      const kind = line.slice(0, sp);
      if (kind === 'blob') held.blobs.add(line.slice(sp + 1));
      else if (kind === 'snapshot') held.snapshots.add(line.slice(sp + 1));
    }
  }
  return held;
}

/** Lease files of dead pids (for fsck), with their paths. */
export async function staleLeases(root: string): Promise<string[]> {
  const dir = path.join(root, LEASES);
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter(staleLease).map((n) => path.join(dir, n));
}

/** A lease file whose owner is dead (or that names none): it holds nothing. */
function staleLease(name: string): boolean {
  return ownerOf(name) === undefined || deadOwner(name);
}

/** Returns once no live process holds `gc.lock` (a dead holder's lock is as good as none). */
async function waitForGc(root: string): Promise<void> {
  const lock = path.join(root, GC_LOCK);
  const started = Date.now();
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    const text = await fsp
      .readFile(lock, 'utf8')
      .catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : ''));
    if (text === undefined) return;
    const pid = Number(text);
    if (pid && !pidAlive(pid)) return;
    // An empty file is a lock being taken right now: wait, unless it stays empty (owner died).
    if (!pid && Date.now() - ((await fsp.stat(lock).catch(() => undefined))?.mtimeMs ?? 0) > 10_000) return;
    if (Date.now() - started > 10 * 60_000)
      throw new VlabError(
        'E_LOCK_TIMEOUT',
        `a garbage collection holds ${lock} for over 10 minutes; if no "vbuild prune" runs, remove the file`,
      );
    await new Promise((r) => setTimeout(r, delay));
  }
}
