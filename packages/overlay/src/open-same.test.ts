/**
 * The in-root reads of open-same.ts: a directory on the way that is now a symlink (a concurrent
 * writer swapped it for a link to a host directory) is never followed.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DirsInRoot, lstatInRoot, openDirInRoot, pinInRoot, readlinkInRoot, statDirInRoot } from './open-same.ts';

let dir: string;
let root: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-open-same-'));
  root = path.join(dir, 'root');
  const host = path.join(dir, 'host');
  await fsp.mkdir(path.join(root, 'd', 'sub'), { recursive: true });
  await fsp.symlink('in-root', path.join(root, 'd', 'l'));
  await fsp.writeFile(path.join(root, 'd', 'f'), 'f');
  await fsp.mkdir(path.join(host, 'sub'), { recursive: true });
  await fsp.symlink('HOST-TARGET', path.join(host, 'l'));
  await fsp.writeFile(path.join(host, 'f'), 'host');
  await fsp.symlink(host, path.join(root, 'swapped')); // what `d` becomes after a swap
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

it('reads through real directories of the root', () => {
  expect(readlinkInRoot(root, 'd/l')).toBe('in-root');
  expect(lstatInRoot(root, 'd/f')?.size).toBe(1);
  expect(lstatInRoot(root, 'd/missing')).toBeUndefined();
  expect(lstatInRoot(root, 'nothing/here')).toBeUndefined();
  expect(statDirInRoot(root, 'd/sub').isDirectory()).toBe(true);
  expect(statDirInRoot(root, '').ino).toBe(fs.statSync(root).ino);
  const { fd, st } = pinInRoot(root, 'd/f');
  expect(st.isFile()).toBe(true);
  expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('f');
  fs.closeSync(fd);
  fs.closeSync(openDirInRoot(root, 'd/sub'));
});

it('a directory on the way that is a symlink (to a host directory) is E_CONTEXT_CHANGED, never followed', () => {
  const changed = { code: 'E_CONTEXT_CHANGED' };
  expect(() => readlinkInRoot(root, 'swapped/l')).toThrow(expect.objectContaining(changed));
  expect(lstatInRoot(root, 'swapped/f')).toBeUndefined(); // as if absent (ENOTDIR): not the host's f
  expect(() => statDirInRoot(root, 'swapped/sub')).toThrow(expect.objectContaining(changed));
  expect(() => statDirInRoot(root, 'swapped')).toThrow(expect.objectContaining(changed));
  expect(() => pinInRoot(root, 'swapped/f')).toThrow(expect.objectContaining(changed));
  expect(() => pinInRoot(root, 'swapped')).toThrow(expect.objectContaining(changed)); // the link itself
  // O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR on Linux (ELOOP without O_DIRECTORY)
  expect(() => openDirInRoot(root, 'swapped/sub')).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
});

it('a link that is no longer one, a link pinned, are E_CONTEXT_CHANGED', () => {
  expect(() => readlinkInRoot(root, 'd/f')).toThrow(expect.objectContaining({ code: 'E_CONTEXT_CHANGED' }));
  expect(() => readlinkInRoot(root, 'd/gone')).toThrow(expect.objectContaining({ code: 'E_CONTEXT_CHANGED' }));
  expect(() => pinInRoot(root, 'd/l')).toThrow(expect.objectContaining({ code: 'E_CONTEXT_CHANGED' }));
});

it('DirsInRoot opens each directory once and keeps the one that was in the root: a swap since is not followed', async () => {
  const r = path.join(dir, 'kept');
  await fsp.mkdir(path.join(r, 'a', 'b'), { recursive: true });
  await fsp.writeFile(path.join(r, 'a', 'b', 'f'), 'in-root');
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  const dirs = new DirsInRoot(r, 3);
  try {
    expect(lstatInRoot(r, 'a/b/f', undefined, dirs)?.size).toBe(7);
    expect(fds() - before).toBe(3); // r, a, a/b
    expect(lstatInRoot(r, './a//b/f', undefined, dirs)?.size).toBe(7);
    expect(fds() - before).toBe(3); // the same three, under one key
    // a/b swapped for a link to a host directory: the kept fd is still the directory of the root
    await fsp.rename(path.join(r, 'a', 'b'), path.join(r, 'b.away'));
    await fsp.symlink(path.join(dir, 'host'), path.join(r, 'a', 'b'));
    expect(lstatInRoot(r, 'a/b/f', undefined, dirs)?.size).toBe(7); // not the host's f (4 bytes)
    expect(lstatInRoot(r, 'a/b/l', undefined, dirs)).toBeUndefined(); // the host's l is not listed
    // more directories than `keep`: the oldest are closed
    for (const n of ['x', 'y', 'z']) await fsp.mkdir(path.join(r, n));
    for (const n of ['x', 'y', 'z']) lstatInRoot(r, `${n}/none`, undefined, dirs);
    expect(fds() - before).toBe(3);
  } finally {
    dirs.close();
  }
  expect(fds()).toBe(before);
  // a fresh one reads the root as it is now: the link is not followed (ENOTDIR: as if absent)
  expect(lstatInRoot(r, 'a/b/f')).toBeUndefined();
});

it('openSameSync: an open that fails for want of fds (EMFILE) is that error, not "changed, build again"', async () => {
  const { execFileSync } = await import('node:child_process');
  const { openSameSync } = await import('./open-same.ts');
  const file = path.join(root, 'd', 'f');
  const st = fs.statSync(file);
  const limits = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings'], {
    encoding: 'utf8',
  })
    .trim()
    .split(/\s+/);
  const [soft, hard] = [limits[limits.length - 3]!, limits[limits.length - 2]!];
  const held: number[] = [];
  // this process's fd limit lowered to what it holds plus a few, then every fd taken
  execFileSync('prlimit', [
    '--pid',
    String(process.pid),
    `--nofile=${fs.readdirSync('/proc/self/fd').length + 64}:${hard}`,
  ]);
  try {
    for (;;) {
      try {
        held.push(fs.openSync('/dev/null', 'r'));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EMFILE') break;
        throw e;
      }
    }
    let err: unknown;
    try {
      fs.closeSync(openSameSync(file, st, 'd/f').fd);
    } catch (e) {
      err = e;
    }
    expect((err as NodeJS.ErrnoException | undefined)?.code).toBe('EMFILE');
  } finally {
    for (const fd of held) fs.closeSync(fd);
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`]);
  }
});
