/**
 * The in-root reads of open-same.ts: a directory on the way that is now a symlink (a concurrent
 * writer swapped it for a link to a host directory) is never followed.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { lstatInRoot, openDirInRoot, pinInRoot, readlinkInRoot, statDirInRoot } from './open-same.ts';

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
