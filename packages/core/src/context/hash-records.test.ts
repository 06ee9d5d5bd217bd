import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RootIndex } from './hash-records.ts';
import { FileHashCache } from './hash-cache.ts';
import { BuildContext } from './context.ts';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-hashrec-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('the hash cache as sorted path lists (hash-records.ts)', () => {
  it('records made out of order and twice fold into one sorted list (the last of a path wins); a table range matches by one merge', () => {
    const r = new RootIndex();
    for (const [rel, slot] of [
      ['b', 1],
      ['a', 2],
      ['c', 3],
      ['a', 4],
    ] as const)
      r.add(rel, slot);
    expect(r.find('a')).toBe(4);
    expect(r.find('ab')).toBe(-1);
    expect(r.rels).toEqual(['a', 'b', 'c']);
    expect([...r.slots]).toEqual([4, 1, 3]);
    r.add('bb', 5);
    const out = new Int32Array(5).fill(9);
    r.match(['a', 'b', 'ba', 'bb', 'c'], 1, 4, out);
    expect([...out]).toEqual([9, 1, -1, 5, 9]); // only [1, 4) is written
  });

  it('a cache file whose paths are in record order, not sorted (written by the previous code), loads and finds each', async () => {
    const names = ['z.txt', 'a.txt', 'm/é.txt'];
    const parts = [Buffer.from('vlabfh3\n'), u32(Buffer.byteLength(dir)), Buffer.from(dir), u32(names.length)];
    for (const n of names) {
      await fsp.mkdir(path.dirname(path.join(dir, n)), { recursive: true });
      await fsp.writeFile(path.join(dir, n), n);
      const st = fs.lstatSync(path.join(dir, n));
      const rec = Buffer.alloc(64);
      [st.size, st.mtimeMs, st.ctimeMs, st.ino].forEach((v, i) => rec.writeDoubleLE(v, i * 8));
      Buffer.from(sha(n), 'hex').copy(rec, 32);
      parts.push(u32(Buffer.byteLength(n)), Buffer.from(n), rec);
    }
    const file = path.join(dir, 'filehash.bin');
    await fsp.writeFile(file, Buffer.concat(parts));
    const c = await FileHashCache.load(file);
    for (const n of names) expect(c.known(dir, n, fs.lstatSync(path.join(dir, n)))).toBe(sha(n));
    // and the checksum's merge with the walk finds them too: nothing is read again
    const ctx = await BuildContext.open(dir, c);
    const misses = c.misses;
    await ctx.checksum([await ctx.select('.')]);
    expect(c.misses - misses).toBe(1); // filehash.bin itself only
  });

  it("a checksum's file list keeps the hashes it was made with when a later build hashes the files again (records are never rewritten), and records stay bounded", async () => {
    const names = Array.from({ length: 24 }, (_, i) => `d/f${i}`);
    await fsp.mkdir(path.join(dir, 'd'));
    const writeAll = async (round: number) => {
      for (const n of names) await fsp.writeFile(path.join(dir, n), `${n} ${round}`);
    };
    await writeAll(0);
    const cache = new FileHashCache();
    const ctx0 = await BuildContext.open(dir, cache);
    const before = await ctx0.checksum([await ctx0.select('d')]);
    expect(before.files.get('d/f3')).toMatch(new RegExp(`^file:\\d+:${sha('d/f3 0')}$`));
    // each round rewrites every file: a new record each, the old ones dead once no checksum reads them
    for (let round = 1; round <= 60; round++) {
      await writeAll(round);
      const ctx = await BuildContext.open(dir, cache);
      const now = await ctx.checksum([await ctx.select('d')]);
      expect(now.files.get('d/f3')).toContain(sha(`d/f3 ${round}`));
    }
    expect(before.files.get('d/f3')).toContain(sha('d/f3 0'));
    expect(before.files.digest()).toBe(before.digest);
    expect(cache.misses).toBe(61 * names.length);
    expect(cache.records.length).toBeLessThan(1024 + 2 * names.length); // compacted (MIN_DEAD is 1024)
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
