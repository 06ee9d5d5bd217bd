import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { UnionView } from '@vlab/overlay';
import { resolveUser, resolveUserInView } from './user.ts';

describe('resolveUser', () => {
  let root: string;
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-user-'));
    await fs.mkdir(path.join(root, 'etc'));
    await fs.writeFile(
      path.join(root, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000::/home/b:/bin/sh\n',
    );
    await fs.writeFile(
      path.join(root, 'etc/group'),
      'root:x:0:\nbuilder:x:1000:\nwheel:x:10:builder,other\naudio:x:29:builder\n',
    );
  });
  afterAll(() => fs.rm(root, { recursive: true, force: true }));

  it.each([
    ['', { uid: 0, gid: 0, additionalGids: [], home: '/root' }],
    ['root', { uid: 0, gid: 0, additionalGids: [], home: '/root' }],
    ['builder', { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/b' }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/b' }],
    ['builder:wheel', { uid: 1000, gid: 10, additionalGids: [29], home: '/home/b' }],
    ['1000:1000', { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/b' }],
    ['4242', { uid: 4242, gid: 0, additionalGids: [], home: '/' }],
    ['4242:77', { uid: 4242, gid: 77, additionalGids: [], home: '/' }],
  ])('%s', async (spec, want) => {
    expect(await resolveUser(root, spec)).toEqual(want);
  });

  it.each([
    ['4242', { uid: 4242, gid: 4242 }],
    ['1000', { uid: 1000, gid: 1000 }],
    ['4242:77', { uid: 4242, gid: 77 }],
    ['builder', { uid: 1000, gid: 1000 }],
    ['builder:wheel', { uid: 1000, gid: 10 }],
  ])('--chown=%s: a bare uid is also the gid (BuildKit), names as for USER', async (spec, want) => {
    expect(await resolveUser(root, spec, 'chown')).toMatchObject(want);
  });

  it.each([
    ['1000:1000', { uid: 1000, gid: 1000 }],
    ['5', { uid: 5, gid: 5 }],
    ['7:root', { uid: 7, gid: 0 }],
    ['root', { uid: 0, gid: 0 }],
  ])(
    '--chown=%s on FROM scratch (no layers, no passwd): ids, and `root` as 0 (BuildKit llb parseUID)',
    async (spec, want) => {
      expect(await resolveUserInView(new UnionView([]), spec, 'chown')).toMatchObject(want);
    },
  );

  it('--chown names that no passwd/group file resolves are E_USER_NOT_FOUND on FROM scratch', async () => {
    for (const spec of ['bob', '1:staff', 'root:staff'])
      await expect(resolveUserInView(new UnionView([]), spec, 'chown')).rejects.toMatchObject({
        code: 'E_USER_NOT_FOUND',
      });
  });

  it('unknown names are E_USER_NOT_FOUND', async () => {
    await expect(resolveUser(root, 'nobody')).rejects.toMatchObject({ code: 'E_USER_NOT_FOUND' });
    await expect(resolveUser(root, 'builder:nogroup')).rejects.toMatchObject({ code: 'E_USER_NOT_FOUND' });
  });

  it('an /etc/passwd symlink cannot point out of the rootfs', async () => {
    const evil = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-user-evil-'));
    try {
      await fs.mkdir(path.join(evil, 'etc'));
      await fs.symlink('/etc/shadow', path.join(evil, 'etc/passwd'));
      await expect(resolveUser(evil, 'root')).rejects.toMatchObject({ code: 'E_USER_NOT_FOUND' });
    } finally {
      await fs.rm(evil, { recursive: true, force: true });
    }
  });

  it('a FIFO, a device or a huge /etc/passwd is refused at once (E_IMAGE_FILE), never read', async () => {
    const evil = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-user-evil-'));
    const mk = promisify(execFile);
    try {
      await fs.mkdir(path.join(evil, 'etc'));
      const passwd = path.join(evil, 'etc/passwd');
      await mk('mkfifo', [passwd]); // reading it on the host would wait for a writer forever
      const t0 = Date.now();
      await expect(resolveUser(evil, 'builder')).rejects.toMatchObject({
        code: 'E_IMAGE_FILE',
        message: expect.stringContaining('/etc/passwd'),
      });
      expect(Date.now() - t0).toBeLessThan(2000);
      await fs.rm(passwd);
      await mk('mknod', [passwd, 'c', '1', '5']); // /dev/zero: endless
      await expect(resolveUser(evil, '1000')).rejects.toMatchObject({ code: 'E_IMAGE_FILE' });
      await fs.rm(passwd);
      await fs.writeFile(passwd, 'builder:x:1000:1000::/home/b:/bin/sh\n');
      await fs.truncate(passwd, 8 * 2 ** 30); // 8 GiB, sparse
      await expect(resolveUser(evil, 'builder')).rejects.toMatchObject({
        code: 'E_IMAGE_FILE',
        message: expect.stringMatching(/larger than/),
      });
      await fs.truncate(passwd, 100);
      await mk('mkfifo', [path.join(evil, 'etc/group')]);
      await expect(resolveUser(evil, 'builder:wheel')).rejects.toMatchObject({
        code: 'E_IMAGE_FILE',
        message: expect.stringContaining('/etc/group'),
      });
    } finally {
      await fs.rm(evil, { recursive: true, force: true });
    }
  });

  it('the same rules through a UnionView of the layers (COPY --chown before anything is mounted)', async () => {
    const layer = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-user-layer-'));
    try {
      await fs.mkdir(path.join(layer, 'etc'));
      await promisify(execFile)('mkfifo', [path.join(layer, 'etc/passwd')]);
      const t0 = Date.now();
      await expect(resolveUserInView(new UnionView([layer]), 'builder')).rejects.toMatchObject({
        code: 'E_IMAGE_FILE',
      });
      expect(Date.now() - t0).toBeLessThan(2000);
      await fs.rm(path.join(layer, 'etc/passwd'));
      await fs.writeFile(path.join(layer, 'etc/passwd'), 'builder:x:1000:1000::/home/b:/bin/sh\n');
      expect(await resolveUserInView(new UnionView([layer]), 'builder')).toMatchObject({ uid: 1000, gid: 1000 });
      await fs.truncate(path.join(layer, 'etc/passwd'), 8 * 2 ** 30);
      await expect(resolveUserInView(new UnionView([layer]), 'builder')).rejects.toMatchObject({
        code: 'E_IMAGE_FILE',
      });
    } finally {
      await fs.rm(layer, { recursive: true, force: true });
    }
  });
});
