import { randomBytes } from 'node:crypto';
/** `createSnapshotter`: open a store root with the overlay or native driver (auto: probe). */
import { promises as fs } from 'node:fs';
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

export async function createSnapshotter(root: string, opts: SnapshotterOptions = {}): Promise<Snapshotter> {
  await fs.mkdir(root, { recursive: true, mode: 0o700 });
  const store = new MetaStore(await fs.realpath(root));
  await store.open();
  await removeDeadProbes(store.root);
  const want = opts.driver ?? 'auto';
  if (want === 'native') return new NativeSnapshotter(store);
  let probe = probes.get(store.root);
  if (!probe) probes.set(store.root, (probe = probeOverlay(store.root)));
  const p = await probe;
  log('overlay probe: %o', p);
  if (p.ok) return new OverlaySnapshotter(store, { userxattr: p.userxattr });
  if (want === 'overlay')
    throw new VlabError('E_DRIVER', `overlay driver unavailable here: ${p.reason}`, { details: { ...p } });
  return new NativeSnapshotter(store);
}
