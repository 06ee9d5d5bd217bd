import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isMounted, mountAll, unmountAll } from './mount.ts';
import { sysServer } from './sys-server.ts';
import { readXattrsTree, sysHelper } from './sys.ts';

// vlab-sys (native/vlab-sys.c, built by scripts/build-native.sh) and its fallbacks, mount(8) and getfattr(1).
describe('vlab-sys', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-sys-'));
  });
  afterAll(async () => {
    delete process.env.VLAB_NO_NATIVE;
    for (const d of ['a', 'b', 'ro']) await unmountAll(path.join(tmp, d)).catch(() => {});
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const overlayOnce = async (name: string) => {
    const [lower, upper, work, target] = ['lower', `upper-${name}`, `work-${name}`, name].map((d) => path.join(tmp, d));
    for (const d of [lower, upper, work]) await fs.mkdir(d, { recursive: true });
    await fs.writeFile(path.join(lower, 'base'), 'from lower');
    await mountAll(
      [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`] }],
      target,
    );
    expect(isMounted(target)).toBe(true);
    await fs.writeFile(path.join(target, 'new'), 'x');
    expect(await fs.readFile(path.join(target, 'base'), 'utf8')).toBe('from lower');
    await unmountAll(target);
    expect(isMounted(target)).toBe(false);
    expect(await fs.readdir(upper)).toEqual(['new']);
  };

  it('is built, and overlay mounts/unmounts go through its server', async () => {
    expect(sysHelper(), 'vlab-sys is not built: run bash scripts/build-native.sh').toBeDefined();
    await overlayOnce('a');
  });

  it('the util-linux fallback does the same (VLAB_NO_NATIVE=1)', async () => {
    process.env.VLAB_NO_NATIVE = '1';
    try {
      expect(sysHelper()).toBeUndefined();
      await overlayOnce('b');
    } finally {
      delete process.env.VLAB_NO_NATIVE;
    }
  });

  it('read-only binds are read-only; errors come back as E_MOUNT with the reason', async () => {
    const src = path.join(tmp, 'src');
    await fs.mkdir(src, { recursive: true });
    await mountAll([{ type: 'bind', source: src, options: ['rbind', 'ro'] }], path.join(tmp, 'ro'));
    await expect(fs.writeFile(path.join(tmp, 'ro', 'f'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await unmountAll(path.join(tmp, 'ro'));
    await expect(
      mountAll(
        [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${path.join(tmp, 'missing')}`] }],
        path.join(tmp, 'c'),
      ),
    ).rejects.toMatchObject({ code: 'E_MOUNT', message: expect.stringMatching(/No such file or directory/) });
  });

  it('the server answers in order, survives bad requests, and is replaced when it dies', async () => {
    const server = sysServer(sysHelper()!);
    const answers = await Promise.all([
      server.call(undefined, ['umount', path.join(tmp, 'not-mounted-1')]),
      server.call(undefined, ['bogus']),
      server.call('/nonexistent-dir', ['umount', '/x']),
    ]);
    expect(answers.map((a) => a.code)).toEqual([32, 2, 32]); // a failure, the usage, a failure
    expect(answers[0]!.stderr).toMatch(/umount .*not-mounted-1: No such file or directory/);
    expect(answers[1]!.stderr).toMatch(/usage/);
    expect(answers[2]!.stderr).toMatch(/chdir \/nonexistent-dir/);
    const pid = (server as unknown as { child?: { pid: number } }).child!.pid;
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    await overlayOnce('a'); // the next call starts a new server
    expect((server as unknown as { child?: { pid: number } }).child!.pid).not.toBe(pid);
  });

  it('xattrs: the same map as getfattr(1), odd names and binary values included, with a filter', async () => {
    const dir = path.join(tmp, 'x');
    const names = ['plain', 'with space', 'new\nline', 'ünï', 'eq=sign', 'back\\slash'];
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    for (const n of names) await fs.writeFile(path.join(dir, 'sub', n), n);
    await fs.symlink('plain', path.join(dir, 'sub', 'link'));
    const { writeXattrs } = await import('./sys.ts');
    const items = names.map((n, i) => ({
      path: path.join(dir, 'sub', n),
      name: `user.k${i}`,
      value: Buffer.from([0, 255, i, 10, 61]),
    }));
    items.push({ path: path.join(dir, 'sub'), name: 'trusted.overlay.opaque', value: Buffer.from('y') });
    items.push({ path: path.join(dir, 'sub', 'plain'), name: 'user.empty', value: Buffer.alloc(0) });
    await writeXattrs(items);
    const viaServer = await readXattrsTree(dir);
    process.env.VLAB_NO_NATIVE = '1';
    let viaGetfattr;
    try {
      viaGetfattr = await readXattrsTree(dir);
    } finally {
      delete process.env.VLAB_NO_NATIVE;
    }
    const plain = (m: Map<string, Map<string, Buffer>>) =>
      [...m].map(([p, kv]) => [p, [...kv].map(([k, v]) => [k, v.toString('hex')]).sort()]).sort();
    expect(viaServer.size).toBe(names.length + 1);
    expect(plain(viaServer)).toEqual(plain(viaGetfattr));
    const opaque = await readXattrsTree(dir, '^(trusted|user)\\.overlay\\.opaque$');
    expect([...opaque.keys()]).toEqual([path.join(dir, 'sub')]);
    await expect(readXattrsTree(path.join(tmp, 'no-such-dir'))).rejects.toThrow();
  });
});
