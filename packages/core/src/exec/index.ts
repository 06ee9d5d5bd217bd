/**
 * exec/: run one process tree isolated in a mounted snapshot. `createExecutor()` picks the
 * implementation; both pass the same isolation suite (testing/suite.ts).
 */
import { VlabError } from '@vlab/errors';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { removeMountpoints } from './mountpoints.ts';
import { DELETE_FILE } from './oci-detached.ts';
import { specCleanup } from './native-spec.ts';
import type { DetachedLaunch, Executor, ExecutorOptions } from './types.ts';
import { BuiltinExecutor, initHelper } from './builtin.ts';
import { OciRuntimeExecutor, findRuntime, type RuntimeName } from './oci-runtime.ts';
import { Cgroup, CGROUP_PARENT, detectCgroupLayout, sweepOrphanCgroups } from './cgroups.ts';

export * from './types.ts';
export { detectCgroups, orphanCgroups, sweepOrphanCgroups, CGROUP_PARENT } from './cgroups.ts';
export { resolveUser, resolveUserFrom, resolveUserInView } from './user.ts';
export { BuiltinExecutor } from './builtin.ts';
export { OciRuntimeExecutor } from './oci-runtime.ts';

const execFileP = promisify(execFile);

export const EXECUTOR_KINDS = ['auto', 'builtin', 'builtin-shell', 'oci'] as const;
export type ExecutorKind = (typeof EXECUTOR_KINDS)[number];

export interface CreateExecutorOptions extends ExecutorOptions {
  /**
   * auto (default), as root: the built-in executor when its vlab-init launcher is built (same
   * isolation as our OCI config, seccomp included, ~30 ms a container against runc's ~80 ms floor
   * here), else an OCI runtime when one is installed and works with the cgroup layout, else
   * E_EXEC_UNAVAILABLE: no step runs without Docker's seccomp filter unless asked. Not root: the
   * built-in executor in rootless mode (rootless.ts). `oci` forces runc/crun; `builtin-shell` the
   * util-linux launcher, which has no seccomp filter when vlab-init is not built (it warns).
   */
  kind?: ExecutorKind;
  /** Force a runtime; default: runc on v1/hybrid cgroups, crun on pure v2 (either as fallback). */
  runtime?: RuntimeName;
}

export async function createExecutor(opts: CreateExecutorOptions = {}): Promise<Executor> {
  const kind = opts.kind ?? 'auto';
  // a build SIGKILLed mid-RUN left its run's cgroup: the next one to run removes it
  if (process.getuid?.() === 0) await sweepOrphanCgroups(opts.cgroupParent ?? CGROUP_PARENT);
  if (kind === 'builtin-shell') return BuiltinExecutor.create({ ...opts, launcher: 'shell' });
  if (kind === 'builtin') return BuiltinExecutor.create(opts);
  if (kind === 'auto' && process.getuid?.() === 0 && initHelper())
    return BuiltinExecutor.create({ ...opts, launcher: 'native' });
  const runtime = await pickRuntime(opts.runtime);
  if (runtime) return OciRuntimeExecutor.create(runtime.name, runtime.path, opts);
  if (kind === 'oci') {
    if (process.getuid?.() !== 0) {
      throw new VlabError(
        'E_EXEC_UNAVAILABLE',
        'the OCI executor needs root (rootless runc/crun is not supported): use the built-in executor, which runs rootless',
      );
    }
    throw new VlabError('E_EXEC_UNAVAILABLE', `no usable OCI runtime (${opts.runtime ?? 'runc or crun'}) found`);
  }
  return BuiltinExecutor.create(opts); // rootless; as root without vlab-init: E_EXEC_UNAVAILABLE
}

/**
 * crun refuses cgroup limits on a hybrid layout (v1 controllers + a v2 `unified` mount), runc
 * accepts them; on pure v2 crun is the faster one.
 */
async function pickRuntime(forced?: RuntimeName): Promise<{ name: RuntimeName; path: string } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { version } = await detectCgroupLayout();
  const order: RuntimeName[] = forced ? [forced] : version === 'v2' ? ['crun', 'runc'] : ['runc', 'crun'];
  for (const name of order) {
    if (name === 'crun' && version === 'hybrid' && !forced) continue;
    const p = await findRuntime(name);
    if (p) return { name, path: p };
  }
  return undefined;
}

/** After a detached container ended (its launcher exited): kill stragglers, drop its cgroup and dir. Idempotent. */
export async function cleanupDetached(launch: Pick<DetachedLaunch, 'dir' | 'cgroup'>): Promise<void> {
  const layout = await detectCgroupLayout();
  await Cgroup.at(layout, launch.cgroup).destroy();
  const del = await fsp.readFile(path.join(launch.dir, DELETE_FILE), 'utf8').catch(() => undefined);
  if (del) {
    const [bin, ...args] = JSON.parse(del) as string[];
    await execFileP(bin!, args, { timeout: 10_000 }).catch(() => undefined);
  }
  // A launcher killed with its container (stop's SIGKILL to the cgroup) did not remove the
  // mountpoints it made: done here from its spec, by the same rules, before the dir goes.
  const spec = await fsp.readFile(path.join(launch.dir, 'spec')).catch(() => undefined);
  if (spec) await removeMountpoints(specCleanup(spec)).catch(() => undefined);
  await fsp.rm(launch.dir, { recursive: true, force: true });
}
