import { describe, it, expect, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createSnapshotter,
  mountAll,
  mountThrowaway,
  unmountAll,
  unmountThrowaway,
  isMounted,
  overlayMountArgs,
  type Snapshotter,
} from './index.ts';
import { MetaStore } from './store.ts';
import { run } from './sys.ts';
import { fileURLToPath } from 'node:url';

describe('mounts', () => {
  let tmp: string;
  const mounted: string[] = [];
  afterAll(async () => {
    for (const m of mounted) await unmountAll(m).catch(() => {});
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it("mountThrowaway: writes land in the upper only, even when the source's name holds overlay's separators", async () => {
    const d = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-throwaway-'));
    try {
      // As a lowerdir this would read as two dirs and an extra option: it must not get there.
      const src = path.join(d, 'ctx:x,upperdir=y');
      await fs.mkdir(path.join(src, 'sub'), { recursive: true });
      await fs.writeFile(path.join(src, 'sub', 'f'), 'original');
      const view = path.join(d, 'view');
      await fs.mkdir(view);
      const merged = await mountThrowaway(src, view);
      try {
        expect(await fs.readFile(path.join(merged, 'sub', 'f'), 'utf8')).toBe('original');
        await fs.writeFile(path.join(merged, 'sub', 'f'), 'changed');
        await fs.rm(path.join(merged, 'sub'), { recursive: true });
        await fs.writeFile(path.join(merged, 'new'), 'new');
        expect(await fs.readdir(merged)).toEqual(['new']);
      } finally {
        await unmountThrowaway(view);
      }
      expect(isMounted(merged) || isMounted(path.join(view, 'lower'))).toBe(false);
      expect(await fs.readdir(src)).toEqual(['sub']);
      expect(await fs.readFile(path.join(src, 'sub', 'f'), 'utf8')).toBe('original');
      await unmountThrowaway(view); // idempotent
    } finally {
      await fs.rm(d, { recursive: true, force: true });
    }
  });

  it('a stack of 200 layers mounts (lowerdirs shortened to fit one page)', { timeout: 120_000 }, async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-deep-with-a-rather-long-directory-name-'));
    const s: Snapshotter = await createSnapshotter(path.join(tmp, 'root'), { driver: 'overlay' });
    let parent: string | undefined;
    for (let i = 0; i < 200; i++) {
      const key = `sha256:${i.toString(16).padStart(64, '0')}`;
      await s.prepare(`tmp-${i}`, parent);
      const { dir } = await s.writableDir(`tmp-${i}`);
      await fs.writeFile(path.join(dir, `f${i}`), String(i));
      if (i === 199) await fs.writeFile(path.join(dir, 'f0'), 'top');
      await s.commit(key, `tmp-${i}`);
      parent = key;
    }
    const mounts = await s.prepare('work', parent);
    expect(mounts[0].options.join(',').length).toBeGreaterThan(4096);
    expect(overlayMountArgs(mounts[0]).options.length).toBeLessThan(4096);
    const target = path.join(tmp, 'mnt');
    mounted.push(target);
    await mountAll(mounts, target);
    expect(isMounted(target)).toBe(true);
    expect((await fs.readdir(target)).length).toBe(200);
    expect(await fs.readFile(path.join(target, 'f0'), 'utf8')).toBe('top');
    expect(await fs.readFile(path.join(target, 'f100'), 'utf8')).toBe('100');
    await unmountAll(target);
    await unmountAll(target); // idempotent
    expect(isMounted(target)).toBe(false);
  });

  it('metadata stays consistent after a crash: temp files and unnamed dirs are cleaned on open', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-crash-'));
    try {
      const s = await createSnapshotter(root, { driver: 'native' });
      await s.prepare('a');
      await s.commit('A', 'a');
      // a crash after creating dirs but before renaming the new metadata into place:
      await fs.mkdir(path.join(root, 'snapshots', 'zz', 'fs'), { recursive: true });
      await fs.writeFile(path.join(root, 'metadata.json.tmp-dead'), '{"half":');
      const store = new MetaStore(root);
      await store.open();
      expect(store.all().map((i) => [i.key, i.kind])).toEqual([['A', 'committed']]);
      expect(await fs.readdir(path.join(root, 'snapshots'))).toEqual([store.get('A')!.id]);
      expect((await fs.readdir(root)).filter((f) => f.includes('tmp'))).toEqual([]);
      const again = await createSnapshotter(root, { driver: 'native' });
      expect((await again.stat('A'))?.kind).toBe('committed');
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });

  it('several processes share one root without losing updates (metadata lock)', { timeout: 120_000 }, async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-multi-'));
    try {
      const script = fileURLToPath(new URL('./testing/concurrent-script.ts', import.meta.url));
      const rs = await Promise.all(
        ['p', 'q', 'r'].map((tag) => run(process.execPath, ['--import', 'tsx', script, root, tag])),
      );
      for (const r of rs) expect(r.stderr).toBe('');
      const s = await createSnapshotter(root, { driver: 'native' });
      const all = await s.walk();
      expect(all.length).toBe(45);
      expect(all.every((i) => i.kind === 'committed')).toBe(true);
      const m = await s.mounts('q-c14');
      expect((await fs.readdir(m[0].source)).sort()).toEqual(Array.from({ length: 15 }, (_, i) => `q-${i}`).sort());
      expect((await fs.readdir(path.join(root, 'snapshots'))).length).toBe(45);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
