/**
 * The native driver's diff (trees compared) and hard links: a layer that carries one name of a
 * hard-linked inode carries all its names, the first as the file and the rest as links to it
 * (what containerd's changeWriter does with the unmodified names of a hard link it writes), so
 * apply links them again. Found by roundtrip.test.ts (seed 2053637288).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { createSnapshotter, apply, diff, type Snapshotter } from '../index.ts';
import { listLayer } from './list.ts';
import { describeTree } from '../testing/tree.ts';
import { perform, type Op } from '../testing/ops.ts';

describe('diff (native): hard links to names the change left alone', () => {
  let tmp: string;
  let s: Snapshotter;
  let n = 0;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-diff-links-'));
    s = await createSnapshotter(path.join(tmp, 'root'), { driver: 'native' });
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  /** Base ops committed, then ops on a child: the child's layer entries, and whether applying it reproduces the child. */
  async function layerOf(baseOps: Op[], ops: Op[]) {
    const id = n++;
    await s.prepare(`b${id}`);
    await perform((await s.writableDir(`b${id}`)).dir, baseOps);
    await s.commit(`B${id}`, `b${id}`);
    await s.prepare(`c${id}`, `B${id}`);
    const c = (await s.writableDir(`c${id}`)).dir;
    await perform(c, ops);
    const tar = await listLayer(diff(s, `c${id}`));
    const chunks: Buffer[] = [];
    for await (const b of diff(s, `c${id}`)) chunks.push(b as Buffer);
    await s.prepare(`r${id}`, `B${id}`);
    const r = await s.writableDir(`r${id}`);
    await apply(Readable.from([Buffer.concat(chunks)]), r.dir, { whiteouts: r.whiteouts });
    return {
      entries: tar.map((e) => `${e.name} ${e.type}${e.type === 'link' ? ` ${e.linkname}` : ''}`),
      got: await describeTree(r.dir, { mtimes: true }),
      want: await describeTree(c, { mtimes: true }),
    };
  }

  it('a new link to an unchanged fifo brings the fifo along', async () => {
    const l = await layerOf([{ op: 'special', p: 'b', kind: 'p' }], [{ op: 'link', p: 'b', q: 'a' }]);
    expect(l.entries).toEqual(['a fifo', 'b link a']);
    expect(l.got).toEqual(l.want);
  });

  it('a new link in a new dir to a file linked twice already brings both old names', async () => {
    const l = await layerOf(
      [
        { op: 'write', p: 'f', data: new Uint8Array([1, 2, 3]) },
        { op: 'link', p: 'f', q: 'g' },
        { op: 'mkdir', p: 'x' },
        { op: 'write', p: 'x/other', data: new Uint8Array([4]) },
      ],
      [
        { op: 'mkdir', p: 'd' },
        { op: 'link', p: 'f', q: 'd/h' },
      ],
    );
    expect(l.entries).toEqual(['d/ dir', 'd/h file', 'f link d/h', 'g link d/h']);
    expect(l.got).toEqual(l.want);
  });

  it('a link removed leaves the other names out of the layer', async () => {
    const l = await layerOf(
      [
        { op: 'write', p: 'f', data: new Uint8Array([1]) },
        { op: 'link', p: 'f', q: 'g' },
      ],
      [{ op: 'rm', p: 'g' }],
    );
    expect(l.entries).toEqual(['.wh.g file']);
    expect(l.got).toEqual(l.want);
  });
});

describe('diff (native): a file rewritten with the same size and mtime', () => {
  let tmp: string;
  let s: Snapshotter;
  let n = 0;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-diff-same-'));
    s = await createSnapshotter(path.join(tmp, 'root'), { driver: 'native' });
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  /** `before` committed at `f`, then `after` written over it in a child; both given mtime `t` (seconds). */
  async function entriesOf(before: Buffer, after: Buffer, t: number) {
    const id = n++;
    await s.prepare(`b${id}`);
    const b = (await s.writableDir(`b${id}`)).dir;
    await fs.writeFile(path.join(b, 'f'), before);
    await fs.utimes(path.join(b, 'f'), t, t);
    await s.commit(`B${id}`, `b${id}`);
    await s.prepare(`c${id}`, `B${id}`);
    const c = (await s.writableDir(`c${id}`)).dir;
    await fs.writeFile(path.join(c, 'f'), after);
    await fs.utimes(path.join(c, 'f'), t, t);
    return (await listLayer(diff(s, `c${id}`))).map((e) => e.name);
  }

  // roundtrip.test.ts: a 'write' then a 'touch' (mtime 1_500_000_000 s, no sub-second part) in
  // the base and again in the child, with data of the same length
  it('whole-second mtimes (as tar extraction and touch leave them): the bytes decide', async () => {
    expect(await entriesOf(Buffer.from([1, 2, 3]), Buffer.from([9, 9, 9]), 1_500_000_000)).toEqual(['f']);
    expect(await entriesOf(Buffer.from([1, 2, 3]), Buffer.from([1, 2, 3]), 1_500_000_000)).toEqual([]);
  });

  it('a difference past the first chunk, or in the last byte, is found', async () => {
    const big = Buffer.alloc(300_000, 7);
    const last = Buffer.from(big);
    last[last.length - 1] = 8;
    expect(await entriesOf(big, last, 1_500_000_000)).toEqual(['f']);
    const mid = Buffer.from(big);
    mid[70_000] = 0;
    expect(await entriesOf(big, mid, 1_500_000_000)).toEqual(['f']);
    expect(await entriesOf(big, Buffer.from(big), 1_500_000_000)).toEqual([]);
  });
});
