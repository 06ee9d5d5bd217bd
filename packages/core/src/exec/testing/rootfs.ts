/**
 * A tiny root filesystem for executor tests: /bin/busybox (busybox-static from the host) with
 * applet symlinks, /etc/passwd and /etc/group with root, a user `builder` (1000) and groups.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BUSYBOX = process.env.VLAB_TEST_BUSYBOX ?? '/bin/busybox';

const APPLETS = [
  'sh',
  'ash',
  'true',
  'false',
  'echo',
  'cat',
  'ps',
  'id',
  'hostname',
  'ls',
  'mount',
  'umount',
  'touch',
  'sleep',
  'nc',
  'ip',
  'mkdir',
  'rm',
  'stat',
  'head',
  'tr',
  'wc',
  'grep',
  'ipcs',
  'readlink',
  'seq',
  'kill',
  'chroot',
  'ln',
  'cp',
  'dd',
  'yes',
  'env',
  'pwd',
  'test',
  'timeout',
  'uname',
  'ifconfig',
  'awk',
];

/** Makes a fresh rootfs dir; remove it with `fs.rm(dir, { recursive: true })`. */
export async function makeBusyboxRootfs(parent = os.tmpdir()): Promise<string> {
  const dir = await fs.mkdtemp(path.join(parent, 'vlab-test-rootfs-'));
  await fs.chmod(dir, 0o755);
  await fs.mkdir(path.join(dir, 'bin'));
  await fs.copyFile(BUSYBOX, path.join(dir, 'bin/busybox'));
  await fs.chmod(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of APPLETS) await fs.symlink('busybox', path.join(dir, 'bin', a));
  await fs.mkdir(path.join(dir, 'etc'));
  await fs.writeFile(
    path.join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/home/builder:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await fs.writeFile(path.join(dir, 'etc/group'), 'root:x:0:\nbuilder:x:1000:\nwheel:x:10:builder\nnogroup:x:65534:\n');
  for (const d of ['tmp', 'root', 'home/builder']) await fs.mkdir(path.join(dir, d), { recursive: true });
  await fs.chmod(path.join(dir, 'tmp'), 0o1777);
  await fs.chown(path.join(dir, 'home/builder'), 1000, 1000);
  return dir;
}
