/**
 * fsck of a snapshot store: the metadata document against the snapshot dirs and the parent
 * chains. Runs under the store lock, so another process's half-made snapshot is never seen.
 * Repair drops what cannot be trusted: a record without its dir or with a broken parent chain
 * (and every snapshot stacked on it), dirs no record names, temp files of an interrupted write.
 * Snapshots are caches of layers: a dropped one is unpacked again from its layer when needed.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isVlabError } from '@vlab/errors';
import { MetaStore, type Record_ } from './store.ts';
import { isMetadataTemp } from './meta-files.ts';
import type { SnapshotInfo } from './types.ts';
import { withFileLock } from './lock.ts';

export type SnapshotProblemKind =
  | 'snapshot-metadata-invalid'
  | 'snapshot-dir-missing'
  | 'snapshot-orphan-dir'
  | 'snapshot-parent-missing'
  | 'snapshot-parent-invalid'
  | 'temp-orphan';

export interface SnapshotProblem {
  kind: SnapshotProblemKind;
  /** The snapshot key, or the path of a dir/file no record names. */
  target: string;
  message: string;
  /** Whether `repair` removes it (the metadata document itself is never rewritten from nothing). */
  repairable: boolean;
}

/**
 * Check (and with `repair`, fix) the snapshot store at `root` (createSnapshotter's root): the
 * problems found (before any repair) and the snapshots as they were. Creates nothing.
 */
export async function checkSnapshots(
  root: string,
  opts: { repair?: boolean } = {},
): Promise<{ problems: SnapshotProblem[]; snapshots: SnapshotInfo[] }> {
  const store = new MetaStore(root);
  if (
    !(await fs.stat(store.snapshotsDir()).then(
      () => true,
      () => false,
    ))
  )
    return { problems: [], snapshots: [] };
  return withFileLock(store.lockFile(), async () => {
    try {
      await store.refresh();
    } catch (e) {
      if (!isVlabError(e, 'E_SNAPSHOT_METADATA')) throw e;
      const message = `unreadable: ${String((e as Error).cause ?? e)}`;
      return {
        problems: [{ kind: 'snapshot-metadata-invalid', target: store.file, message, repairable: false }],
        snapshots: [],
      };
    }
    const snapshots = store.all();
    const problems = await findProblems(store);
    if (opts.repair && problems.some((p) => p.repairable)) await repair(store, problems);
    return { problems, snapshots };
  });
}

async function findProblems(store: MetaStore): Promise<SnapshotProblem[]> {
  const problems: SnapshotProblem[] = [];
  const infos = store.all();
  const ids = new Set<string>();
  for (const info of infos) {
    const r = store.get(info.key)!;
    ids.add(r.id);
    const ok = await fs.stat(path.join(store.dirOf(r.id), 'fs')).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (!ok)
      problems.push({
        kind: 'snapshot-dir-missing',
        target: info.key,
        message: `its directory ${path.join(store.dirOf(r.id), 'fs')} is missing`,
        repairable: true,
      });
    const broken = chainProblem(store, info.key);
    if (broken) problems.push({ ...broken, target: info.key, repairable: true });
  }
  for (const d of await fs.readdir(store.snapshotsDir()).catch(() => [] as string[])) {
    if (!ids.has(d))
      problems.push({
        kind: 'snapshot-orphan-dir',
        target: store.dirOf(d),
        message: 'no snapshot record names this directory',
        repairable: true,
      });
  }
  for (const f of await fs.readdir(store.root)) {
    if (isMetadataTemp(f))
      problems.push({
        kind: 'temp-orphan',
        target: path.join(store.root, f),
        message: 'temp file of an interrupted metadata write',
        repairable: true,
      });
  }
  return problems;
}

/** What is wrong with the parent chain of `key`: a missing or non-committed parent, or a cycle. */
function chainProblem(store: MetaStore, key: string): Pick<SnapshotProblem, 'kind' | 'message'> | undefined {
  const seen = new Set([key]);
  for (let r: Record_ | undefined = store.get(key); r?.parent;) {
    const parent: string = r.parent;
    const p = store.get(parent);
    if (!p) return { kind: 'snapshot-parent-missing', message: `parent ${parent} does not exist` };
    if (p.kind !== 'committed')
      return { kind: 'snapshot-parent-invalid', message: `parent ${parent} is ${p.kind}, not committed` };
    if (seen.has(parent)) return { kind: 'snapshot-parent-invalid', message: `parent chain loops at ${parent}` };
    seen.add(parent);
    r = p;
  }
  return undefined;
}

/** Drop the bad records and everything stacked on them, then the dirs and files no record names. */
async function repair(store: MetaStore, problems: SnapshotProblem[]): Promise<void> {
  const bad = new Set(
    problems.filter((p) => p.kind.startsWith('snapshot-') && p.kind !== 'snapshot-orphan-dir').map((p) => p.target),
  );
  const drop = new Set<string>();
  for (const info of store.all()) {
    // on a bad chain: itself or any ancestor is bad (walk stops at a loop or a missing parent)
    const seen = new Set<string>();
    for (let k: string | undefined = info.key; k && !seen.has(k); k = store.get(k)?.parent) {
      seen.add(k);
      if (bad.has(k)) drop.add(info.key);
    }
  }
  const dirs = [...drop].map((k) => store.dirOf(store.get(k)!.id));
  // Direct write: update() would take the lock we hold. Metadata first, then the dirs (open()'s order).
  await store.replace((snaps) => {
    for (const k of drop) delete snaps[k];
  });
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  for (const p of problems) {
    if (p.kind === 'snapshot-orphan-dir' || p.kind === 'temp-orphan')
      await fs.rm(p.target, { recursive: true, force: true });
  }
}
