import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nativeHelper } from '@vlab/overlay';
import { walkTree, walkTreeJs } from './walk.ts';
import type { EntryTableBuilder } from './entry-table.ts';
import { FileHashCache } from './hash-cache.ts';
import { layerOrder } from '../solve/copy/plan.ts';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-walk-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

// atime left out: the first walk's readdir moves a directory's atime before the second looks.
const FIELDS = ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'mtimeMs', 'ctimeMs'] as const;
/** The walk's entries as objects, sorted by path. */
const listOf = (walked: EntryTableBuilder) => {
  const t = walked.finish();
  return t.rels.map((rel, i) => ({ rel, stats: t.stat(i) }));
};
const table = (list: ReturnType<typeof listOf>) =>
  list.map((e) => [e.rel, ...FIELDS.map((f) => e.stats[f])]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));

async function tree(): Promise<void> {
  await fsp.mkdir(path.join(dir, 'a/b/c'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'a/b/c/deep.txt'), 'deep');
  await fsp.writeFile(path.join(dir, 'a-b'), 'sibling sorting before a/');
  await fsp.writeFile(path.join(dir, 'ünï cödé 🎉.txt'), 'names as UTF-8');
  // names that are not UTF-8: their bytes kept (a lone surrogate per such byte, fsname.ts)
  fs.mkdirSync(Buffer.from(`${dir}/d\xfe`, 'latin1'));
  fs.writeFileSync(Buffer.from(`${dir}/d\xfe/n\xff`, 'latin1'), 'bytes');
  await fsp.symlink('/etc/passwd', path.join(dir, 'link')); // not followed
  await fsp.symlink('a', path.join(dir, 'dirlink'));
  await fsp.link(path.join(dir, 'a-b'), path.join(dir, 'hard'));
  await fsp.mkdir(path.join(dir, 'empty'));
  fs.utimesSync(path.join(dir, 'a-b'), 1234567890.123456, 1234567890.987654);
}

describe('context walk', () => {
  const helper = nativeHelper('vlab-walk', [new URL('../../native/bin/vlab-walk', import.meta.url)]);

  it.skipIf(!helper)(
    'vlab-walk gives the entries and lstat numbers fs.lstat gives (the hash cache keys on them)',
    async () => {
      await tree();
      const native = listOf(await walkTree(dir));
      const js = listOf(await walkTreeJs(dir));
      expect(table(native)).toEqual(table(js));
      expect(native.map((e) => e.rel)).toContain('ünï cödé 🎉.txt');
      expect(native.map((e) => e.rel)).toContain('d\udcfe/n\udcff');
      const ab = native.find((e) => e.rel === 'a-b')!.stats;
      expect([ab.mtimeMs, ab.ctimeMs]).toEqual([
        fs.lstatSync(path.join(dir, 'a-b')).mtimeMs,
        fs.lstatSync(path.join(dir, 'a-b')).ctimeMs,
      ]);
      expect(native.find((e) => e.rel === 'link')!.stats.isSymbolicLink()).toBe(true);
      expect(native.some((e) => e.rel.startsWith('dirlink/'))).toBe(false);
    },
  );
  if (!helper) console.warn('vlab-walk is not built (scripts/build-native.sh): only the JS walk is tested');

  it.each([
    ['vlab-walk', walkTree],
    ['the JS walk', walkTreeJs],
  ] as const)(
    '%s never lists a host directory: a directory swapped for a link to one while walked is E_CONTEXT_CHANGED',
    async (name, walk) => {
      if (name === 'vlab-walk' && !helper) return;
      const host = path.join(dir, 'host');
      const ctx = path.join(dir, 'ctx');
      // d's 50 subdirectories, and the host's under the same names: each walk opens "d/subN" 50 times
      for (let i = 0; i < 50; i++) {
        await fsp.mkdir(path.join(host, `sub${i}`), { recursive: true });
        await fsp.writeFile(path.join(host, `sub${i}`, 'hostfile'), 'x');
        await fsp.mkdir(path.join(ctx, 'd', `sub${i}`), { recursive: true });
      }
      // d <-> a link to the host dir, as fast as it goes; the walk of d/sub opens "d/sub" by path
      const swapper = spawn(
        process.execPath,
        [
          '-e',
          `const fs = require('node:fs'); process.chdir(${JSON.stringify(ctx)});
           for (;;) { fs.renameSync('d', 'd.away'); fs.symlinkSync(${JSON.stringify(host)}, 'd'); fs.unlinkSync('d'); fs.renameSync('d.away', 'd'); }`,
        ],
        { stdio: 'ignore' },
      );
      const seen = { walks: 0, changed: 0 };
      try {
        for (const until = Date.now() + 1500; Date.now() < until; seen.walks++) {
          const t = await walk(ctx).catch((e: { code?: string }) => {
            if (e.code !== 'E_CONTEXT_CHANGED') throw e;
            seen.changed++;
          });
          if (t) expect(t.finish().rels.filter((r) => r.includes('hostfile'))).toEqual([]);
        }
      } finally {
        swapper.kill();
        await new Promise((r) => swapper.once('exit', r));
      }
      console.log(`${name}: walks with a swapper: ${seen.walks}, E_CONTEXT_CHANGED: ${seen.changed}`);
    },
  );

  it('an unreadable context is E_CONTEXT, by either walk', async () => {
    await expect(walkTree(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'E_CONTEXT' });
    await expect(walkTreeJs(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'E_CONTEXT' });
  });

  it('layer order without key buffers sorts as the UTF-8 bytes with / lowest', () => {
    const names = ['a', 'a-b', 'a/b', 'a/b/c', 'ab', 'a.b', 'Z', 'é', '\uffff', '🎉', 'a/🎉', 'a/\ue000', 'a\u0001'];
    const key = (p: string) => Buffer.from(p.replaceAll('/', '\0'));
    const byBytes = [...names].sort((x, y) => Buffer.compare(key(x), key(y)));
    expect([...names].sort(layerOrder)).toEqual(byBytes);
  });
});

describe('FileHashCache (binary, keyed by path, size, mtime, ctime, inode)', () => {
  it('round-trips through its file and misses when only ctime moved (content rewritten, mtime put back)', async () => {
    const f = path.join(dir, 'f.txt');
    await fsp.writeFile(f, 'one');
    fs.utimesSync(f, 1e9, 1e9);
    const file = path.join(dir, 'cache', 'filehash.bin');
    const c = new FileHashCache(file);
    const st = fs.lstatSync(f);
    const h = c.hashSync(dir, 'f.txt', st)!;
    await c.save();
    const again = await FileHashCache.load(`${file}`);
    expect(again.known(dir, 'f.txt', st)).toBe(h);
    const fresh = new FileHashCache(file);
    expect(fresh.known(dir, 'f.txt', st)).toBeUndefined(); // a new object has not read the file
    // Same size, mtime restored: only ctime tells the content changed.
    await new Promise((r) => setTimeout(r, 20));
    await fsp.writeFile(f, 'two');
    fs.utimesSync(f, 1e9, 1e9);
    const st2 = fs.lstatSync(f);
    expect([st2.size, st2.mtimeMs, st2.ino]).toEqual([st.size, st.mtimeMs, st.ino]);
    expect(again.known(dir, 'f.txt', st2)).toBeUndefined();
    expect(again.hashSync(dir, 'f.txt', st2)).not.toBe(h);
  });

  it('names that are not UTF-8 are read, saved and loaded as their bytes: 0xfe and 0xff stay apart', async () => {
    const name = (b: number) => `n${String.fromCharCode(0xdc00 + b)}`; // the walk's name of "n" + byte b
    fs.writeFileSync(Buffer.from(`${dir}/n\xfe`, 'latin1'), 'fe');
    fs.writeFileSync(Buffer.from(`${dir}/n\xff`, 'latin1'), 'ff');
    const file = path.join(dir, 'cache', 'filehash.bin');
    const c = new FileHashCache(file);
    const st = (b: number) => fs.lstatSync(Buffer.from(`${dir}/n${String.fromCharCode(b)}`, 'latin1'));
    const fe = c.hashSync(dir, name(0xfe), st(0xfe));
    const ff = await c.hash(dir, name(0xff), st(0xff));
    expect(fe).not.toBe(ff);
    await c.save();
    fs.utimesSync(file, 1e9, 1e9); // not the file this process wrote: read back from its bytes
    const loaded = await FileHashCache.load(file);
    expect(loaded).not.toBe(c);
    expect([loaded.known(dir, name(0xfe), st(0xfe)), loaded.known(dir, name(0xff), st(0xff))]).toEqual([fe, ff]);
  });

  it('a cache of more than one 1 MiB write piece round-trips', async () => {
    const names = Array.from({ length: 4000 }, (_, i) => `${String(i).padStart(5, '0')}-${'n'.repeat(240)}`);
    for (const n of names) await fsp.writeFile(path.join(dir, n), n.slice(0, 5));
    const file = path.join(dir, 'cache', 'filehash.bin');
    const c = new FileHashCache(file);
    const hashes = names.map((n) => c.hashSync(dir, n, fs.lstatSync(path.join(dir, n))));
    await c.save();
    expect((await fsp.stat(file)).size).toBeGreaterThan(1 << 20);
    fs.utimesSync(file, 1e9, 1e9); // not the file this process kept: load parses it
    const loaded = await FileHashCache.load(file);
    expect(loaded).not.toBe(c);
    for (const i of [0, 1, 1999, 3999]) {
      const n = names[i]!;
      expect(loaded.known(dir, n, fs.lstatSync(path.join(dir, n)))).toBe(hashes[i]);
    }
  });

  it('a save while another build records more files still loads (the count matches the records written)', async () => {
    const names = Array.from({ length: 4000 }, (_, i) => `${String(i).padStart(5, '0')}-${'n'.repeat(240)}`);
    for (const n of names) await fsp.writeFile(path.join(dir, n), n.slice(0, 5));
    const late = Array.from({ length: 200 }, (_, i) => `late-${i}`);
    for (const n of late) await fsp.writeFile(path.join(dir, n), n);
    const file = path.join(dir, 'cache', 'filehash.bin');
    const c = new FileHashCache(file);
    const hashes = names.map((n) => c.hashSync(dir, n, fs.lstatSync(path.join(dir, n))));
    // an embedding tool's second build() shares this cache: it records while the save writes
    let saving = true;
    let i = 0;
    const more = () => {
      if (!saving || i >= late.length) return;
      const n = late[i++]!;
      c.hashSync(dir, n, fs.lstatSync(path.join(dir, n)));
      setImmediate(more);
    };
    setImmediate(more);
    await c.save().finally(() => (saving = false));
    expect(i).toBeGreaterThan(0);
    fs.utimesSync(file, 1e9, 1e9);
    const loaded = await FileHashCache.load(file);
    for (const k of [0, 3999])
      expect(loaded.known(dir, names[k]!, fs.lstatSync(path.join(dir, names[k]!)))).toBe(hashes[k]);
  });

  it('a torn or foreign file reads as empty (costs re-hashing only)', async () => {
    const file = path.join(dir, 'filehash.bin');
    await fsp.writeFile(file, Buffer.concat([Buffer.from('vlabfh3\n'), Buffer.from([200, 0, 0, 0, 1, 2])]));
    const c = await FileHashCache.load(file);
    await fsp.writeFile(path.join(dir, 'x'), 'x');
    expect(c.known(dir, 'x', fs.lstatSync(path.join(dir, 'x')))).toBeUndefined();
  });
});
