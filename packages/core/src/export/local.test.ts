import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportLocal } from './local.ts';

let tmp: string;
beforeEach(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-localexp-'));
});
afterEach(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('--output type=local', () => {
  it('a directory swapped for a symlink while its subtree is copied: nothing is written, chmod-ed or touched through the link', async () => {
    const src = path.join(tmp, 'rootfs');
    await fsp.mkdir(path.join(src, 'd'), { recursive: true });
    for (let i = 0; i < 1000; i++) await fsp.writeFile(path.join(src, 'd', `f${String(i).padStart(4, '0')}`), 'x');
    await fsp.chmod(path.join(src, 'd'), 0o777);
    await fsp.utimes(path.join(src, 'd'), 1000, 1000);
    const marker = path.join(tmp, 'marker');
    await fsp.mkdir(marker, { mode: 0o700 });
    await fsp.chmod(marker, 0o700);
    const before = await fsp.stat(marker);
    const dest = path.join(tmp, 'out');
    await fsp.mkdir(dest);

    // Swap dest/d for a link to the marker dir as soon as it appears (the export is still copying).
    let swapped = false;
    const watcher = (async () => {
      for (let i = 0; i < 20_000 && !swapped; i++) {
        if (fs.existsSync(path.join(dest, 'd', 'f0000'))) {
          fs.renameSync(path.join(dest, 'd'), path.join(dest, 'moved'));
          fs.symlinkSync(marker, path.join(dest, 'd'));
          swapped = true;
        } else await new Promise((r) => setImmediate(r));
      }
    })();
    await Promise.all([exportLocal(src, dest).catch(() => undefined), watcher]);
    expect(swapped).toBe(true);
    const after = await fsp.stat(marker);
    expect(await fsp.readdir(marker)).toEqual([]);
    expect(after.mode & 0o7777).toBe(0o700);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    // The directory that was open got it all, with the image's mode.
    expect((await fsp.readdir(path.join(dest, 'moved'))).length).toBe(1000);
    expect((await fsp.stat(path.join(dest, 'moved'))).mode & 0o7777).toBe(0o777);
  });

  it.each([
    ['a dangling symlink', async (p: string) => fsp.symlink(path.join(tmp, 'nowhere'), p)],
    ['an existing file', async (p: string) => fsp.writeFile(p, 'file')],
  ])('dest is %s: E_OUTPUT', async (_what, make) => {
    const src = path.join(tmp, 'rootfs');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'a'), 'a');
    const dest = path.join(tmp, 'dest');
    await make(dest);
    await expect(exportLocal(src, dest)).rejects.toMatchObject({
      code: 'E_OUTPUT',
      message: expect.stringMatching(/not a directory/),
    });
  });

  it('copies files, links and modes into a fresh and an existing dest', async () => {
    const src = path.join(tmp, 'rootfs');
    await fsp.mkdir(path.join(src, 'bin'), { recursive: true });
    await fsp.writeFile(path.join(src, 'bin/tool'), 'tool');
    await fsp.chmod(path.join(src, 'bin/tool'), 0o4755);
    await fsp.symlink('bin/tool', path.join(src, 'link'));
    const dest = path.join(tmp, 'dest');
    for (let round = 0; round < 2; round++) {
      await exportLocal(src, dest);
      expect(await fsp.readFile(path.join(dest, 'bin/tool'), 'utf8')).toBe('tool');
      expect((await fsp.stat(path.join(dest, 'bin/tool'))).mode & 0o7777).toBe(0o755);
      expect(await fsp.readlink(path.join(dest, 'link'))).toBe('bin/tool');
    }
  });
});
