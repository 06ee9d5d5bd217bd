/**
 * The conformance suite every Snapshotter driver runs (containerd's snapshots/testsuite idea).
 *
 * It takes the test functions as an argument instead of importing vitest, so that importing
 * @vlab/overlay in production never loads a test runner: `snapshotterSuite(name, factory, vitest)`
 * with `import * as vitest from 'vitest'`, or no third argument when the runner's globals are on.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import type { Snapshotter } from './types.ts';
import { mountAll, unmountAll } from './mount.ts';
import { diffSource } from './layer/diff.ts';
import { apply } from './layer/apply.ts';
import { writeLayer } from './layer/digest.ts';
import { extractNames } from './layer/list.ts';
import { Writable } from 'node:stream';

type Fn = (...a: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
export interface TestApi {
  describe: Fn;
  it: Fn;
  expect: Fn;
  beforeEach: Fn;
  afterEach: Fn;
}

const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e instanceof VlabError ? e.code : String(e);
  }
}

export function snapshotterSuite(
  name: string,
  factory: () => Promise<{ snapshotter: Snapshotter; cleanup(): Promise<void> }>,
  api?: TestApi,
): void {
  const t = api ?? (globalThis as unknown as TestApi);
  if (typeof t.describe !== 'function')
    throw new VlabError('E_NO_TEST_API', 'snapshotterSuite needs the test API: pass `vitest` as third argument');
  const { describe, it, expect, beforeEach, afterEach } = t;

  describe(`snapshotter conformance: ${name}`, () => {
    let s: Snapshotter;
    let cleanup: () => Promise<void>;
    let tmp: string;
    const targets: string[] = [];
    beforeEach(async () => {
      ({ snapshotter: s, cleanup } = await factory());
      tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-suite-'));
    });
    afterEach(async () => {
      for (const m of targets.splice(0)) await unmountAll(m).catch(() => {});
      await fs.rm(tmp, { recursive: true, force: true });
      await cleanup();
    });
    const mnt = async (key: string) => {
      const target = path.join(tmp, `m${targets.length}`);
      targets.push(target);
      await mountAll(await s.mounts(key), target);
      return target;
    };

    it('prepare → write → commit → child sees parent content', async () => {
      await s.prepare('a');
      let m = await mnt('a');
      await fs.writeFile(path.join(m, 'hello'), 'world');
      await unmountAll(m);
      await s.commit('sha256:' + 'a'.repeat(64), 'a');
      expect(await s.stat('a')).toBeUndefined();
      const info = await s.stat('sha256:' + 'a'.repeat(64));
      expect(info?.kind).toBe('committed');
      await s.prepare('b', 'sha256:' + 'a'.repeat(64), { x: '1' });
      m = await mnt('b');
      expect(await fs.readFile(path.join(m, 'hello'), 'utf8')).toBe('world');
      await fs.writeFile(path.join(m, 'second'), '2');
      await fs.rm(path.join(m, 'hello'));
      await unmountAll(m);
      expect(await s.stat('b')).toMatchObject({
        kind: 'active',
        parent: 'sha256:' + 'a'.repeat(64),
        labels: { x: '1' },
      });
      expect((await s.walk()).map((i) => i.key).sort()).toEqual(['b', 'sha256:' + 'a'.repeat(64)]);
    });

    it('keys are unique, parents must be committed, remove refuses while a child exists', async () => {
      await s.prepare('a');
      expect(await codeOf(s.prepare('a'))).toBe('E_SNAPSHOT_EXISTS');
      expect(await codeOf(s.prepare('b', 'a'))).toBe('E_SNAPSHOT_KIND');
      expect(await codeOf(s.prepare('b', 'nope'))).toBe('E_SNAPSHOT_NOT_FOUND');
      await s.commit('A', 'a');
      expect(await codeOf(s.commit('B', 'A'))).toBe('E_SNAPSHOT_KIND');
      await s.prepare('c', 'A');
      expect(await codeOf(s.remove('A'))).toBe('E_SNAPSHOT_IN_USE');
      await s.remove('c');
      await s.remove('c'); // idempotent
      await s.remove('A');
      expect(await s.walk()).toEqual([]);
    });

    it('view is read-only and shows the parent', async () => {
      await s.prepare('a');
      const { dir } = await s.writableDir('a');
      await fs.writeFile(path.join(dir, 'f'), 'x');
      await s.commit('A', 'a');
      await s.view('v', 'A');
      const m = await mnt('v');
      expect(await fs.readFile(path.join(m, 'f'), 'utf8')).toBe('x');
      expect(await codeOf(fs.writeFile(path.join(m, 'g'), 'y'))).toMatch(/EROFS|read-only/);
      expect(await codeOf(s.writableDir('v'))).toBe('E_SNAPSHOT_KIND');
    });

    it('usage counts the snapshot’s own bytes and inodes', async () => {
      await s.prepare('a');
      const { dir } = await s.writableDir('a');
      await fs.mkdir(path.join(dir, 'd'));
      await fs.writeFile(path.join(dir, 'd', 'f'), Buffer.alloc(100_000, 1));
      const u = await s.usage('a');
      expect(u.inodes).toBe(2);
      expect(u.size).toBeGreaterThanOrEqual(100_000);
    });

    it('apply a layer, commit, diff a child: only the change, whiteouts converted', async () => {
      const base = await fs.mkdtemp(path.join(tmp, 'src-'));
      await fs.mkdir(path.join(base, 'etc'));
      await fs.writeFile(path.join(base, 'etc', 'keep'), 'k');
      await fs.writeFile(path.join(base, 'etc', 'gone'), 'g');
      const layer: Buffer[] = [];
      await writeLayer(
        diffSource({ kind: 'compare', dir: base }),
        new Writable({
          write(c, _e, cb) {
            layer.push(c);
            cb();
          },
        }),
      );
      await s.prepare('l0');
      const w = await s.writableDir('l0');
      await apply(Readable.from([Buffer.concat(layer)]), w.dir, { whiteouts: w.whiteouts });
      await s.commit('L0', 'l0');
      await s.prepare('l1', 'L0');
      const m = await mnt('l1');
      await fs.rm(path.join(m, 'etc', 'gone'));
      await fs.writeFile(path.join(m, 'new'), 'n');
      await unmountAll(m);
      const names: string[] = [];
      const d = await writeLayer(diffSource(await s.diffSource('l1')), sink());
      expect(d.diffId).toMatch(/^sha256:[0-9a-f]{64}$/);
      names.push(...(await extractNames(diffSource(await s.diffSource('l1')))));
      expect(names).toEqual(['etc/', 'etc/.wh.gone', 'new']);
    });
  });
}
