/**
 * The OCI-runtime executor: writes a bundle (config.json from oci-spec.ts, rootfs = the mounted
 * snapshot) and runs it in the foreground with `runc run` / `crun run`, stdio piped through.
 *
 * Usage and OOM: the runtime removes the container's cgroup when the container is deleted, so the
 * counters must be read before that. runc: `run --keep` leaves the stopped container (and its
 * cgroup) for us to read, then we `delete` it. crun has no --keep: its container cgroup is
 * created under a parent cgroup we own, and on v2 the parent's memory.events / cpu.stat are
 * hierarchical. (On v1 the oom_kill counter is not hierarchical: crun on v1 reports oomKilled
 * only as "SIGKILL with a memory limit set" — see README.)
 */
import { refuseNativeOnly } from './network.ts';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VlabError } from '@vlab/errors';
import type { DetachedLaunch, Executor, ExecutorOptions, RunOptions, RunResult, RunSpec } from './types.ts';
import { prepareOciDetached } from './oci-detached.ts';
import { findHostTool } from './host-tools.ts';
import { prepareRun, TMP_PREFIX } from './prepare.ts';
import { buildOciConfig } from './oci-spec.ts';
import { Cgroup, CGROUP_PARENT, detectCgroupLayout, type CgroupStats } from './cgroups.ts';
import { abortedError, killUntil, spawnStreaming, waitOrAbort, wallResult, type Exit } from './process.ts';

const execFileP = promisify(execFile);

export type RuntimeName = 'runc' | 'crun';

/** State dir of the runtime (`--root`): ours, so `list` only shows vlab containers. */
export const RUNTIME_STATE_ROOT = '/run/vlab';

export function findRuntime(name: RuntimeName): Promise<string | undefined> {
  return findHostTool(name);
}

export class OciRuntimeExecutor implements Executor {
  private constructor(
    readonly name: RuntimeName,
    private readonly bin: string,
    private readonly stateRoot: string,
    private readonly opts: ExecutorOptions,
  ) {}

  static async create(name: RuntimeName, bin?: string, opts: ExecutorOptions = {}): Promise<OciRuntimeExecutor> {
    const p = bin ?? (await findRuntime(name));
    if (!p) throw new VlabError('E_EXEC_UNAVAILABLE', `${name} is not installed`);
    const stateRoot = path.join(RUNTIME_STATE_ROOT, name);
    await fs.mkdir(stateRoot, { recursive: true, mode: 0o700 });
    const ex = new OciRuntimeExecutor(name, p, stateRoot, opts);
    await ex.sweep().catch(() => {});
    return ex;
  }

  /**
   * Runs whose node process died between the container's exit and `delete` (runc --keep) leave a
   * stopped container, its cgroups and bundle: remove those older than a minute (younger ones may
   * belong to a live executor in another process that is reading their stats).
   */
  private async sweep(): Promise<void> {
    const { stdout } = await execFileP(this.bin, ['--root', this.stateRoot, 'list', '--format', 'json'], {
      timeout: 10_000,
    });
    const list = (JSON.parse(stdout || '[]') ?? []) as {
      id: string;
      status: string;
      bundle: string;
      created: string;
    }[];
    for (const c of list) {
      if (!c.id.startsWith('vlab-') || c.status !== 'stopped') continue;
      if (Date.now() - Date.parse(c.created) < 60_000) continue;
      await this.runtime(['delete', '--force', c.id]).catch(() => {});
      if (path.basename(c.bundle).startsWith(TMP_PREFIX)) await fs.rm(c.bundle, { recursive: true, force: true });
    }
  }

  async run(spec: RunSpec, opts: RunOptions = {}): Promise<RunResult> {
    if (opts.signal?.aborted) throw abortedError(opts.signal.reason);
    refuseNativeOnly(spec, this.name);
    const startedAt = Date.now();
    const prep = await prepareRun(spec, { tmp: this.opts.tmpDir });
    const layout = await detectCgroupLayout();
    const id = `vlab-${prep.id}`;
    const parentRel = `${this.opts.cgroupParent ?? CGROUP_PARENT}/${prep.id}`;
    // runc: the container cgroup is ours to read (--keep); crun: a child of a parent we own.
    const ctrRel = this.name === 'runc' ? parentRel : `${parentRel}/c`;
    const ctr = Cgroup.at(layout, ctrRel);
    const parent = Cgroup.at(layout, parentRel);
    let created = false;
    try {
      if (this.name === 'crun') await Cgroup.create(layout, parentRel, {});
      const config = buildOciConfig(prep, '/' + ctrRel, spec.limits ?? {}, layout.version);
      await fs.writeFile(path.join(prep.dir, 'config.json'), JSON.stringify(config, null, 1));
      const args = ['--root', this.stateRoot, 'run', '--bundle', prep.dir];
      if (this.name === 'runc') args.push('--keep');
      args.push(id);
      created = true;
      let lastErr = '';
      const child = spawnStreaming(this.bin, args, {
        ...opts,
        onOutput: (stream, chunk) => {
          if (stream === 'stderr') lastErr = (lastErr + chunk.toString()).slice(-2048);
          opts.onOutput?.(stream, chunk);
        },
      });
      const exit = await waitOrAbort(child.exited, opts.signal, () => {
        // The container process is the runtime's child, not ours: kill it through its cgroup
        // (which also catches everything it forked) and the runtime, until `run` returns.
        void killUntil(
          child.exited,
          async () => {
            await ctr.killAll(0);
            await this.runtime(['kill', id, 'KILL']).catch(() => {});
          },
          50,
        );
      });
      await ctr.killAll();
      const stats: CgroupStats = await (this.name === 'runc' ? ctr : parent).stats();
      if (this.name === 'crun' && layout.version !== 'v2' && spec.limits?.memory !== undefined && exit.code === 137) {
        stats.oomKills = Math.max(stats.oomKills, 1);
      }
      return wallResult(execFailure(exit, lastErr), startedAt, stats);
    } finally {
      if (created) {
        await ctr.killAll().catch(() => {});
        await this.runtime(['delete', '--force', id]).catch(() => {});
      }
      await ctr.destroy().catch(() => {});
      await parent.destroy().catch(() => {});
      await prep.cleanup();
    }
  }

  /** See Executor.prepareDetached: a bundle whose `run` the container's monitor owns (oci-detached.ts). */
  prepareDetached(spec: RunSpec, where: { dir: string; cgroup: string }): Promise<DetachedLaunch> {
    return prepareOciDetached({ name: this.name, bin: this.bin, stateRoot: this.stateRoot }, spec, where);
  }

  private async runtime(args: string[]): Promise<void> {
    await execFileP(this.bin, ['--root', this.stateRoot, ...args], { timeout: 10_000 });
  }
}

/**
 * The runtime exits 1 when the container's process cannot be exec'd; like Docker, map its message
 * to the shell's codes (127 not found, 126 not executable), which the other launchers return.
 */
function execFailure(exit: Exit, stderr: string): Exit {
  if (exit.code !== 1 || !/unable to start container process: exec|executable file `/.test(stderr)) return exit;
  if (/not found|no such file or directory/i.test(stderr)) return { code: 127, signal: null };
  if (/permission denied|exec format error/i.test(stderr)) return { code: 126, signal: null };
  return exit;
}
