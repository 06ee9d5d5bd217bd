import os from 'node:os';
import path from 'node:path';

/** `$VLAB_ROOT`, else /var/lib/vlab as root, else `$XDG_DATA_HOME/vlab` (DESIGN.md). */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VLAB_ROOT) return path.resolve(env.VLAB_ROOT);
  if (process.getuid?.() === 0) return '/var/lib/vlab';
  const xdg = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'vlab');
}
