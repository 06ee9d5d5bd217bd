/**
 * Temp dirs that die with their process. A run's or an exec's dir under os.tmpdir() is removed in a
 * `finally`, which a SIGKILL (or a SIGINT to `vbuild exec`, which has no handler) never reaches:
 * each such death left one /tmp/vlab-* dir for good (a test machine had ~14,900). So the dir
 * carries its owner's pid (`<prefix><pid>-XXXXXX`, store/owner.ts's rule), and making one removes
 * that prefix's dirs under the parent whose owner is dead: at a process's first, then at most once a
 * minute (one readdir; the warm server lives for many commands).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { deadOwner } from '../store/owner.ts';

const SWEEP_EVERY_MS = 60_000;
const lastSweep = new Map<string, number>();

/** mkdtemp `parent/<prefix><pid>-XXXXXX`, after removing dead owners' ones (see above). */
export async function ownedTempDir(parent: string, prefix: string): Promise<string> {
  const key = `${parent}\0${prefix}`;
  const now = Date.now();
  if (now - (lastSweep.get(key) ?? -Infinity) >= SWEEP_EVERY_MS) {
    lastSweep.set(key, now);
    await sweepDeadOwners(parent, prefix);
  }
  return fsp.mkdtemp(path.join(parent, `${prefix}${process.pid}-`));
}

/** Removes `parent/<prefix><pid>-*` whose pid is not running; what it cannot remove stays. */
export async function sweepDeadOwners(parent: string, prefix: string): Promise<void> {
  const names = await fsp.readdir(parent).catch(() => [] as string[]);
  const own = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\d+-[0-9A-Za-z]{6}$`);
  await Promise.all(
    names
      .filter((n) => own.test(n) && deadOwner(n))
      .map((n) => fsp.rm(path.join(parent, n), { recursive: true, force: true }).catch(() => {})),
  );
}
