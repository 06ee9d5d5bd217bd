import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { heredocFiles, walkHostTree } from './copy.ts';
import { entryOfItem } from '../copy/plan.ts';

let scratch: string;
beforeEach(async () => {
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-heredocw-'));
  await fsp.mkdir(path.join(scratch, 'parent'));
  await fsp.writeFile(path.join(scratch, 'keep'), 'marker');
});
afterEach(() => fsp.rm(scratch, { recursive: true, force: true }));

describe('heredoc body writer, called with names the parser would refuse', () => {
  it.each(['../../planted', '../keep', '/etc/planted', 'a/../../../keep', '..', 'x'.repeat(300)])(
    '%s: refused, nothing written outside its temp dir',
    async (name) => {
      const parent = path.join(scratch, 'parent');
      await expect(heredocFiles(parent, [{ name, content: 'hostile' }])).rejects.toMatchObject({
        code: 'E_COPY_SOURCE',
      });
      expect((await fsp.readdir(scratch)).sort()).toEqual(['keep', 'parent']);
      expect(await fsp.readFile(path.join(scratch, 'keep'), 'utf8')).toBe('marker');
      expect(await fsp.readdir(parent)).toEqual([]); // its own temp dir is gone too
    },
  );

  it('a good name: the body is written by index in a private dir, the name is only the in-image name', async () => {
    const parent = path.join(scratch, 'parent');
    const { dir, items } = await heredocFiles(parent, [
      { name: 'a.txt', content: 'one' },
      { name: 'b', content: 'two' },
    ]);
    expect(path.dirname(dir)).toBe(parent);
    expect((await fsp.readdir(dir)).sort()).toEqual(['0', '1']);
    expect(items.map((i) => [path.relative(dir, i.src), i.rel])).toEqual([
      ['0', 'a.txt'],
      ['1', 'b'],
    ]);
    expect((await fsp.stat(dir)).mode & 0o777).toBe(0o700);
  });
});

describe('walking and copying a tree from an image view', () => {
  it('a whiteout (0/0 character device) is absent, as overlayfs shows it in a directory that is not merged', async () => {
    const src = path.join(scratch, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'f'), 'f');
    execFileSync('mknod', [path.join(src, 'gone'), 'c', '0', '0']);
    expect((await walkHostTree(src)).map((i) => i.rel)).toEqual(['', 'f']);
  });

  it.each([
    ['a fifo', (p: string) => execFileSync('mkfifo', [p])],
    ['a character device', (p: string) => execFileSync('mknod', [p, 'c', '1', '5'])],
  ])(
    '%s is refused with E_COPY_SOURCE by the plan, never opened (a fifo would block the event loop)',
    async (_kind, make) => {
      const src = path.join(scratch, 'src');
      await fsp.mkdir(src);
      make(path.join(src, 'special'));
      const [item] = (await walkHostTree(src)).slice(1);
      expect(() => entryOfItem(item!, '/out/special')).toThrow(expect.objectContaining({ code: 'E_COPY_SOURCE' }));
    },
  );
});
