/**
 * Where a pull's time goes (issue 13's pull rows): each part of the big image's critical layer
 * (512 MiB) alone, then whole pulls of `big` and `small200` per gunzip engine with a timeline
 * from their progress events and the process's CPU (all threads). Uses the registry bench's
 * images (bench/.data, made by `pnpm bench:registry` first).
 *
 *   node --import tsx bench/pull-phases.ts [--quick]     BENCH_RUNS=2  BENCH_CASES=big,small200  BENCH_PARTS=0
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { pull, push } from '@vlab/image';
import { isalAddon } from '@vlab/overlay';
import { startRegistry } from '../test/registry-fixture.ts';
import { makeRegistryImages } from './lib/registry-data.ts';
import { median, sh } from './lib/measure.ts';

const quick = process.argv.includes('--quick');
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 2));
const cases = (process.env.BENCH_CASES ?? 'big,small200').split(',') as ('big' | 'small200')[];
const dataDir = path.resolve(import.meta.dirname, '.data');
const out: string[] = [];
const say = (s: string) => (out.push(s), process.stderr.write(s + '\n'));

async function clock<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await fn();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  say(`| ${what} | ${wall.toFixed(3)} | ${((c.user + c.system) / 1e6).toFixed(3)} |`);
  return r;
}

interface Isal {
  stateSize(): number;
  init(s: Buffer): number;
  inflate(s: Buffer, i: Buffer, o: Buffer): Promise<[number, number, number, number]>;
}

async function isalGunzip(gz: Buffer): Promise<number> {
  const m = { exports: {} as Isal };
  process.dlopen(m, isalAddon()!);
  const st = Buffer.alloc(m.exports.stateSize());
  m.exports.init(st);
  const o = Buffer.allocUnsafe(1 << 20);
  let n = 0;
  for (let input = gz; ;) {
    const [rc, used, made, fin] = await m.exports.inflate(st, input, o);
    if (rc < 0) throw new Error(`isal ${rc}`);
    input = input.subarray(used);
    n += made;
    if (fin && !input.length) return n;
  }
}

async function main(): Promise<void> {
  say(`load: ${(await sh(['uptime'])).trim()}`);
  const images = await makeRegistryImages(dataDir, quick, (m) => process.stderr.write(m + '\n'));
  const reg = await startRegistry();
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-pullphases-'));
  try {
    for (const c of cases)
      await push(images[c].ref, `${reg.host}/src/${c}:1`, { root: images[c].store, tlsVerify: false });
    if (cases.includes('big') && process.env.BENCH_PARTS !== '0') {
      const man = (await (
        await fetch(`http://${reg.host}/v2/src/big/manifests/1`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).json()) as { layers: { digest: string; size: number }[] };
      const l = man.layers.reduce((a, b) => (b.size > a.size ? b : a));
      say(`\n#### big's critical layer alone (${(l.size / 1e6).toFixed(0)} MB gzip), one thread each unless said`);
      say('| part | wall s | CPU s |');
      say('|---|---|---|');
      const gz = await clock('GET into memory (network receive, fetch)', async () =>
        Buffer.from(await (await fetch(`http://${reg.host}/v2/src/big/blobs/${l.digest}`)).arrayBuffer()),
      );
      await clock('sha256 of the compressed bytes', () => createHash('sha256').update(gz).digest('hex'));
      const tar = await clock('zlib gunzip (gunzipSync)', () => zlib.gunzipSync(gz));
      if (isalAddon()) await clock('ISA-L inflate (vlab-isal.node, 1 MiB outputs, pool)', () => isalGunzip(gz));
      await clock('sha256 of the tar', () => createHash('sha256').update(tar).digest('hex'));
      const f = path.join(scratch, 'tar');
      await clock('write the tar (page cache)', () => fs.writeFile(f, tar));
      await clock('fsync it', async () => {
        const fh = await fs.open(f, 'r');
        await fh.sync();
        await fh.close();
      });
      await fs.rm(f);
    }
    for (const c of cases)
      for (const engine of (process.env.BENCH_ENGINES ?? (isalAddon() ? 'isal,zlib' : 'zlib')).split(',')) {
        const walls: number[] = [];
        for (let r = 0; r < runs; r++) {
          if (engine === 'zlib') process.env.VLAB_GUNZIP = 'zlib';
          else delete process.env.VLAB_GUNZIP;
          const into = path.join(scratch, `${c}-${engine}-${r}`);
          const t0 = performance.now();
          const at = (t: number) => ((t - t0) / 1000).toFixed(3);
          let first = Infinity;
          let last = 0;
          const layers = new Map<string, { start: number; done: number; total: number }>();
          const c0 = process.cpuUsage();
          const res = await pull(`${reg.host}/src/${c}:1`, {
            root: into,
            tlsVerify: false,
            onProgress: (e) => {
              if (e.type !== 'layer-progress') return;
              const now = performance.now();
              const l = layers.get(e.digest) ?? { start: now, done: 0, total: e.total ?? 0 };
              layers.set(e.digest, l);
              if (e.status === 'done') l.done = now;
              first = Math.min(first, now);
              last = Math.max(last, now);
            },
          });
          const end = performance.now();
          const cpu = process.cpuUsage(c0);
          walls.push((end - t0) / 1000);
          const big = [...layers.values()].sort((a, b) => b.total - a.total);
          say(
            `- ${c} ${engine} run ${r + 1}: wall ${at(end)} s, CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s (all threads); ` +
              `manifest+config until the first layer event ${at(first)} s; layers until the last done ${at(last)} s; ` +
              `after it (blob-info, putImage, tag) ${((end - last) / 1000).toFixed(3)} s; ${res.manifest.layers.length} layers` +
              (c === 'big'
                ? `; per layer (MB gzip: start–done) ${big.map((l) => `${(l.total / 1e6).toFixed(0)}: ${at(l.start)}–${at(l.done)}`).join(', ')}`
                : ''),
          );
          await fs.rm(into, { recursive: true, force: true });
        }
        say(`- **${c} ${engine}: median wall ${median(walls).toFixed(3)} s**`);
      }
  } finally {
    await reg.stop();
    await fs.rm(scratch, { recursive: true, force: true });
  }
  say(`load after: ${(await sh(['uptime'])).trim()}`);
  process.stdout.write(out.join('\n') + '\n');
}

await main();
