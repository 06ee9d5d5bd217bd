/**
 * The machine's floor, measured in the same run as the builders: what hashing, copying, starting
 * a namespaced process, a runc container, an overlay mount and node itself cost here. A builder
 * cannot beat these for the work its case implies.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { median, sh, spawnCollect } from './measure.ts';

export interface Stat {
  median: number;
  min: number;
  max: number;
}
export type Floors = Map<string, Stat | { error: string }>;

export interface FloorInputs {
  dataDir: string;
  busyboxRootfsTar: string;
  /** Paths by floor name: the data the copy cases use. */
  smallDir?: string;
  bigFile?: string;
  oneFile?: string;
}

async function timeIt(runs: number, fn: () => Promise<void>, after?: () => Promise<void>): Promise<Stat> {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    xs.push((performance.now() - t0) / 1000);
    if (after) await after();
  }
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

async function ok(argv: string[]): Promise<void> {
  const r = await spawnCollect(argv);
  if (r.code) throw new Error(`${argv.join(' ').slice(0, 80)}: exit ${r.code} ${r.stderr.trim().slice(0, 200)}`);
}

export async function measureFloors(inp: FloorInputs, runs: number): Promise<Floors> {
  const out: Floors = new Map();
  const dir = path.join(inp.dataDir, 'floor');
  await spawnCollect(['umount', path.join(dir, 'ovl', 'merged')]); // left over from an interrupted run
  await fs.rm(dir, { recursive: true, force: true });
  const rootfs = path.join(dir, 'rootfs');
  await fs.mkdir(rootfs, { recursive: true });
  await sh(['tar', '-C', rootfs, '-xf', inp.busyboxRootfsTar]);
  const dst = path.join(dir, 'cp-dst');
  const rmDst = () => fs.rm(dst, { recursive: true, force: true });
  const n = Math.max(runs, 5);

  const items: [string, number, () => Promise<void>, (() => Promise<void>)?][] = [
    ['node -e 0', n, () => ok([process.execPath, '-e', '0'])],
    [
      'unshare-chroot',
      n,
      () => ok(['unshare', '--pid', '--fork', '--mount', '--uts', '--ipc', '--net', 'chroot', rootfs, '/bin/true']),
    ],
  ];
  // runc run of a minimal bundle (runc spec, args /bin/true, no terminal).
  const bundle = path.join(dir, 'bundle');
  let runcReady = false;
  try {
    await fs.mkdir(bundle, { recursive: true });
    await sh(['runc', 'spec', '--bundle', bundle]);
    const cfg = JSON.parse(await fs.readFile(path.join(bundle, 'config.json'), 'utf8'));
    cfg.process.terminal = false;
    cfg.process.args = ['/bin/true'];
    cfg.root = { path: rootfs, readonly: false };
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(cfg));
    runcReady = true;
  } catch (e) {
    out.set('runc run', { error: (e as Error).message });
  }
  let k = 0;
  if (runcReady)
    items.push([
      'runc run',
      n,
      () =>
        ok([
          'runc',
          '--root',
          '/run/vlab-bench-runc',
          'run',
          '--bundle',
          bundle,
          `vlab-bench-floor-${process.pid}-${k++}`,
        ]),
    ]);
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => path.join(dir, 'ovl', d));
  for (const d of [lower!, upper!, work!, merged!]) await fs.mkdir(d, { recursive: true });
  items.push([
    'overlay mount+umount',
    n,
    async () => {
      await ok([
        'mount',
        '-t',
        'overlay',
        'overlay',
        '-o',
        `lowerdir=${rootfs},upperdir=${upper},workdir=${work}`,
        merged!,
      ]);
      await ok(['umount', merged!]);
    },
  ]);
  if (inp.bigFile) {
    items.push(['sha256sum big', runs, () => ok(['sha256sum', inp.bigFile!])]);
    items.push(['cp -a big', runs, () => ok(['cp', '-a', inp.bigFile!, dst]), rmDst]);
  }
  if (inp.smallDir) {
    items.push([
      'tar|sha256sum small',
      runs,
      () => ok(['bash', '-o', 'pipefail', '-c', `tar -C '${inp.smallDir}' -cf - . | sha256sum`]),
    ]);
    items.push(['cp -a small', runs, () => ok(['cp', '-a', inp.smallDir!, dst]), rmDst]);
  }
  if (inp.oneFile) items.push(['sha256sum one file', n, () => ok(['sha256sum', inp.oneFile!])]);

  for (const [name, r, fn, after] of items) {
    try {
      out.set(name, await timeIt(r, fn, after));
    } catch (e) {
      out.set(name, { error: (e as Error).message });
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
  return out;
}
