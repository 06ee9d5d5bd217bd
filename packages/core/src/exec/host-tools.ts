import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Where the executors look for host programs (util-linux, runc/crun): a root shell's PATH order. */
export const HOST_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * The first executable `dirs/name`, in the order given; undefined when none is. Fixed dirs, not
 * $PATH: what runs as root does not depend on the caller's environment.
 */
export async function findHostTool(name: string, dirs: readonly string[] = HOST_BIN_DIRS): Promise<string | undefined> {
  for (const d of dirs) {
    const p = path.join(d, name);
    if (
      await fs.access(p, fs.constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return p;
  }
  return undefined;
}
