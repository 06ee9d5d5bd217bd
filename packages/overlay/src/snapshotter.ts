import { randomBytes } from 'node:crypto';
/** `createSnapshotter`: open a store root with the overlay or native driver (auto: probe). */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { debuglog } from 'node:util';
import { VlabError } from '@vlab/errors';
import type { Snapshotter } from './types.ts';
import { MetaStore } from './store.ts';
import { OverlaySnapshotter, overlayBaseOptions } from './overlay-driver.ts';
import { NativeSnapshotter } from './native-driver.ts';
import { mountScratch, unmountAll } from './mount.ts';
import { isRealRoot } from './sys.ts';
import { pidAlive } from './lock.ts';

const log = debuglog('vlab');

export interface SnapshotterOptions {
  driver?: 'auto' | 'overlay' | 'native';
}

/**
 * Can this process mount overlay here, and with which xattr namespace? Tries a real two-layer
 * overlay mount in `<root>/probe` with a whiteout; real root uses trusted.*, others `userxattr`.
 */
export async function probeOverlay(root: string): Promise<{ ok: boolean; userxattr: boolean; reason?: string }> {
  const userxattr = !isRealRoot();
  // Unique per call: two snapshotters opened at once in one process must not share the dir.
  const d = path.join(root, `probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.rm(d, { recursive: true, force: true });
  try {
    for (const s of ['l1', 'l2', 'u', 'w', 'm']) await fs.mkdir(path.join(d, s), { recursive: true });
    await fs.writeFile(path.join(d, 'l1', 'f'), 'x');
    try {
      await mountScratch(
        [
          {
            type: 'overlay',
            source: 'overlay',
            options: [
              ...overlayBaseOptions(userxattr),
              `workdir=${d}/w`,
              `upperdir=${d}/u`,
              `lowerdir=${d}/l2:${d}/l1`,
            ],
          },
        ],
        path.join(d, 'm'),
      );
    } catch (e) {
      return { ok: false, userxattr, reason: (e as Error).message };
    }
    try {
      await fs.rm(path.join(d, 'm', 'f')); // must leave a 0/0 whiteout in the upper
      const st = await fs.lstat(path.join(d, 'u', 'f'));
      if (!st.isCharacterDevice()) return { ok: false, userxattr, reason: 'no whiteout created' };
    } finally {
      await unmountAll(path.join(d, 'm'));
    }
    return { ok: true, userxattr };
  } finally {
    await fs.rm(d, { recursive: true, force: true }).catch(() => {});
  }
}

/** Probe dirs of processes that died mid-probe (SIGKILL): unmounted and removed. */
async function removeDeadProbes(root: string): Promise<void> {
  for (const n of await fs.readdir(root).catch(() => [] as string[])) {
    const m = /^probe-(\d+)-[0-9a-f]+$/.exec(n);
    if (!m || pidAlive(Number(m[1]))) continue;
    await unmountAll(path.join(root, n, 'm')).catch(() => undefined);
    await fs.rm(path.join(root, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** One probe per root per process: the answer does not change while we run. */
const probes = new Map<string, ReturnType<typeof probeOverlay>>();

/**
 * A success is also remembered in the root (`probe.json`) for the next process (every CLI build
 * is one): valid for the same kernel, the same filesystem under the root and the same kind of
 * user, which is what the answer depends on. A failure is never remembered: it is probed again.
 */
async function probeOnce(root: string): Promise<Awaited<ReturnType<typeof probeOverlay>>> {
  const file = path.join(root, 'probe.json');
  const st = await fs.stat(root);
  const stamp = { kernel: os.release(), dev: st.dev, realRoot: isRealRoot() };
  const cached = await fs
    .readFile(file, 'utf8')
    .then((t) => JSON.parse(t) as typeof stamp & { userxattr: boolean })
    .catch(() => undefined);
  if (cached && cached.kernel === stamp.kernel && cached.dev === stamp.dev && cached.realRoot === stamp.realRoot)
    return { ok: true, userxattr: cached.userxattr };
  const p = await probeOverlay(root);
  if (p.ok) {
    // named like a probe dir: removeDeadProbes sweeps it if we die before the rename
    const tmp = path.join(root, `probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fs
      .writeFile(tmp, JSON.stringify({ ...stamp, userxattr: p.userxattr }))
      .then(() => fs.rename(tmp, file))
      .catch(() => fs.rm(tmp, { force: true }).catch(() => undefined));
  }
  return p;
}

export async function createSnapshotter(root: string, opts: SnapshotterOptions = {}): Promise<Snapshotter> {
  await fs.mkdir(root, { recursive: true, mode: 0o700 });
  const store = new MetaStore(await fs.realpath(root));
  await store.open();
  await removeDeadProbes(store.root);
  const want = opts.driver ?? 'auto';
  if (want === 'native') return new NativeSnapshotter(store);
  let probe = probes.get(store.root);
  if (!probe) probes.set(store.root, (probe = probeOnce(store.root)));
  const p = await probe;
  log('overlay probe: %o', p);
  if (p.ok) return new OverlaySnapshotter(store, { userxattr: p.userxattr });
  if (want === 'overlay')
    throw new VlabError('E_DRIVER', `overlay driver unavailable here: ${p.reason}`, { details: { ...p } });
  return new NativeSnapshotter(store);
}
