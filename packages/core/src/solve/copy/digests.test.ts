/**
 * The bytes a big COPY produces are pinned: the context checksum (the cache key's content) and
 * each layer's diffID of a copy-huge-like context (many small files in many dirs, names that sort
 * differently in JS and in layer order, hard links, symlinks, an empty dir, modes, .dockerignore,
 * --exclude, --chmod, --chown), built with the pack output. The values were taken from the code
 * before the compact walk, checksum and plan (session 22): any change to how a COPY is keyed or
 * packed shows here, as a changed cache key or layer would in every user's build.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { build } from '../../api.ts';
import { BuildContext } from '../../context/context.ts';
import { FileHashCache } from '../../context/hash-cache.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('copy digests: skipped, a build needs root');

/** 12 dirs × 150 files, plus names whose order differs between JS sort and layer order. */
async function prepare(ctx: string): Promise<void> {
  const data = path.join(ctx, 'data');
  for (let d = 0; d < 12; d++) {
    const dir = path.join(data, `d${String(d).padStart(2, '0')}`);
    await fsp.mkdir(dir, { recursive: true });
    for (let f = 0; f < 150; f++)
      await fsp.writeFile(path.join(dir, `f${String(f).padStart(5, '0')}.txt`), `${d}:${f}\n`.repeat((f % 9) + 1));
  }
  const odd = ['a-b', 'a.b', 'a0', 'é.txt', '\u{1F600}.txt', '\uE000.txt', 'a b', 'log.log', 'x.tmp'];
  for (const n of odd) await fsp.writeFile(path.join(data, n), n);
  await fsp.mkdir(path.join(data, 'a'));
  await fsp.writeFile(path.join(data, 'a', 'inner'), 'inner');
  await fsp.mkdir(path.join(data, 'empty'));
  await fsp.link(path.join(data, 'd00/f00001.txt'), path.join(data, 'hard1'));
  await fsp.link(path.join(data, 'd00/f00001.txt'), path.join(data, 'd11/hard2'));
  await fsp.symlink('d01/f00002.txt', path.join(data, 'sym'));
  await fsp.symlink('/nowhere', path.join(data, 'd02/dangling'));
  await fsp.chmod(path.join(data, 'd03/f00004.txt'), 0o755);
  await fsp.chmod(path.join(data, 'd04'), 0o750);
  await fsp.writeFile(path.join(ctx, '.dockerignore'), '**/*.log\n');
  let t = Date.UTC(2021, 2, 3) / 1000;
  const stamp = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p);
    if (st.isDirectory()) for (const n of (await fsp.readdir(p)).sort()) await stamp(path.join(p, n));
    await fsp.lutimes(p, t, (t += 61));
  };
  await stamp(ctx);
}

/** Dockerfile steps after `FROM scratch` → the diffID of the layer of each COPY, in order. */
const CASES: [string, string, string[]][] = [
  ['a directory', 'COPY data/ /data/', ['sha256:78d710593874ad499200cbae3f39d13d57cae2773cf763d6f42974cf78d9bdf4']],
  [
    'the context root with --exclude, --chmod and --chown',
    'COPY data/a /base/\nCOPY --exclude=*.tmp --chmod=640 --chown=7:8 . /ctx/',
    [
      'sha256:66cfd7df575bcc9eb160619be4c2ce6a62957244141c3cbadf7da74b39f6dfa5',
      'sha256:5a178d97c5881b5d2d57836e7c89471be403566f99c676dc813f488bfcc1e556',
    ],
  ],
  [
    'two sources, one dir over an earlier one',
    'COPY data/d00 data/d01/ /two/\nCOPY data/a /two/a',
    [
      'sha256:744af574e47e8929688d5e15c58fa7e22e64a77acccb62abfe9b219621e8b5c9',
      'sha256:1774f4b6adbd4929ea88eecd259f6ffb49b4dae0070d308e37946004e35d0175',
    ],
  ],
];

/** Selections → BuildContext.checksum digest. */
const CHECKSUMS: [string[], string[], string][] = [
  [['data'], [], 'sha256:40017c330bbdade72b191ea3b158cfcdcc159a3e74ec9d36bab5e02d4614c961'],
  [['.'], ['*.tmp'], 'sha256:6399cabc9c7fa08d6a10ff926b29a5848a4b4bc388d5cafbdf031a1ee7fe5818'],
  [
    ['data/d00', 'data/d01', 'data/*.txt'],
    [],
    'sha256:be7d6bac47c5753820aece6fb2c1498c4237be279fbb2f5fc56026daacd7a817',
  ],
];

let root: string;
let ctx: string;
beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-digests-store-'));
  ctx = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-digests-ctx-'));
  await prepare(ctx);
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(Date.UTC(2023, 5, 1, 12, 0, 0)));
});
afterAll(async () => {
  vi.useRealTimers();
  await fsp.rm(root, { recursive: true, force: true });
  await fsp.rm(ctx, { recursive: true, force: true });
});

describe('a big COPY keeps its digests', () => {
  it.each(CHECKSUMS)('the checksum of %j (--exclude %j)', async (sources, exclude, digest) => {
    const context = await BuildContext.open(ctx, new FileHashCache());
    const sels = await Promise.all(sources.map((s) => context.select(s)));
    expect((await context.checksum(sels, exclude)).digest).toBe(digest);
  });

  it.skipIf(!isRoot).each(CASES)('the layers of %s', async (_name, steps, diffIds) => {
    const r = await build({ context: ctx, dockerfile: { text: `FROM scratch\n${steps}\n` }, root, noCache: true });
    expect(r.manifest.layers.map((l) => l.digest).join(' ')).toBe(diffIds.join(' '));
  });
});
