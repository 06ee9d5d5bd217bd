import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layers, squash, Store } from '@vlab/image';
import { buildWithEvents, cachedSteps, freshStore, makeContext, removeStore, repo } from './helpers.ts';
import { imageTree } from './tools-helpers.ts';

const run = promisify(execFile);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
const SDE = 1700000000;
const BIG = 'x'.repeat(20_000);
const df = [
  'FROM busybox',
  'COPY big keep /data/',
  'RUN rm /data/big /etc/group && mkdir -p /data/dir && echo new > /data/new',
  'COPY keep /data/dir/keep2',
  'CMD ["cat", "/data/keep"]',
].join('\n');

/** The entries of a layer tar, by `tar -tv` (GNU tar: mode owner size date time name). */
async function tarEntries(file: string): Promise<Map<string, number>> {
  const { stdout } = await run('tar', ['-tvf', file]);
  const out = new Map<string, number>();
  for (const line of stdout.trim().split('\n')) {
    const f = line.split(/\s+/);
    out.set(f.slice(5).join(' ').replace(/^\.\//, '').replace(/\/$/, ''), Number(f[2]));
  }
  return out;
}

describe('vbuild squash and build --squash', () => {
  let root: string;
  let ctx: string;
  beforeAll(async () => {
    root = await freshStore();
    ctx = await makeContext({ big: BIG, keep: 'kept\n' });
  }, 60_000);
  afterAll(async () => {
    await removeStore(root);
    await fsp.rm(ctx, { recursive: true, force: true });
  });

  it('makes one layer above the base with the deletes as whiteouts, the same tree, a reproducible digest; the cache still hits', async () => {
    const opts = { root, context: ctx, dockerfile: { text: df }, sourceDateEpoch: SDE };
    await buildWithEvents({ ...opts, tags: ['app:plain'] });
    const store = await Store.open(root);
    const plain = (await store.resolve('app:plain'))!;
    const base = (await store.resolve('busybox'))!;
    expect(plain.manifest.layers).toHaveLength(base.manifest.layers.length + 3);

    const r = await squash('app:plain', { root, tag: 'app:squashed' });
    expect(r).toMatchObject({ baseLayers: base.manifest.layers.length, squashedLayers: 3, base: 'busybox:latest' });
    const sq = (await store.resolve('app:squashed'))!;
    expect(sq.manifest.layers.slice(0, -1)).toEqual(base.manifest.layers);
    expect(sq.manifest.layers).toHaveLength(base.manifest.layers.length + 1);
    expect(sq.config.rootfs.diff_ids).toHaveLength(sq.manifest.layers.length);
    expect(sq.config.history.filter((h) => !h.empty_layer)).toHaveLength(sq.manifest.layers.length);
    expect(sq.config.config.Cmd).toEqual(['cat', '/data/keep']);

    // the squashed layer, read by GNU tar: the delete of a base file is a whiteout, the file made and
    // deleted inside the squashed steps is not there at all, the rest is
    const entries = await tarEntries(store.blobs.path(r.layer.digest));
    expect(entries.has('etc/.wh.group')).toBe(true);
    expect([...entries.keys()].some((n) => n.includes('big'))).toBe(false);
    expect(entries.get('data/keep')).toBe(5);
    expect(entries.get('data/dir/keep2')).toBe(5);
    expect(entries.get('data/new')).toBe(4);
    const ownBytes = plain.manifest.layers.slice(-3).reduce((n, l) => n + l.size, 0);
    expect(r.layer.size).toBeLessThan(ownBytes - BIG.length);

    // the tree is the unsquashed image's
    expect([...(await imageTree(root, 'app:squashed')).entries()]).toEqual([
      ...(await imageTree(root, 'app:plain')).entries(),
    ]);

    // reproducible: again, and from the CLI, the same digest
    expect((await squash('app:plain', { root })).digest).toBe(r.digest);
    const { stdout } = await run('node', [vbuild, 'squash', 'app:plain', '--root', root, '--format', 'json']);
    expect((JSON.parse(stdout) as { digest: string }).digest).toBe(r.digest);

    // build --squash: every step from the cache, the same image as squash gives
    const again = await buildWithEvents({ ...opts, tags: ['app:built-squashed'], squash: true });
    expect(cachedSteps(again.events)).toHaveLength(3);
    // (build clamps to its SOURCE_DATE_EPOCH, so squash is given the same)
    expect(again.result.digest).toBe((await squash('app:plain', { root, sourceDateEpoch: SDE })).digest);
    // and the plain build after it still hits for every step, with its per-step layers
    const plainAgain = await buildWithEvents({ ...opts, tags: ['app:plain2'] });
    expect(cachedSteps(plainAgain.events)).toHaveLength(3);
    expect(plainAgain.result.digest).toBe(plain.manifestDigest);

    // vbuild layers sees the delete of the base's /etc/group with the bytes it removed
    const baseFiles = await tarEntries(store.blobs.path(base.manifest.layers[0]!.digest));
    const report = await layers('app:plain', { root });
    const rm = report.layers.flatMap((l) => l.changes).find((c) => c.kind === 'D' && c.path === 'etc/group');
    expect(rm?.size).toBe(baseFiles.get('etc/group'));
    expect(report.layers[1]!.wastedBytes).toBe(BIG.length);

    const all = await squash('app:plain', { root, all: true });
    expect(all).toMatchObject({ baseLayers: 0, squashedLayers: plain.manifest.layers.length });
    const allTar = await tarEntries((await Store.open(root)).blobs.path(all.layer.digest));
    expect([...allTar.keys()].some((n) => n.includes('.wh.'))).toBe(false);
    expect(allTar.has('etc/group')).toBe(false);
    expect(allTar.has('etc/passwd')).toBe(true);
  }, 90_000);
});
