/**
 * Bench cases: each is a Dockerfile plus a context generated deterministically under
 * bench/.data/ctx (never committed). Same bytes on every run and machine: data comes from a seeded
 * PRNG, file sizes and names from the index.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { genParallel } from './lib/parallel.ts';

export type Phase = 'cold' | 'cached' | 'edit' | 'serial' | 'parallel';
export type BaseName = 'busybox' | 'bigbase';

export interface Sizes {
  smallFiles: number;
  /** Files of copy-huge (10× copy-small). */
  hugeFiles: number;
  /** Bytes of the single copy-big file. */
  bigBytes: number;
  /** Files in /usr/share/big of the synthetic big base. */
  baseFiles: number;
}

export function sizes(quick: boolean): Sizes {
  const gib = Number(process.env.BENCH_BIG_GIB ?? (quick ? 0.125 : 1));
  return {
    smallFiles: Number(process.env.BENCH_SMALL_FILES ?? (quick ? 2000 : 20000)),
    hugeFiles: Number(process.env.BENCH_HUGE_FILES ?? (quick ? 20000 : 200000)),
    bigBytes: Math.round(gib * 2 ** 30),
    baseFiles: Number(process.env.BENCH_BASE_FILES ?? (quick ? 3000 : 20000)),
  };
}

export interface Case {
  name: string;
  what: string;
  base: BaseName;
  phases: Phase[];
  dockerfile: string;
  /** Writes the context (besides the Dockerfile) into dir. */
  gen?: (dir: string, s: Sizes) => Promise<void>;
  /** For the edit phase: changes one file of the context; n makes each edit distinct. */
  edit?: (dir: string, n: number) => Promise<void>;
  /** Which floors bound this case (names from floor.ts), with a multiplier. */
  floor: { name: string; times: number }[];
  /** parallel4: this many builds in p1…pN of the context, serial then parallel (lib/parallel.ts). */
  parallel?: number;
}

const stepsN = (n: number) =>
  Array.from({ length: n }, (_, i) => `RUN echo step${i} > /step${String(i).padStart(3, '0')}.txt`).join('\n');

const steps20 = Array.from({ length: 20 }, (_, i) => `RUN echo step${i} > /step${String(i).padStart(2, '0')}.txt`).join(
  '\n',
);

export const CASES: Case[] = [
  {
    name: 'hello',
    what: 'busybox base, one RUN writing a file',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile: 'FROM busybox:latest\nRUN echo hello > /hello.txt\n',
    floor: [{ name: 'unshare-chroot', times: 1 }],
  },
  {
    name: 'hello-bigbase',
    what: 'same as hello on the synthetic big base (layer commit vs base size)',
    base: 'bigbase',
    phases: ['cold', 'cached'],
    dockerfile: 'FROM bigbase:latest\nRUN echo hello > /hello.txt\n',
    floor: [{ name: 'unshare-chroot', times: 1 }],
  },
  {
    name: 'steps20',
    what: '20 RUN steps, each writing a small file',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile: `FROM busybox:latest\n${steps20}\n`,
    floor: [{ name: 'unshare-chroot', times: 20 }],
  },
  {
    name: 'copy-small',
    what: 'COPY of many small files',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile: 'FROM busybox:latest\nCOPY data/ /data/\n',
    gen: (dir, s) => genSmall(path.join(dir, 'data'), s.smallFiles),
    floor: [
      { name: 'tar|sha256sum small', times: 1 },
      { name: 'cp -a small', times: 1 },
    ],
  },
  {
    name: 'copy-huge',
    what: 'COPY of 10× copy-small (200,000 files): time and memory per file must not grow',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile: 'FROM busybox:latest\nCOPY data/ /data/\n',
    gen: (dir, s) => genSmall(path.join(dir, 'data'), s.hugeFiles),
    floor: [{ name: 'tar|sha256sum small', times: 10 }],
  },
  {
    name: 'copy-big',
    what: 'COPY of one big file',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile: 'FROM busybox:latest\nCOPY big.bin /big.bin\n',
    gen: (dir, s) => genBig(path.join(dir, 'big.bin'), s.bigBytes),
    floor: [
      { name: 'sha256sum big', times: 1 },
      { name: 'cp -a big', times: 1 },
    ],
  },
  {
    name: 'delete',
    what: 'RUN deleting a large directory of the base (whiteouts)',
    base: 'bigbase',
    phases: ['cold', 'cached'],
    dockerfile: 'FROM bigbase:latest\nRUN rm -rf /usr/share/big\n',
    floor: [{ name: 'unshare-chroot', times: 1 }],
  },
  {
    name: 'multistage',
    what: 'two stages, COPY --from',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile:
      'FROM busybox:latest AS build\nRUN mkdir -p /out && for i in $(seq 1 200); do echo "artifact $i" > /out/f$i; done\n' +
      'FROM busybox:latest\nCOPY --from=build /out /out\n',
    floor: [{ name: 'unshare-chroot', times: 1 }],
  },
  {
    name: 'steps100',
    what: '100 RUN steps: the time of a step at depth 91-100 vs 1-10 (a deep stack mounts and diffs as fast)',
    base: 'busybox',
    phases: ['cold', 'cached'],
    dockerfile: `FROM busybox:latest\n${stepsN(100)}\n`,
    floor: [{ name: 'unshare-chroot', times: 100 }],
  },
  {
    name: 'parallel4',
    what: '4 different builds (COPY + 8 RUNs each) on one store: one after another, then at once',
    base: 'busybox',
    phases: ['serial', 'parallel'],
    dockerfile: 'FROM busybox:latest\n',
    gen: (dir) => genParallel(dir, 4, 8),
    parallel: 4,
    floor: [{ name: 'unshare-chroot', times: 32 }],
  },
  {
    name: 'edit',
    what: 'copy-small with one file changed (a RUN before the COPY must stay cached)',
    base: 'busybox',
    phases: ['edit'],
    dockerfile: 'FROM busybox:latest\nRUN echo prep > /prep.txt\nCOPY data/ /data/\n',
    gen: (dir, s) => genSmall(path.join(dir, 'data'), s.smallFiles),
    edit: async (dir, n) => {
      await fs.writeFile(path.join(dir, 'data', 'd00', 'f00007.txt'), `edited ${n}\n`);
    },
    floor: [{ name: 'sha256sum one file', times: 1 }],
  },
];

export function selectCases(list = process.env.BENCH_CASES): Case[] {
  if (!list) return CASES;
  const want = list.split(',').map((s) => s.trim());
  const unknown = want.filter((w) => !CASES.some((c) => c.name === w));
  if (unknown.length)
    throw new Error(`unknown BENCH_CASES: ${unknown.join(', ')} (have ${CASES.map((c) => c.name).join(', ')})`);
  return CASES.filter((c) => want.includes(c.name));
}

/** Makes (or reuses, when the spec marker matches) the context directory of a case. */
export async function prepareContext(dataDir: string, c: Case, s: Sizes): Promise<string> {
  const dir = path.join(dataDir, 'ctx', c.name);
  const spec = JSON.stringify({ v: 1, df: c.dockerfile, s: c.gen ? s : null });
  const marker = path.join(dir, '.bench-spec');
  if ((await fs.readFile(marker, 'utf8').catch(() => '')) === spec) return dir;
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'Dockerfile'), c.dockerfile);
  await fs.writeFile(path.join(dir, '.dockerignore'), '.bench-spec\n');
  if (c.gen) await c.gen(dir, s);
  await fs.writeFile(marker, spec);
  return dir;
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function prng(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n + 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b.subarray(0, n);
}

const POOL = prng(42, 1 << 20);

/** n files in 1000-file directories, 1–9 KB each (about 5 KB average), text-ish random data. */
export async function genSmall(dir: string, n: number, prefix = 'f'): Promise<void> {
  const perDir = 1000;
  for (let d = 0; d * perDir < n; d++) {
    const sub = path.join(dir, `d${String(d).padStart(2, '0')}`);
    await fs.mkdir(sub, { recursive: true });
    const jobs: Promise<void>[] = [];
    for (let i = d * perDir; i < Math.min(n, (d + 1) * perDir); i++) {
      const size = 1024 + ((i * 7919) % 8192);
      const off = (i * 104729) % (POOL.length - size);
      const body = Buffer.concat([Buffer.from(`file ${i}\n`), POOL.subarray(off, off + size)]);
      jobs.push(fs.writeFile(path.join(sub, `${prefix}${String(i % perDir).padStart(5, '0')}.txt`), body));
    }
    await Promise.all(jobs);
  }
}

/** One file of `bytes`, each MiB the pool stamped with its index (no two blocks equal). */
export async function genBig(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  const block = Buffer.from(POOL);
  for (let off = 0, i = 0; off < bytes; off += block.length, i++) {
    block.writeUInt32LE(i, 0);
    const chunk = off + block.length > bytes ? block.subarray(0, bytes - off) : Buffer.from(block);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}
