/**
 * A container's /dev besides its device nodes (mounts.ts `DEV_NODES`, bound in from the host):
 * the std links and the dirs its mounts go on. vlab-init makes them itself; the shell launcher
 * copies a template made once.
 */
import { promises as fs } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { DEV_NODES } from './mounts.ts';

export const DEV_LINKS: [string, string][] = [
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
  ['ptmx', 'pts/ptmx'],
  ['core', '/proc/kcore'],
];
export const DEV_DIRS = ['pts', 'shm', 'mqueue'];

/** Where the /dev template lives (the nodes as mountpoints, std links, empty pts/shm/mqueue dirs). */
export const DEV_TEMPLATE = '/run/vlab/dev-template';

/** Makes the /dev template once (atomically: built aside, then renamed into place). */
export async function ensureDevTemplate(mknod: string): Promise<string> {
  if (
    await fs.access(path.join(DEV_TEMPLATE, 'ptmx')).then(
      () => true,
      () => false,
    )
  )
    return DEV_TEMPLATE;
  await fs.mkdir(path.dirname(DEV_TEMPLATE), { recursive: true });
  const tmp = await fs.mkdtemp(DEV_TEMPLATE + '.');
  try {
    for (const [n, maj, min] of DEV_NODES)
      await promisify(execFile)(mknod, ['-m', '666', path.join(tmp, n), 'c', String(maj), String(min)]);
    for (const [n, target] of DEV_LINKS) await fs.symlink(target, path.join(tmp, n));
    for (const d of DEV_DIRS) await fs.mkdir(path.join(tmp, d));
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, DEV_TEMPLATE).catch(() => {}); // lost a race: the other one is as good
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return DEV_TEMPLATE;
}
