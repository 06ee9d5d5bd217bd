import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMounted, unmountAll } from '@vlab/overlay';
import { openEngine, type Engine } from '../api.ts';
import { importRootfs } from '../image/import.ts';
import { layersOf } from '../solve/base.ts';
import { MEDIA, type LayerRef } from '../image/types.ts';
import { Cgroup, detectCgroupLayout } from '../exec/cgroups.ts';
import { cgroupParentOf } from '../store/paths.ts';
import { fsck } from './fsck.ts';
import { removeCgroupParent } from '../exec/testing/suite.ts';

const vbuild = path.resolve(import.meta.dirname, '../../bin/vbuild.js');
let root: string;
let engine: Engine;
/** busybox-less fixture: `base` (one imported layer) and `two` (base + a layer made in a snapshot). */
let layers: LayerRef[];

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-fsck-'));
  const tree = path.join(root, 'tree');
  await fsp.mkdir(path.join(tree, 'etc'), { recursive: true });
  await fsp.writeFile(path.join(tree, 'etc', 'hello'), 'hello\n');
  execFileSync('tar', ['-C', tree, '-cf', path.join(root, 'base.tar'), '.']);
  engine = await openEngine(path.join(root, 'store'));
  const base = await importRootfs(engine.store, path.join(root, 'base.tar'), 'base');
  const top = await engine.layers.withWritableSnapshot(layersOf(base), (rootfs) =>
    fsp.writeFile(path.join(rootfs, 'two.txt'), 'two\n'),
  );
  await engine.layers.settle(); // as build() does at its end: the step's snapshot in metadata.json
  layers = [...layersOf(base), top!];
  const img = await engine.store.putImage(
    { ...base.config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } },
    layers.map((l) => ({ mediaType: MEDIA.layer, digest: l.digest, size: l.size })),
  );
  await engine.store.tag('two', img.manifestDigest);
  await engine.cache.put({
    key: `sha256:${'c'.repeat(64)}`,
    layers,
    config: base.config,
    created: base.config.created!,
  });
  await engine.store.lease.release();
});
afterEach(async () => {
  await execFileAsync('umount', ['-R', path.join(root, 'store', 'tmp', deadKey)]).catch(() => undefined);
  const parent = cgroupParentOf(store());
  await fsp.rm(root, { recursive: true, force: true });
  await removeCgroupParent(parent);
});

const execFileAsync = promisify(execFile);
const store = () => path.join(root, 'store');
const kinds = async (repair = false) => (await fsck(store(), { repair })).problems.map((p) => `${p.kind} ${p.target}`);
/** The pid of a process that has exited: what a SIGKILLed build leaves its names with. */
const deadPid = spawnSync('true').pid!;
const deadKey = `mnt-step-${deadPid}-abcdef`;

describe('fsck', () => {
  it('a store just written is clean', async () => {
    expect(await kinds()).toEqual([]);
  });

  it('finds a corrupt blob; --repair removes it and the cache records that named it, the image stays broken', async () => {
    const blob = engine.store.blobs.path(layers[1]!.digest);
    const bytes = await fsp.readFile(blob);
    bytes[600] ^= 1;
    await fsp.writeFile(blob, bytes);
    expect(await kinds()).toEqual([`blob-corrupt ${layers[1]!.digest}`]);
    const r = await fsck(store(), { repair: true });
    expect(r.repaired.map((p) => p.kind).sort()).toEqual(['blob-corrupt', 'cache-dangling']);
    expect(r.problems).toMatchObject([{ kind: 'blob-missing', target: layers[1]!.digest, repairable: false }]);
  });

  it('finds a blob a manifest needs that is gone, and cannot repair it', async () => {
    const img = (await engine.store.resolve('two'))!;
    await fsp.rm(engine.store.blobs.path(img.configDigest));
    expect(await kinds()).toEqual([`blob-missing ${img.configDigest}`]);
    expect(await kinds(true)).toEqual([`blob-missing ${img.configDigest}`]);
  });

  it('finds a broken snapshot parent; --repair drops the snapshot, which is unpacked again from its layer', async () => {
    const meta = path.join(store(), 'snapshots', 'metadata.json');
    const doc = JSON.parse(await fsp.readFile(meta, 'utf8')) as { snapshots: Record<string, { parent?: string }> };
    const child = Object.keys(doc.snapshots).find((k) => doc.snapshots[k]!.parent)!;
    doc.snapshots[child]!.parent = `sha256:${'0'.repeat(64)}`;
    await fsp.writeFile(meta, JSON.stringify(doc));
    expect(await kinds()).toEqual([`snapshot-parent-missing ${child}`]);
    expect(await kinds(true)).toEqual([]);
    const again = await openEngine(store());
    await again.layers.ensureSnapshot(layers);
    await again.store.lease.release();
    expect(await kinds()).toEqual([]);
  });

  it("finds a dead build's temp files, lease, snapshot, mount and cgroup (not a live one's); --repair removes them", async () => {
    const s = store();
    await fsp.writeFile(path.join(s, 'blobs', 'sha256', `.tmp-${deadPid}-0a0b0c`), 'half a blob');
    await fsp.writeFile(path.join(s, 'blobs', 'sha256', `.tmp-${process.pid}-0a0b0c`), 'being written');
    await fsp.writeFile(path.join(s, `index.json.tmp-${deadPid}-x1`), '{');
    await fsp.mkdir(path.join(s, 'leases'), { recursive: true });
    await fsp.writeFile(path.join(s, 'leases', `${deadPid}-abc`), `blob ${layers[1]!.digest}\n`);
    const snaps = await engine.snapshots();
    await snaps.prepare(`step-${deadPid}-abcdef`, (await snaps.walk()).find((i) => i.kind === 'committed')!.key);
    const mnt = path.join(s, 'tmp', deadKey);
    await fsp.mkdir(mnt, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    const layout = await detectCgroupLayout();
    const cg = await Cgroup.create(layout, `${cgroupParentOf(s)}/${deadPid}-0123abcd`);
    try {
      const cli = spawnSync(process.execPath, [vbuild, 'fsck', '--root', s], { encoding: 'utf8' });
      expect(cli.status).toBe(1);
      const lines = cli.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0])
        .sort();
      expect(lines).toEqual([
        'cgroup-orphan',
        'lease-stale',
        'mount-orphan',
        'snapshot-stale',
        'temp-orphan',
        'temp-orphan',
        'temp-orphan',
      ]);
      expect(cli.stdout).not.toContain(`.tmp-${process.pid}-`);
      const fixed = spawnSync(process.execPath, [vbuild, 'fsck', '--repair', '--root', s], { encoding: 'utf8' });
      expect(fixed.stderr).toContain('fsck: clean (7 repaired)');
      expect(fixed.status).toBe(0);
      expect(isMounted(mnt)).toBe(false);
      expect((await cg.pids()).length).toBe(0);
      expect(await fsp.stat(cg.dirs[Object.keys(cg.dirs)[0]!]!).catch(() => undefined)).toBeUndefined();
      expect(await fsp.readdir(path.join(s, 'blobs', 'sha256'))).toContain(`.tmp-${process.pid}-0a0b0c`);
    } finally {
      await unmountAll(mnt).catch(() => undefined);
      await cg.destroy().catch(() => undefined);
    }
  });
});
