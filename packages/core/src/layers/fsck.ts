/**
 * `vbuild fsck`: check a store end to end. Every blob's content against its digest (streamed);
 * every reference from index.json through manifests to configs and layers; the snapshot store
 * (metadata against dirs, parent chains: @vlab/overlay's checkSnapshots); cache records against
 * the blobs they name; containers (containers/fsck.ts); and what dead processes left (leftovers.ts). Reads only, unless `repair`:
 * then whatever is safe to remove is removed (corrupt blobs, records pointing at nothing, a dead
 * build's temp files, snapshots, mounts, cgroups and leases) and the store checked again.
 * A missing blob that an image needs cannot be repaired here: it stays a problem.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { checkSnapshots, createSnapshotter } from '@vlab/overlay';
import { DirBuildCache } from '../cache/cache.ts';
import type { ImageConfig, ImageIndex, Manifest } from '../image/types.ts';
import { findLeftovers } from '../store/leftovers.ts';
import { Store } from '../store/store.ts';
import { dropStaleSnapshot, staleSnapshots } from './manager.ts';
import { checkContainers, type ContainerFsckKind } from '../containers/fsck.ts';

/** Stable kind codes, one line each in the CLI's output. */
export type FsckKind =
  | 'blob-corrupt'
  | 'blob-missing'
  | 'index-invalid'
  | 'manifest-invalid'
  | 'cache-invalid'
  | 'cache-dangling'
  | 'snapshot-stale'
  | 'snapshot-metadata-invalid'
  | 'snapshot-dir-missing'
  | 'snapshot-orphan-dir'
  | 'snapshot-parent-missing'
  | 'snapshot-parent-invalid'
  | 'temp-orphan'
  | 'lease-stale'
  | 'lock-stale'
  | 'mount-orphan'
  | 'cgroup-orphan'
  | ContainerFsckKind;

export interface FsckProblem {
  kind: FsckKind;
  /** A digest, a snapshot key, a cache key, a path or a cgroup. */
  target: string;
  message: string;
  repairable: boolean;
}

export interface FsckReport {
  /** What is wrong (after `repair`: what is still wrong). Empty: the store is clean. */
  problems: FsckProblem[];
  /** What `repair` removed. */
  repaired: FsckProblem[];
}

type Found = FsckProblem & { fix?: () => Promise<void> };

export async function fsck(root: string, opts: { repair?: boolean } = {}): Promise<FsckReport> {
  if (!(await fsp.stat(path.join(root, 'blobs')).catch(() => undefined))?.isDirectory()) {
    throw new VlabError('E_STORE', `no store at ${root} (no blobs/ directory)`);
  }
  const repaired: FsckProblem[] = [];
  // A repair can uncover more (a removed corrupt layer leaves its cache records dangling).
  for (let pass = 0; ; pass++) {
    const found = await check(root);
    const fixable = found.filter((p) => p.fix);
    if (!opts.repair || !fixable.length || pass >= 3) return { problems: found.map(strip), repaired };
    for (const p of fixable) {
      await p.fix!();
      repaired.push(strip(p));
    }
  }
}

function strip({ fix: _fix, ...p }: Found): FsckProblem {
  return p;
}

async function check(root: string): Promise<Found[]> {
  const store = Store.at(root);
  const leftovers = await findLeftovers(root);
  // flat(), not push(...lists): a broken store can have more problems than a spread takes arguments
  const lists: Found[][] = [
    leftovers.map((l) => ({ kind: l.kind, target: l.target, message: l.message, repairable: !!l.fix, fix: l.fix })),
    await checkSnapshotStore(store),
    await checkBlobs(store),
    await checkReferences(store),
    await checkCache(store),
    (await checkContainers(root)).map((p) => ({ ...p, repairable: !!p.fix })),
  ];
  return lists.flat();
}

async function checkBlobs(store: Store): Promise<Found[]> {
  const out: Found[] = [];
  for (const d of await store.blobs.list()) {
    const h = createHash('sha256');
    try {
      for await (const chunk of fs.createReadStream(store.blobs.path(d))) h.update(chunk as Buffer);
    } catch {
      continue; // removed meanwhile
    }
    const actual = `sha256:${h.digest('hex')}`;
    if (actual !== d)
      out.push({
        kind: 'blob-corrupt',
        target: d,
        message: `content hashes to ${actual}`,
        repairable: true,
        fix: () => store.blobs.remove(d),
      });
  }
  return out;
}

/** index.json → manifests (or nested indexes) → config and layers: each must be a stored blob. */
async function checkReferences(store: Store): Promise<Found[]> {
  const out: Found[] = [];
  let idx: ImageIndex;
  try {
    idx = JSON.parse(await fsp.readFile(store.path('index.json'), 'utf8')) as ImageIndex;
    if (!Array.isArray(idx.manifests)) throw new Error('no manifests array');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    return [{ kind: 'index-invalid', target: 'index.json', message: (e as Error).message, repairable: false }];
  }
  const missing = (digest: string, what: string) =>
    out.push({ kind: 'blob-missing', target: digest, message: `${what} is not in the store`, repairable: false });
  const visit = async (digest: string, name: string, depth: number): Promise<void> => {
    if (!(await store.blobs.has(digest))) return void missing(digest, `manifest of ${name}`);
    let m: Manifest & { manifests?: { digest: string }[] };
    try {
      m = JSON.parse(await fsp.readFile(store.blobs.path(digest), 'utf8')) as typeof m;
    } catch (e) {
      return void out.push({
        kind: 'manifest-invalid',
        target: digest,
        message: `manifest of ${name}: ${(e as Error).message}`,
        repairable: false,
      });
    }
    if (Array.isArray(m.manifests) && depth < 4) {
      for (const c of m.manifests) await visit(c.digest, name, depth + 1);
      return;
    }
    if (!m.config?.digest || !Array.isArray(m.layers)) {
      return void out.push({
        kind: 'manifest-invalid',
        target: digest,
        message: `manifest of ${name} has no config or layers`,
        repairable: false,
      });
    }
    if (!(await store.blobs.has(m.config.digest))) missing(m.config.digest, `config of ${name}`);
    else {
      const cfg = (await store.blobs.readJson<ImageConfig>(m.config.digest).catch(() => undefined)) as
        ImageConfig | undefined;
      const ids = cfg?.rootfs?.diff_ids;
      if (!Array.isArray(ids) || ids.length !== m.layers.length) {
        out.push({
          kind: 'manifest-invalid',
          target: m.config.digest,
          message: `config of ${name} lists ${ids?.length ?? 'no'} diff_ids for ${m.layers.length} layers`,
          repairable: false,
        });
      }
    }
    for (const [i, l] of m.layers.entries())
      if (!(await store.blobs.has(l.digest))) missing(l.digest, `layer ${i + 1} of ${name}`);
  };
  for (const d of idx.manifests)
    await visit(d.digest, d.annotations?.['org.opencontainers.image.ref.name'] ?? d.digest, 0);
  return out;
}

async function checkCache(store: Store): Promise<Found[]> {
  const cache = new DirBuildCache(store.path('cache'));
  const out: Found[] = [];
  for (const key of await cache.keys()) {
    const rec = await cache.get(key);
    const fix = () => cache.remove(key);
    if (!rec || !Array.isArray(rec.layers)) {
      out.push({ kind: 'cache-invalid', target: key, message: 'cache record is unreadable', repairable: true, fix });
      continue;
    }
    for (const l of rec.layers) {
      if (!(await store.blobs.has(l.digest))) {
        out.push({
          kind: 'cache-dangling',
          target: key,
          message: `cache record names layer ${l.digest}, which is not in the store`,
          repairable: true,
          fix,
        });
        break;
      }
    }
  }
  return out;
}

/** The snapshot store's own check, and the temporary snapshots of dead builds. */
async function checkSnapshotStore(store: Store): Promise<Found[]> {
  const root = store.path('snapshots');
  const { problems, snapshots } = await checkSnapshots(root);
  const out: Found[] = problems.map((p) => ({
    ...p,
    // the overlay package repairs its own store in one go, under its lock
    fix: p.repairable ? async () => void (await checkSnapshots(root, { repair: true })) : undefined,
  }));
  for (const key of staleSnapshots(snapshots)) {
    out.push({
      kind: 'snapshot-stale',
      target: key,
      message: 'temporary snapshot of a build that died',
      repairable: true,
      fix: async () => dropStaleSnapshot(store, await createSnapshotter(root), key),
    });
  }
  return out;
}
