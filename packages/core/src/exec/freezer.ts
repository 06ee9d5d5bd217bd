/**
 * The cgroup freezer (`pause`/`unpause`, and `commit` of a running container): v1's
 * freezer.state (FROZEN / THAWED, FREEZING while it works) on v1 and hybrid layouts, where the
 * container's cgroup is in the v1 freezer hierarchy; v2's cgroup.freeze (1 / 0, `frozen 1` in
 * cgroup.events once done) on pure v2.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { sleep, type Cgroup } from './cgroups.ts';

export type FreezerKind = 'v1' | 'v2';
export type FreezeState = 'frozen' | 'thawed' | 'freezing';

/** The directory and kind of freezer a container's cgroup uses. */
export function freezerOf(cg: Cgroup): { kind: FreezerKind; dir: string } {
  if (cg.layout.version === 'v2') return { kind: 'v2', dir: cg.dirs.unified! };
  const dir = cg.dirs.freezer;
  if (!dir)
    throw new VlabError('E_PAUSE_UNAVAILABLE', 'the v1 freezer controller is not mounted: pause is not possible');
  return { kind: 'v1', dir };
}

export async function freezerState(kind: FreezerKind, dir: string): Promise<FreezeState> {
  if (kind === 'v1') {
    const s = (await fs.readFile(path.join(dir, 'freezer.state'), 'utf8')).trim();
    return s === 'FROZEN' ? 'frozen' : s === 'FREEZING' ? 'freezing' : 'thawed';
  }
  const want = (await fs.readFile(path.join(dir, 'cgroup.freeze'), 'utf8')).trim() === '1';
  const events = await fs.readFile(path.join(dir, 'cgroup.events'), 'utf8');
  const frozen = /^frozen 1$/m.test(events);
  return frozen ? 'frozen' : want ? 'freezing' : 'thawed';
}

/**
 * Freezes (or thaws) every process of the cgroup and waits until the kernel says it is done.
 * Idempotent. A freeze that does not complete in `timeoutMs` is undone and E_PAUSE_FAILED.
 */
export async function setFrozen(kind: FreezerKind, dir: string, frozen: boolean, timeoutMs = 5000): Promise<void> {
  const write = (v: boolean) =>
    kind === 'v1'
      ? fs.writeFile(path.join(dir, 'freezer.state'), v ? 'FROZEN' : 'THAWED')
      : fs.writeFile(path.join(dir, 'cgroup.freeze'), v ? '1' : '0');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await write(frozen); // v1: writing FROZEN again retries a freeze that is still FREEZING
    const s = await freezerState(kind, dir);
    if (s === (frozen ? 'frozen' : 'thawed')) return;
    if (Date.now() > deadline) {
      if (frozen) await write(false).catch(() => {});
      throw new VlabError(
        'E_PAUSE_FAILED',
        `the cgroup ${dir} did not ${frozen ? 'freeze' : 'thaw'} in ${timeoutMs} ms`,
      );
    }
    await sleep(5);
  }
}

export async function freeze(cg: Cgroup): Promise<void> {
  const f = freezerOf(cg);
  await setFrozen(f.kind, f.dir, true);
}

export async function thaw(cg: Cgroup): Promise<void> {
  const f = freezerOf(cg);
  await setFrozen(f.kind, f.dir, false);
}

export async function isFrozen(cg: Cgroup): Promise<boolean> {
  const f = freezerOf(cg);
  return (await freezerState(f.kind, f.dir).catch(() => 'thawed')) !== 'thawed';
}
