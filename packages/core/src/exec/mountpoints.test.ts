import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMountpoints, removeMountpoints } from './mountpoints.ts';

describe('mountpoints', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-mp-'));
    await fs.mkdir(path.join(root, 'etc'));
    await fs.symlink('/run/resolv.conf', path.join(root, 'etc/resolv.conf')); // absolute, in-root
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('creates missing entries, removes them when empty, restores parent mtime to the ns', async () => {
    const before = (await fs.stat(path.join(root, 'etc'), { bigint: true })).mtimeNs;
    const rootBefore = (await fs.stat(root, { bigint: true })).mtimeNs;
    const c = await createMountpoints(root, [
      { target: '/proc', kind: 'dir' },
      { target: '/etc/hosts', kind: 'file' },
      { target: '/etc/resolv.conf', kind: 'file' },
      { target: '/a/b/c', kind: 'dir' },
    ]);
    expect(c.resolved[2]).toBe(path.join(root, 'run/resolv.conf'));
    expect((await fs.stat(path.join(root, 'run/resolv.conf'))).isFile()).toBe(true);
    expect((await fs.stat(path.join(root, 'a/b/c'))).isDirectory()).toBe(true);
    await removeMountpoints(c);
    expect((await fs.readdir(root)).sort()).toEqual(['etc']);
    expect(await fs.readdir(path.join(root, 'etc'))).toEqual(['resolv.conf']);
    expect((await fs.stat(path.join(root, 'etc'), { bigint: true })).mtimeNs).toBe(before);
    expect((await fs.stat(root, { bigint: true })).mtimeNs).toBe(rootBefore);
  });

  it('keeps what the process wrote into a created mountpoint', async () => {
    const c = await createMountpoints(root, [{ target: '/cache/x', kind: 'dir' }]);
    await fs.writeFile(path.join(root, 'cache/x/out'), 'data');
    await removeMountpoints(c);
    expect(await fs.readFile(path.join(root, 'cache/x/out'), 'utf8')).toBe('data');
  });

  it('never resolves outside the root', async () => {
    await fs.symlink('../../../../tmp', path.join(root, 'up'));
    const c = await createMountpoints(root, [{ target: '/up/escaped', kind: 'dir' }]);
    expect(c.resolved[0]).toBe(path.join(root, 'tmp/escaped'));
    await removeMountpoints(c);
  });
});
