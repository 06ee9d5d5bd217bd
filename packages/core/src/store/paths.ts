import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** `$VLAB_ROOT`, else /var/lib/vlab as root, else `$XDG_DATA_HOME/vlab` (DESIGN.md). */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VLAB_ROOT) return path.resolve(env.VLAB_ROOT);
  if (process.getuid?.() === 0) return '/var/lib/vlab';
  const xdg = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'vlab');
}

/**
 * The cgroup parent of the RUNs of builds on store `root`: `vlab/store-<hash of its path>`, so
 * `vbuild fsck` finds the cgroups a killed build of this store left, and no other store's.
 */
export function cgroupParentOf(root: string): string {
  let real = path.resolve(root);
  try {
    real = realpathSync(real);
  } catch {
    /* not created yet: its spelling */
  }
  return `vlab/store-${createHash('sha256').update(real).digest('hex').slice(0, 12)}`;
}
