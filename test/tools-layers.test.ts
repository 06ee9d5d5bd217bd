import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, layers, Store } from '@vlab/image';
import { makeContext, repo } from './helpers.ts';

const run = promisify(execFile);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

/** Regular files of a layer tar by GNU tar's listing: path → size. */
async function tarFiles(file: string): Promise<Map<string, number>> {
  const { stdout } = await run('tar', ['-tvf', file]);
  const out = new Map<string, number>();
  for (const line of stdout.trim().split('\n').filter(Boolean)) {
    const f = line.split(/\s+/);
    if (f[0]!.startsWith('-')) out.set(f.slice(5).join(' ').replace(/^\.\//, ''), Number(f[2]));
  }
  return out;
}

describe('vbuild layers (dive)', () => {
  let root: string;
  let ctx: string;
  beforeAll(async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-layers-'));
    ctx = await makeContext({ big: 'a'.repeat(3000), small: 'b'.repeat(700), other: 'c'.repeat(111) });
    const base = 'FROM scratch\nCOPY other /etc/other\n';
    await build({ root, context: ctx, dockerfile: { text: base }, tags: ['lbase'], sourceDateEpoch: 0 });
    const df = 'FROM lbase\nCOPY big /data/f\nCOPY small /data/f\nCOPY other /data/g\n';
    await build({ root, context: ctx, dockerfile: { text: df }, tags: ['lapp'], sourceDateEpoch: 0 });
  }, 60_000);
  afterAll(async () => {
    for (const d of [root, ctx]) await fsp.rm(d, { recursive: true, force: true });
  });

  it('counts files, sizes, wasted bytes and sharing as the layer tars say', async () => {
    const store = await Store.open(root);
    const img = (await store.resolve('lapp'))!;
    const tars = await Promise.all(img.manifest.layers.map((l) => tarFiles(store.blobs.path(l.digest))));
    const r = await layers('lapp', { root });
    expect(r.layers).toHaveLength(tars.length);
    // on its own: every file of every layer, and which of them a later layer replaces
    let total = 0;
    let wasted = 0;
    tars.forEach((files, i) => {
      for (const [p, size] of files) {
        total += size;
        if (tars.slice(i + 1).some((t) => t.has(p))) wasted += size;
      }
      const rep = r.layers[i]!;
      const fileChanges = rep.changes.filter((c) => c.type === 'file');
      expect(new Map(fileChanges.map((c) => [c.path, c.size]))).toEqual(files);
    });
    expect(wasted).toBe(3000);
    expect(r).toMatchObject({ totalFileBytes: total, wastedBytes: wasted, efficiency: (total - wasted) / total });
    expect(r.layers[1]!.wastedBytes).toBe(3000);
    expect(r.layers[2]!.changes.find((c) => c.path === 'data/f')).toMatchObject({ kind: 'M', size: 700 });
    expect(r.layers[0]!.sharedWith).toEqual(['lbase:latest']);
    expect(r.layers[1]!.sharedWith).toEqual([]);

    const { stdout } = await run('node', [vbuild, 'layers', 'lapp', '--root', root]);
    expect(stdout).toMatch(/Wasted: 3000/);
    expect(stdout).toMatch(/shared with lbase:latest/);
    const tree = await run('node', [vbuild, 'layers', 'lapp', '--root', root, '--tree']);
    expect(tree.stdout).toMatch(/^ {2}M {8}700 {4}f$/m);
    const json = JSON.parse((await run('node', [vbuild, 'layers', 'lapp', '--root', root, '--format', 'json'])).stdout);
    expect(json).toEqual(r);
  }, 30_000);
});
