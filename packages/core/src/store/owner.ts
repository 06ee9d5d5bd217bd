/**
 * Owner pids. Whatever a process leaves in the store while it works (temp files, temp snapshot
 * keys, mounts, cgroups, leases) carries its pid as `<prefix>-<pid>-<random>`, so crash recovery
 * and fsck can tell a dead writer's leftovers from a live one's work. One rule for all of them.
 */
import { pidAlive } from '@vlab/overlay';

export { pidAlive };

/** The owner pid a name carries (`….tmp-<pid>[-x]`, `step-<pid>-x`, `<pid>-x`), if any. */
export function ownerOf(name: string): number | undefined {
  const m = /(?:^|[-.])(\d+)(?:-[0-9A-Za-z]+)?$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** A name that carries an owner pid whose process is gone. */
export function deadOwner(name: string): boolean {
  const pid = ownerOf(name);
  return pid !== undefined && !pidAlive(pid);
}
