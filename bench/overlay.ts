/**
 * @vlab/overlay: diff throughput, mount time and memory. Not a test:
 * `node --import tsx bench/overlay.ts` (as root: it mounts overlayfs). Data in bench/.data/,
 * deleted at the end.
 *
 * Rows: `diff` of a 20,000-file upper (and `apply` of that layer beside `tar -x`) and of one 1 GiB file, each beside the floor/peer
 * `tar -c | sha256sum` of the same dir in the same run; peak RSS of the 1 GiB diff (measured in a
 * child process so nothing else counts); mount time of 1, 50 and 200 layers.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  createSnapshotter,
  diff,
  writeLayer,
  apply,
  mountAll,
  unmountAll,
  type Snapshotter,
} from '../packages/overlay/src/index.ts';

const data = fileURLToPath(new URL('./.data/overlay', import.meta.url));
const nullSink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
    highWaterMark: 1 << 20,
  });

async function timeDiff(s: Snapshotter, key: string) {
  const t0 = process.hrtime.bigint();
  const r = await writeLayer(diff(s, key), nullSink());
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { secs, bytes: r.size };
}

function timeTar(dir: string) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', `tar -c -C '${dir}' . | sha256sum >/dev/null`]);
  if (r.status !== 0) throw new Error(String(r.stderr));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function child(root: string, key: string) {
  const s = await createSnapshotter(root, { driver: 'overlay' });
  const r = await timeDiff(s, key);
  process.stdout.write(JSON.stringify({ ...r, maxRssKiB: process.resourceUsage().maxRSS }));
}

async function main() {
  await fs.rm(data, { recursive: true, force: true });
  const root = path.join(data, 'snap');
  const s = await createSnapshotter(root, { driver: 'overlay' });
  const rows: string[][] = [];
  const fmt = (n: number, d = 1) => n.toFixed(d);

  // 20,000 small files (4 KiB, 200 dirs)
  await s.prepare('small');
  const small = (await s.writableDir('small')).dir;
  const buf = Buffer.alloc(4096, 'x');
  for (let d = 0; d < 200; d++) {
    await fs.mkdir(path.join(small, `d${d}`));
    await Promise.all(Array.from({ length: 100 }, (_, f) => fs.writeFile(path.join(small, `d${d}`, `f${f}`), buf)));
  }
  const files = 20_000;
  await timeDiff(s, 'small'); // warm the page cache for both contenders
  const a = await timeDiff(s, 'small');
  const ta = timeTar(small);
  rows.push(['diff 20,000 x 4 KiB', fmt(a.bytes / a.secs / 2 ** 20), fmt(files / a.secs, 0), fmt(a.secs, 2)]);
  rows.push(['  tar -c | sha256sum (same dir)', fmt(a.bytes / ta / 2 ** 20), fmt(files / ta, 0), fmt(ta, 2)]);
  // and back: apply that layer into an empty dir, beside GNU tar -x of the same file
  const layerFile = path.join(data, 'small.tar');
  await writeLayer(diff(s, 'small'), createWriteStream(layerFile));
  await fs.mkdir(path.join(data, 'apply'));
  await fs.mkdir(path.join(data, 'untar'));
  let t0 = process.hrtime.bigint();
  await apply(createReadStream(layerFile), path.join(data, 'apply'), { whiteouts: 'overlay' });
  const ap = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  spawnSync('tar', ['-xpf', layerFile, '-C', path.join(data, 'untar')]);
  const ux = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push(['apply 20,000 x 4 KiB layer', fmt(a.bytes / ap / 2 ** 20), fmt(files / ap, 0), fmt(ap, 2)]);
  rows.push(['  tar -xpf (same layer)', fmt(a.bytes / ux / 2 ** 20), fmt(files / ux, 0), fmt(ux, 2)]);
  await fs.rm(path.join(data, 'apply'), { recursive: true });
  await fs.rm(path.join(data, 'untar'), { recursive: true });
  await fs.rm(layerFile);

  // one 1 GiB file
  await s.prepare('big');
  const big = (await s.writableDir('big')).dir;
  const fh = await fs.open(path.join(big, 'blob'), 'w');
  const mib = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib.length; i += 4) mib.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let i = 0; i < 1024; i++) {
    mib[0] = i & 0xff;
    await fh.write(mib);
  }
  await fh.close();
  const c = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', root, 'big'], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (c.status !== 0) throw new Error(c.stderr);
  const b = JSON.parse(c.stdout) as { secs: number; bytes: number; maxRssKiB: number };
  const tb = timeTar(big);
  rows.push(['diff 1 x 1 GiB', fmt(b.bytes / b.secs / 2 ** 20), fmt(1 / b.secs, 2), fmt(b.secs, 2)]);
  rows.push(['  tar -c | sha256sum (same dir)', fmt(b.bytes / tb / 2 ** 20), fmt(1 / tb, 2), fmt(tb, 2)]);
  rows.push([`  peak RSS of the 1 GiB diff process`, `${fmt(b.maxRssKiB / 1024, 0)} MiB`, '', '']);
  await fs.rm(path.join(big, 'blob'));

  // mount time of deep stacks
  let parent: string | undefined;
  const at = new Map<number, string>();
  for (let i = 1; i <= 200; i++) {
    await s.prepare(`l${i}`, parent);
    await fs.writeFile(path.join((await s.writableDir(`l${i}`)).dir, `f${i}`), String(i));
    await s.commit(`L${i}`, `l${i}`);
    parent = `L${i}`;
    at.set(i, parent);
  }
  const target = path.join(data, 'mnt');
  for (const depth of [1, 50, 200]) {
    const mounts = await s.prepare(`top${depth}`, at.get(depth));
    const runs = 10;
    let total = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await mountAll(mounts, target);
      total += Number(process.hrtime.bigint() - t0) / 1e6;
      await unmountAll(target);
    }
    rows.push([
      `mount ${depth} layer${depth > 1 ? 's' : ''} (+ upper), mean of ${runs}`,
      '',
      '',
      `${fmt(total / runs, 1)} ms`,
    ]);
  }

  const head = ['case', 'MB/s', 'files/s', 'time (s)'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4]);
} else {
  try {
    await main();
  } finally {
    await unmountAll(path.join(data, 'mnt')).catch(() => {});
    await fs.rm(data, { recursive: true, force: true }); // only our folder: other benches share bench/.data
    await fs.rmdir(path.dirname(data)).catch(() => {}); // and .data itself only if now empty
  }
}
