/**
 * Settling volatile commits (review of a202d03): a failed syncfs forgets them (the kernel reports
 * a writeback error once, so no later settle or durable commit may name them durable); settle
 * promotes only the very records it saw before its syncfs; a durable prepare rechecks its parent
 * chain under the lock.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkSnapshots, createSnapshotter, VOLATILE_LABEL, type Snapshotter } from './index.ts';

const V = { [VOLATILE_LABEL]: 'true' };
const roots: string[] = [];
afterEach(async () => {
  delete process.env.VLAB_TESTING_SYNCFS_FAIL;
  for (const r of roots.splice(0)) await fs.rm(r, { recursive: true, force: true });
});
async function newRoot(): Promise<string> {
  const r = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-settle-'));
  roots.push(r);
  return r;
}
const keys = (root: string, f: string) =>
  Object.keys((JSON.parse(readFileSync(path.join(root, f), 'utf8')) as { snapshots: object }).snapshots).sort();

/** B durable; T committed volatile on it, with a volatile temporary t2 on T. */
async function setup(root: string): Promise<Snapshotter> {
  const s = await createSnapshotter(root, { driver: 'native' });
  await s.prepare('b', undefined);
  await s.commit('B', 'b');
  await s.prepare('t', 'B', V);
  await fs.writeFile(path.join((await s.writableDir('t')).dir, 'f'), 'T');
  await s.commit('T', 't', V);
  await s.prepare('t2', 'T', V);
  return s;
}

describe('a failed syncfs drops the volatile commits it may have lost', () => {
  it('settle: its error is thrown, T and what stands on it are forgotten; the next settle promotes nothing', async () => {
    const root = await newRoot();
    const s = await setup(root);
    process.env.VLAB_TESTING_SYNCFS_FAIL = root;
    await expect(s.settle()).rejects.toMatchObject({ code: 'E_TOOL' });
    expect(process.env.VLAB_TESTING_SYNCFS_FAIL).toBeUndefined(); // reported once, as the kernel does
    await s.settle(); // this syncfs passes: it must not name T
    expect(keys(root, 'metadata.json')).toEqual(['B']);
    expect(await s.stat('T')).toBeUndefined();
    expect(await s.stat('t2')).toBeUndefined();
    // a durable prepare on where T was finds nothing to stand on (its layer is unpacked again)
    await expect(s.prepare('d', 'T')).rejects.toMatchObject({ code: 'E_SNAPSHOT_NOT_FOUND' });
    // another process agrees; only B's dir is left
    const other = await createSnapshotter(root, { driver: 'native' });
    expect((await other.walk()).map((i) => i.key)).toEqual(['B']);
    expect(await fs.readdir(path.join(root, 'snapshots'))).toEqual([expect.any(String)]);
    expect((await checkSnapshots(root)).problems).toEqual([]);
  });

  it('a durable commit whose syncfs fails: nothing on the volatile chain is promoted, then or later', async () => {
    const root = await newRoot();
    const s = await setup(root);
    process.env.VLAB_TESTING_SYNCFS_FAIL = root;
    await expect(s.commit('U', 't2')).rejects.toMatchObject({ code: 'E_TOOL' });
    await s.settle();
    expect(keys(root, 'metadata.json')).toEqual(['B']);
    expect(await s.stat('T')).toBeUndefined();
    expect((await checkSnapshots(root)).problems).toEqual([]);
  });

  it('a failed syncfs elsewhere (a durable commit beside them) drops them too: a durable prepare on T then cannot promote it', async () => {
    const root = await newRoot();
    const s = await setup(root);
    await s.prepare('x', 'B');
    process.env.VLAB_TESTING_SYNCFS_FAIL = root;
    await expect(s.commit('X', 'x')).rejects.toMatchObject({ code: 'E_TOOL' });
    await expect(s.prepare('d', 'T')).rejects.toMatchObject({ code: 'E_SNAPSHOT_NOT_FOUND' });
    expect(keys(root, 'metadata.json')).toEqual(['B', 'x']);
  });
});

describe('settle promotes the records it saw before its syncfs, by key and id', () => {
  it('a key removed and committed volatile again meanwhile stays volatile', async () => {
    const root = await newRoot();
    const s = await setup(root);
    await s.remove('t2');
    const other = await createSnapshotter(root, { driver: 'native' });
    // between settle's read of the pending commits and its metadata write: T replaced by another process
    const inner = s as unknown as { syncOrDrop(f: string): Promise<void> };
    const sync = inner.syncOrDrop.bind(s);
    inner.syncOrDrop = async (f) => {
      await sync(f);
      await other.remove('T');
      await other.prepare('t', 'B', V);
      await other.commit('T', 't', V);
    };
    await s.settle();
    expect(keys(root, 'metadata.json')).toEqual(['B']);
    expect(keys(root, 'metadata.volatile.json')).toEqual(['T']);
  });
});

describe('a durable prepare rechecks its parent chain under the lock', () => {
  it('a parent committed volatile by another process after the first check is settled first', async () => {
    const root = await newRoot();
    const s = await createSnapshotter(root, { driver: 'native' });
    await s.prepare('b', undefined);
    await s.commit('B', 'b');
    await s.prepare('p', 'B');
    await s.commit('P', 'p'); // durable when the prepare below first looks
    const other = await createSnapshotter(root, { driver: 'native' });
    const inner = s as unknown as { volatileChain(k: string): Promise<string[]> };
    const first = inner.volatileChain.bind(s);
    let calls = 0;
    inner.volatileChain = async (k) => {
      const out = await first(k);
      if (calls++ === 0) {
        // after the check, before the lock: P removed and committed again volatile elsewhere
        await other.remove('P');
        await other.prepare('p', 'B', V);
        await other.commit('P', 'p', V);
      }
      return out;
    };
    await s.prepare('d', 'P');
    // the durable record d never stands on a volatile P: P was settled before d was named
    expect(keys(root, 'metadata.json')).toEqual(['B', 'P', 'd']);
    expect(keys(root, 'metadata.volatile.json')).toEqual([]);
  });
});
