import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, inspect, rebase, Store } from '@vlab/image';
import { makeContext, repo } from './helpers.ts';
import { imageTree } from './tools-helpers.ts';

const run = promisify(execFile);
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
const SDE = 1700000000;

describe('vbuild rebase (crane rebase)', () => {
  let root: string;
  const dirs: string[] = [];
  const base = async (tag: string, release: string, extra = '') => {
    const ctx = await makeContext({
      'etc/release': release,
      'etc/keep': 'same in both\n',
      ...(extra ? { 'lib/new': extra } : {}),
    });
    dirs.push(ctx);
    const df = `FROM scratch\nCOPY . /\nENV BASE=${tag} PATH=/bin WHO=base\nLABEL from=${tag}\nWORKDIR /srv\n`;
    await build({ root, context: ctx, dockerfile: { text: df }, tags: [tag], sourceDateEpoch: SDE });
  };
  const appDf = 'ARG BASE\nFROM ${BASE}\nCOPY app.txt /srv/app.txt\nENV WHO=app\nCOPY etc/override /etc/override\n';
  let app: string;

  beforeAll(async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-rebase-'));
    await base('base:v1', 'openssl 1.0 (vulnerable)\n');
    await base('base:v2', 'openssl 1.1 (patched)\n', 'added by the new base\n');
    app = await makeContext({ 'app.txt': 'the app\n', 'etc/override': 'mine\n' });
    dirs.push(app);
    await build({
      root,
      context: app,
      dockerfile: { text: appDf },
      buildArgs: { BASE: 'base:v1' },
      tags: ['app:1'],
      sourceDateEpoch: SDE,
    });
  }, 60_000);
  afterAll(async () => {
    for (const d of [root, ...dirs]) await fsp.rm(d, { recursive: true, force: true });
  });

  it('puts the patched base under the image’s own layers, and equals a rebuild on the new base', async () => {
    const store = await Store.open(root);
    const before = (await store.resolve('app:1'))!;
    const v1 = (await store.resolve('base:v1'))!;
    const v2 = (await store.resolve('base:v2'))!;
    const r = await rebase('app:1', { root, from: 'base:v1', to: 'base:v2', tag: 'app:rebased' });
    expect(r).toMatchObject({
      removedLayers: v1.manifest.layers.length,
      addedLayers: v2.manifest.layers.length,
      tag: 'app:rebased',
    });
    const after = (await store.resolve('app:rebased'))!;
    const own = before.manifest.layers.slice(v1.manifest.layers.length);
    expect(after.manifest.layers.map((l) => l.digest)).toEqual([...v2.manifest.layers, ...own].map((l) => l.digest));
    expect(after.config.rootfs.diff_ids).toEqual([
      ...v2.config.rootfs.diff_ids,
      ...before.config.rootfs.diff_ids.slice(v1.config.rootfs.diff_ids.length),
    ]);
    // the own layers' blobs are the very same (nothing rebuilt), the history is v2's then the app's
    expect(after.config.history.slice(0, v2.config.history.length)).toEqual(v2.config.history);
    expect(after.config.history.slice(v2.config.history.length)).toEqual(
      before.config.history.slice(v1.config.history.length),
    );
    // config: BASE and the label come from v2, WHO stays the app's
    const env = after.config.config.Env ?? [];
    expect(env).toContain('BASE=base:v2');
    expect(env).toContain('WHO=app');
    expect(after.config.config.Labels).toEqual({ from: 'base:v2' });

    const tree = await imageTree(root, 'app:rebased');
    const read = async (p: string) => (await tree).get(p);
    expect((await read('etc/release'))?.size).toBe('openssl 1.1 (patched)\n'.length);
    expect(await read('lib/new')).toBeDefined();
    expect((await read('srv/app.txt'))?.size).toBe('the app\n'.length);
    expect(await read('etc/override')).toBeDefined();

    await build({
      root,
      context: app,
      dockerfile: { text: appDf },
      buildArgs: { BASE: 'base:v2' },
      tags: ['app:rebuilt'],
      sourceDateEpoch: SDE,
    });
    const rebuilt = await imageTree(root, 'app:rebuilt');
    expect([...tree.entries()]).toEqual([...rebuilt.entries()]);
    expect((await inspect('app:rebuilt', { root })).config.Env).toEqual(env);
  }, 60_000);

  it('refuses an image not built on --from, with E_REBASE_MISMATCH and exit 1 from the CLI', async () => {
    await expect(rebase('base:v2', { root, from: 'base:v1', to: 'base:v2' })).rejects.toMatchObject({
      code: 'E_REBASE_MISMATCH',
    });
    const e = await run('node', [
      vbuild,
      'rebase',
      'app:1',
      '--root',
      root,
      '--from',
      'base:v2',
      '--to',
      'base:v1',
    ]).catch((x: unknown) => x as { code: number; stderr: string });
    expect(e).toMatchObject({ code: 1 });
    expect((e as { stderr: string }).stderr).toMatch(/E_REBASE_MISMATCH/);
    const { stdout } = await run('node', [
      vbuild,
      'rebase',
      'app:1',
      '--root',
      root,
      '--from',
      'base:v1',
      '--to',
      'base:v2',
      '--format',
      'json',
    ]);
    const j = JSON.parse(stdout) as { tag: string; keptLayers: number };
    expect(j).toMatchObject({ tag: 'app:1', keptLayers: 2 });
  }, 30_000);
});
