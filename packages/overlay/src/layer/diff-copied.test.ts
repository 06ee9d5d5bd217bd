/**
 * The native driver's diff and its copy marker (same-content.ts): a child file whose ctime is
 * before the marker made once the parent's tree was copied is not read; any change since the
 * copy (even one `utimes` hides from the mtime) moves the ctime past the marker, so the bytes
 * decide again. The seam: the committed parent's file is altered behind the store's back (same
 * size, same whole-second mtime), so a diff that reads the bytes reports it and one that trusts
 * the marker does not.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSnapshotter, diff, type Snapshotter } from '../index.ts';
import { listLayer } from './list.ts';

const T = 1_500_000_000;

describe('diff (native): files untouched since the copy', () => {
  let tmp: string;
  let s: Snapshotter;
  let n = 0;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-diff-copied-'));
    s = await createSnapshotter(path.join(tmp, 'root'), { driver: 'native' });
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  /** Files committed in a base (mtime T), a child prepared on it: the child's dir, the base's, and a diff lister. */
  async function child(files: Record<string, Buffer>) {
    const id = n++;
    await s.prepare(`b${id}`);
    const b = (await s.writableDir(`b${id}`)).dir;
    for (const [name, data] of Object.entries(files)) {
      await fs.writeFile(path.join(b, name), data);
      await fs.utimes(path.join(b, name), T, T);
    }
    await s.commit(`B${id}`, `b${id}`);
    await s.prepare(`c${id}`, `B${id}`);
    const c = (await s.writableDir(`c${id}`)).dir;
    const marker = path.join(path.dirname(c), 'copied');
    return { c, b, marker, entries: async () => (await listLayer(diff(s, `c${id}`))).map((e) => e.name) };
  }

  /** The committed parent's `name` rewritten behind the store's back: same size, same mtime. */
  async function alterBase(b: string, name: string, data: Buffer) {
    await fs.writeFile(path.join(b, name), data);
    await fs.utimes(path.join(b, name), T, T);
  }

  it('an untouched file is not read: its ctime is before the marker', async () => {
    const k = await child({ f: Buffer.from([1, 2, 3]) });
    await alterBase(k.b, 'f', Buffer.from([7, 7, 7]));
    expect(await k.entries()).toEqual([]);
    expect((await fs.lstat(path.join(k.c, 'f'))).ctimeMs).toBeLessThan((await fs.lstat(k.marker)).ctimeMs);
  });

  it('the bytes are read again when the marker is missing (a snapshot made before markers)', async () => {
    const k = await child({ f: Buffer.from([1, 2, 3]) });
    await fs.rm(k.marker);
    await alterBase(k.b, 'f', Buffer.from([7, 7, 7]));
    expect(await k.entries()).toEqual(['f']);
  });

  it('the bytes are read again when the ctime is not before the marker (a chmod to the same mode)', async () => {
    const k = await child({ f: Buffer.from([1, 2, 3]), g: Buffer.from([4, 5, 6]) });
    const st = await fs.lstat(path.join(k.c, 'f'));
    await fs.chmod(path.join(k.c, 'f'), st.mode & 0o7777);
    expect((await fs.lstat(path.join(k.c, 'f'))).ctimeMs).toBeGreaterThanOrEqual((await fs.lstat(k.marker)).ctimeMs);
    await alterBase(k.b, 'f', Buffer.from([7, 7, 7]));
    await alterBase(k.b, 'g', Buffer.from([8, 8, 8]));
    // f is read and found; g, untouched, is not read
    expect(await k.entries()).toEqual(['f']);
  });

  it('a file rewritten with the same size and utimes back to its old whole-second mtime is found', async () => {
    const k = await child({ f: Buffer.from('abcdef') });
    const p = path.join(k.c, 'f');
    const old = await fs.lstat(p);
    await fs.writeFile(p, 'abcdeX');
    await fs.utimes(p, old.atime, old.mtime);
    expect((await fs.lstat(p)).mtimeMs).toBe(old.mtimeMs);
    expect(await k.entries()).toEqual(['f']);
  });

  it('two files of the same size and mtime swapped by renames are found', async () => {
    const k = await child({ a: Buffer.from([1, 1]), b: Buffer.from([2, 2]) });
    await fs.rename(path.join(k.c, 'a'), path.join(k.c, 't'));
    await fs.rename(path.join(k.c, 'b'), path.join(k.c, 'a'));
    await fs.rename(path.join(k.c, 't'), path.join(k.c, 'b'));
    expect(await k.entries()).toEqual(['a', 'b']);
  });
});
