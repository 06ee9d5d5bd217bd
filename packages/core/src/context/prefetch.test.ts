/**
 * The checksum asks the disk for the small files it reads next (TableHashes.prefetch,
 * POSIX_FADV_WILLNEED through vlab-fadvise.node) once its reads come from the disk: the same digests and hash-cache records as
 * reading each file when it comes, every fd it opened closed, excluded files never opened, and a
 * file replaced after its prefetch still hashed as the file the walk saw.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BuildContext } from './context.ts';
import { AHEAD_SLOTS, FileHashCache } from './hash-cache.ts';
import { canWillNeed } from '../store/page-cache.ts';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-prefetch-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const N = 300; // more than the window (64): the window slides over several directories
async function writeTree(): Promise<void> {
  for (let i = 0; i < N; i++) {
    const sub = path.join(dir, 'data', `d${i % 3}`);
    await fsp.mkdir(sub, { recursive: true });
    await fsp.writeFile(path.join(sub, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 50)));
  }
  await fsp.writeFile(path.join(dir, 'data', 'empty'), '');
  await fsp.writeFile(path.join(dir, 'data', 'skip.log'), 'excluded');
}
const openFds = () => fs.readdirSync('/proc/self/fd').length;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The tree written, walked, and a TableHashes over all of it (nothing read yet). */
async function openTable() {
  await writeTree();
  const cache = new FileHashCache();
  const ctx = await BuildContext.open(dir, cache);
  const t = await (
    ctx as unknown as { walk(): Promise<{ rels: string[]; find(r: string): number; stat(i: number): fs.Stats }> }
  ).walk();
  const table = cache.forTable(dir, t.rels);
  table.range(0, t.rels.length);
  return { t, table };
}

describe.skipIf(!canWillNeed())('checksum read-ahead (vlab-fadvise.node willneed)', () => {
  it('gives the digest of a one-file-at-a-time read, records every file, and closes every fd', async () => {
    await writeTree();
    const fds = openFds();
    const ctx = await BuildContext.open(dir, new FileHashCache());
    const { digest, files } = await ctx.checksum([await ctx.select('data')], ['*.log']);
    expect(openFds()).toBe(fds);
    // the same tree checksummed through the cache's records (no read at all) gives the same digest
    const again = await ctx.checksum([await ctx.select('data')], ['*.log']);
    expect(again.digest).toBe(digest);
    expect(files.size).toBe(again.files.size);
    expect(files.size).toBe(N + 1 + 4); // the files, the empty one, data/ and its 3 directories
  });

  it('the digest is the one without read-ahead (VLAB_NO_NATIVE=1 in a fresh process)', async () => {
    await writeTree();
    const ctx = await BuildContext.open(dir, new FileHashCache());
    const { digest } = await ctx.checksum([await ctx.select('data')]);
    const { execFileSync } = await import('node:child_process');
    const script = `
      import { BuildContext } from ${JSON.stringify(new URL('./context.ts', import.meta.url).pathname)};
      import { FileHashCache } from ${JSON.stringify(new URL('./hash-cache.ts', import.meta.url).pathname)};
      const ctx = await BuildContext.open(${JSON.stringify(dir)}, new FileHashCache());
      process.stdout.write((await ctx.checksum([await ctx.select('data')])).digest);`;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', '--input-type=module', '-e', script],
      {
        env: { ...process.env, VLAB_NO_NATIVE: '1' },
        encoding: 'utf8',
      },
    );
    expect(out).toBe(digest);
  });

  it('a file replaced after it was opened ahead is hashed as the file the walk saw', async () => {
    const { t, table } = await openTable();
    const rel = 'data/d0/f0.txt';
    const i = t.find(rel);
    const before = openFds();
    expect(table.cold).toBe(false); // nothing read yet: a checksum would not prefetch
    expect(table.prefetch(i, t.stat(i))).toBe(true);
    expect(openFds()).toBe(before + 1);
    await fsp.writeFile(path.join(dir, 'data', 'new'), 'replaced');
    await fsp.rename(path.join(dir, 'data', 'new'), path.join(dir, rel));
    const slot = table.sync(i, t.stat(i));
    expect(openFds()).toBe(before);
    expect(table.records.hex(slot)).toBe(sha('file 0\n'));
    table.dropAhead();
    table.close();
  });

  it('a file opened ahead whose slot a later one takes is closed, then read when its turn comes', async () => {
    const { t, table } = await openTable();
    // two non-empty files AHEAD_SLOTS entries apart: the same slot
    const isFile = (i: number) => t.stat(i).isFile() && t.stat(i).size > 0;
    const i = t.rels.findIndex((_, k) => isFile(k) && k + AHEAD_SLOTS < t.rels.length && isFile(k + AHEAD_SLOTS));
    expect(i).toBeGreaterThanOrEqual(0);
    const j = i + AHEAD_SLOTS;
    const before = openFds();
    expect(table.prefetch(i, t.stat(i))).toBe(true);
    expect(table.prefetch(j, t.stat(j))).toBe(true);
    expect(openFds()).toBe(before + 1); // i's fd was closed when j took its slot
    const content = (k: number) => fs.readFileSync(path.join(dir, t.rels[k]!));
    expect(table.records.hex(table.sync(i, t.stat(i)))).toBe(sha(content(i)));
    expect(openFds()).toBe(before + 1); // i read by its own open; j still held
    expect(table.records.hex(table.sync(j, t.stat(j)))).toBe(sha(content(j)));
    expect(openFds()).toBe(before);
    table.dropAhead();
    table.close();
  });
});
