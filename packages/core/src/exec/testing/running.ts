/**
 * A container kept running for the exec-level tests of exec, pause and top: the executor runs
 * `sleep` (not awaited); its cgroup and pid 1 are found from the executor's cgroup parent.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Executor, RunResult, RunSpec } from '../types.ts';
import { Cgroup, detectCgroupLayout, sleep } from '../cgroups.ts';

export interface Running {
  /** Host pid of the container's pid 1. */
  pid: number;
  cgroup: Cgroup;
  /** The run's promise: settles when the container is gone. */
  done: Promise<RunResult | Error>;
  /** Kills the container and waits for the executor to clean up. */
  stop(): Promise<void>;
}

/** The NSpid line of /proc/PID/status: host pid first, the innermost namespace's last. */
export async function nsPids(pid: number): Promise<number[]> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return (/^NSpid:\s*(.*)$/m.exec(status)?.[1] ?? '').split(/\s+/).filter(Boolean).map(Number);
}

export async function startRunning(
  ex: Executor,
  cgroupParent: string,
  spec: Partial<RunSpec> & { rootfs: string },
): Promise<Running> {
  const layout = await detectCgroupLayout();
  const hier = layout.version === 'v2' ? layout.unified! : layout.v1.pids!;
  const ac = new AbortController();
  const done = ex
    .run({ argv: ['/bin/sleep', '1000'], env: [], cwd: '/', ...spec }, { signal: ac.signal })
    .catch((e: Error) => e);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ids = await fs.readdir(path.join(hier, cgroupParent)).catch(() => []);
    for (const id of ids) {
      const cgroup = Cgroup.at(layout, `${cgroupParent}/${id}`);
      for (const pid of await cgroup.pids()) {
        const ns = await nsPids(pid);
        if (ns.length > 1 && ns[ns.length - 1] === 1) {
          const exe = await fs.readlink(`/proc/${pid}/exe`).catch(() => '');
          // pid 1 before its execve is still vlab-init: wait for the command
          if (exe.endsWith('busybox') || exe.endsWith(path.basename(spec.argv?.[0] ?? 'sleep')))
            return {
              pid,
              cgroup,
              done,
              stop: async () => {
                ac.abort();
                await done;
              },
            };
        }
      }
    }
    const settled = await Promise.race([done, sleep(20).then(() => undefined)]);
    if (settled) throw new Error(`the container ended before it was found: ${String(settled)}`);
    if (Date.now() > deadline) {
      ac.abort();
      throw new Error('the container was not found in its cgroup');
    }
  }
}
