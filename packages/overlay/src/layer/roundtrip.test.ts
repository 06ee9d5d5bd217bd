/**
 * Random sequences of filesystem operations on a real mounted snapshot, then: diff → apply onto
 * the same parent in a fresh snapshot must reproduce the exact tree (content, modes, owners,
 * hard links, symlinks, xattrs, devices), and diffing twice gives byte-equal tars.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { createSnapshotter, mountAll, unmountAll, apply, diff, writeLayer, type Snapshotter } from '../index.ts';
import { describeTree } from '../testing/tree.ts';
import { opArb, perform, CAP } from '../testing/ops.ts';

const collect = () => {
  const parts: Buffer[] = [];
  return {
    w: new Writable({
      write(c, _e, cb) {
        parts.push(c);
        cb();
      },
    }),
    buf: () => Buffer.concat(parts),
  };
};

for (const driver of ['overlay', 'native'] as const) {
  describe(`diff → apply round trip (${driver})`, () => {
    let tmp: string;
    let s: Snapshotter;
    const mounted: string[] = [];
    beforeAll(async () => {
      tmp = await fs.mkdtemp(path.join(os.tmpdir(), `vlab-rt-${driver}-`));
      s = await createSnapshotter(path.join(tmp, 'root'), { driver });
    });
    afterAll(async () => {
      for (const m of mounted) await unmountAll(m).catch(() => {});
      await fs.rm(tmp, { recursive: true, force: true });
    });
    let n = 0;
    const mnt = async (key: string) => {
      const t = path.join(tmp, `m${n++}`);
      mounted.push(t);
      await mountAll(await s.mounts(key), t);
      return t;
    };

    it('random operation sequences reproduce exactly', { timeout: 600_000 }, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArb, { maxLength: 25 }),
          fc.array(opArb, { minLength: 1, maxLength: 30 }),
          async (baseOps, ops) => {
            const id = n;
            await s.prepare(`b${id}`);
            const bm = await mnt(`b${id}`);
            await perform(bm, baseOps);
            await unmountAll(bm);
            await s.commit(`B${id}`, `b${id}`);
            await s.prepare(`c${id}`, `B${id}`);
            const cm = await mnt(`c${id}`);
            await perform(cm, ops);
            await unmountAll(cm); // overlay: settle the upper before reading it
            const one = collect();
            const d1 = await writeLayer(diff(s, `c${id}`), one.w);
            const two = collect();
            await writeLayer(diff(s, `c${id}`), two.w);
            expect(two.buf().equals(one.buf())).toBe(true);
            expect(d1.diffId).toBe(`sha256:${createHash('sha256').update(one.buf()).digest('hex')}`);
            await s.prepare(`r${id}`, `B${id}`);
            const w = await s.writableDir(`r${id}`);
            const applied = await apply(Readable.from([one.buf()]), w.dir, { whiteouts: w.whiteouts });
            expect(applied.diffId).toBe(d1.diffId);
            const want = await describeTree(await mnt(`c${id}`), { mtimes: true });
            const got = await describeTree(await mnt(`r${id}`), { mtimes: true });
            expect(got).toEqual(want);
          },
        ),
        {
          numRuns: Number(process.env.ROUNDTRIP_RUNS ?? (driver === 'overlay' ? 25 : 15)),
          // replay a failure: ROUNDTRIP_SEED (and ROUNDTRIP_PATH) from fast-check's report
          ...(process.env.ROUNDTRIP_SEED ? { seed: Number(process.env.ROUNDTRIP_SEED) } : {}),
          ...(process.env.ROUNDTRIP_PATH ? { path: process.env.ROUNDTRIP_PATH } : {}),
        },
      );
    });
  });
}

describe('diff of a known change set (overlay)', () => {
  let tmp: string;
  const mounted: string[] = [];
  afterAll(async () => {
    for (const m of mounted) await unmountAll(m).catch(() => {});
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('emits whiteouts, opaque markers, links, devices, caps and PAX in sorted order', async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-known-'));
    const s = await createSnapshotter(path.join(tmp, 'root'), { driver: 'overlay' });
    await s.prepare('b');
    const w = await s.writableDir('b');
    await perform(w.dir, [
      { op: 'mkdir', p: 'a' },
      { op: 'write', p: 'a/old', data: new Uint8Array([1]) },
      { op: 'mkdir', p: 'b' },
      { op: 'write', p: 'b/f', data: new Uint8Array([2]) },
      { op: 'write', p: 'c', data: new Uint8Array([3]) },
      { op: 'write', p: 'dd', data: new Uint8Array([4]) },
    ]);
    await s.commit('B', 'b');
    await s.prepare('c', 'B');
    const m = path.join(tmp, 'm');
    mounted.push(m);
    await mountAll(await s.mounts('c'), m);
    await perform(m, [
      { op: 'recreate', p: 'a' }, // delete-then-recreate → opaque
      { op: 'rm', p: 'b' },
      { op: 'write', p: 'b', data: new Uint8Array([9]) }, // dir replaced by file
      { op: 'rm', p: 'c' }, // deleted
      { op: 'chmod', p: 'dd', mode: 0o4755 }, // metadata-only change (copy-up)
      { op: 'xattr', p: 'dd', name: 'security.capability' },
      { op: 'link', p: 'b', q: 'hl' },
      { op: 'special', p: 'fifo', kind: 'p' },
      { op: 'special', p: 'dev', kind: 'c' },
      { op: 'write', p: 'x'.repeat(120), data: new Uint8Array([7]) },
    ]);
    await unmountAll(m);
    const { listLayer } = await import('./list.ts');
    const entries = await listLayer(diff(s, 'c', { sourceDateEpoch: 1_000 }));
    expect(entries.map((e) => `${e.name} ${e.type}${e.linkname ? ` ${e.linkname}` : ''}`)).toEqual(
      [
        'a/ dir',
        'a/.wh..wh..opq file',
        'a/n file',
        'b file',
        'dd file',
        'dev char',
        'fifo fifo',
        'hl link b',
        `.wh.c file`,
        `${'x'.repeat(120)} file`,
      ].sort((p, q) => (p.replace(/\.wh\./, '') < q.replace(/\.wh\./, '') ? -1 : 1)),
    );
    const dd = entries.find((e) => e.name === 'dd')!;
    expect(dd.mode).toBe(0o4755);
    expect(dd.xattrs.get('security.capability')?.equals(CAP)).toBe(true);
    expect(entries.every((e) => e.mtime <= 1_000)).toBe(true);
  });
});
