/**
 * diff's `pruneCopiedUp`: the dirs an upper holds only as unchanged copy-ups are left out of the
 * layer, and with the option they go from the upper too, so a committed step's snapshot holds what
 * its layer holds (and later steps do not merge one more empty /etc per step).
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { promises as fs, lstatSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diffSource } from './diff.ts';
import { extractNames } from './list.ts';
import { createSnapshotter, diff } from '../index.ts';

const T = new Date('2020-02-02T02:02:02.123Z');

describe('diff of an upper: unchanged copy-ups', () => {
  let tmp: string;
  let lower: string;
  let upper: string;
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-diff-prune-'));
    lower = path.join(tmp, 'lower');
    upper = path.join(tmp, 'upper');
    // the lower: etc/ssl and var/lib, as an image has them
    for (const d of ['etc/ssl', 'var/lib']) await fs.mkdir(path.join(lower, d), { recursive: true });
    // the upper: etc and etc/ssl only copied up (same mode and times), var changed (its mtime)
    // but var/lib in it only copied up, and a new file
    for (const d of ['etc/ssl', 'var/lib', 'new']) await fs.mkdir(path.join(upper, d), { recursive: true });
    await fs.writeFile(path.join(upper, 'new/step.txt'), 'x\n');
    for (const root of [lower, upper])
      for (const d of ['etc/ssl', 'etc', 'var/lib']) await fs.utimes(path.join(root, d), T, T);
    await fs.utimes(path.join(lower, 'var'), T, T);
    await fs.utimes(path.join(upper, 'var'), new Date('2021-01-01'), new Date('2021-01-01'));
  });
  afterEach(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const names = (prune: boolean) =>
    extractNames(diffSource({ kind: 'upper', upper, lowers: [lower] }, { pruneCopiedUp: prune }));
  const exists = (rel: string) =>
    fs.lstat(path.join(upper, rel)).then(
      () => true,
      () => false,
    );

  it('without the option: left out of the layer, kept in the upper', async () => {
    expect(await names(false)).toEqual(['new/', 'new/step.txt', 'var/']);
    expect(await exists('etc/ssl')).toBe(true);
    expect(await exists('var/lib')).toBe(true);
  });

  it('with it: the same layer, and the copy-ups removed from the upper with their parents’ times kept', async () => {
    const before = { root: lstatSync(upper), var: lstatSync(path.join(upper, 'var')) };
    expect(await names(true)).toEqual(['new/', 'new/step.txt', 'var/']);
    expect(await exists('etc')).toBe(false);
    expect(await exists('var/lib')).toBe(false);
    expect(await exists('var')).toBe(true);
    expect(await exists('new/step.txt')).toBe(true);
    // rmdir moved the parents' mtimes to now: they are put back (to about a µs)
    expect(Math.abs(lstatSync(upper).mtimeMs - before.root.mtimeMs)).toBeLessThan(0.01);
    expect(Math.abs(lstatSync(path.join(upper, 'var')).mtimeMs - before.var.mtimeMs)).toBeLessThan(0.01);
    // and the pruned upper diffs to the same layer again
    expect(await names(true)).toEqual(['new/', 'new/step.txt', 'var/']);
  });

  it('a copy-up that holds anything but unchanged dirs stays, in the layer and in the upper', async () => {
    await fs.writeFile(path.join(upper, 'etc/ssl/cert'), 'c');
    await fs.utimes(path.join(upper, 'etc/ssl'), T, T);
    expect(await names(true)).toEqual(['etc/', 'etc/ssl/', 'etc/ssl/cert', 'new/', 'new/step.txt', 'var/']);
    expect(await exists('etc/ssl/cert')).toBe(true);
  });
});

describe('diff of an overlay step: the lowers’ answers kept under the store’s identity', () => {
  it.skipIf(process.getuid?.() !== 0)(
    'a store removed and made again at its path (the same snapshot ids) is not answered from the old one',
    async () => {
      const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-diff-identity-'));
      try {
        const root = path.join(tmp, 'store');
        // each store: a base whose etc has mode `baseMode`, and a step whose upper holds etc as 0755
        const stepLayer = async (baseMode: number) => {
          const s = await createSnapshotter(root, { driver: 'overlay' });
          await s.prepare('b');
          const b = (await s.writableDir('b')).dir;
          await fs.mkdir(path.join(b, 'etc'));
          await fs.chmod(path.join(b, 'etc'), baseMode);
          await fs.utimes(path.join(b, 'etc'), T, T);
          await s.commit('B', 'b');
          await s.prepare('c', 'B');
          const c = (await s.writableDir('c')).dir;
          await fs.mkdir(path.join(c, 'etc'), { mode: 0o755 });
          await fs.chmod(path.join(c, 'etc'), 0o755);
          await fs.utimes(path.join(c, 'etc'), T, T);
          await fs.writeFile(path.join(c, 'f'), 'f');
          return extractNames(diff(s, 'c'));
        };
        expect(await stepLayer(0o755)).toEqual(['f']); // etc only copied up
        await fs.rm(root, { recursive: true });
        // the same paths (the first ids again), but etc is 0700 below: the step changed its mode
        expect(await stepLayer(0o700)).toEqual(['etc/', 'f']);
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
      }
    },
  );
});
