/**
 * The built-in executor: util-linux and the kernel, no OCI runtime.
 *
 *   node ─spawn─▶ sh (trampoline: joins the run's cgroups, then exec)
 *        ─▶ unshare --pid --fork --kill-child --mount --uts --ipc [--net]
 *           └─ pid 1: sh (setup): mounts /proc /dev /sys /etc/* and extra mounts under the rootfs,
 *              masks paths, sets the hostname, moves the rootfs onto / (MS_MOVE), then exec
 *              env -i … setpriv (caps, gid, groups, no_new_privs) unshare --root=. --wd --setuid argv
 *
 * Root switch: MS_MOVE of the rootfs mount onto "/" and chroot(".") — what switch_root and
 * `runc --no-pivot` do. We cannot pivot_root and unmount the old root here because the last steps
 * (setpriv, unshare) are host binaries that must be exec'd after the switch; MS_MOVE keeps the old
 * root only *under* the new one: every `..` walk from the new root ends back on the mount stacked
 * at "/", the host root does not appear in /proc/self/mountinfo, and without CAP_SYS_ADMIN (not in
 * the default set) the new root cannot be unmounted to uncover it.
 *
 * All mounts live in the run's private mount namespace: they vanish with its last process, so the
 * host never sees them and there is nothing to unmount after an abort.
 *
 * Rootless (not root): `unshare --user …` first (rootless.ts picks the mapping), no cgroup (limits
 * are refused), host device nodes bind-mounted instead of copied; pid 1 is killed with unshare
 * (--kill-child) and takes the pid namespace with it, so abort needs no cgroup sweep.
 */
import { promises as fs, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { DetachedLaunch, Executor, ExecutorOptions, RunOptions, RunResult, RunSpec } from './types.ts';
import { newRunId, prepareRun, type PreparedRun } from './prepare.ts';
import { findHostTool } from './host-tools.ts';
import { Cgroup, CGROUP_PARENT, detectCgroupLayout, type CgroupLayout, type CgroupStats } from './cgroups.ts';
import { CgroupPool, type RunCgroup } from './cgroup-pool.ts';
import { abortedError, killUntil, spawnStreaming, waitOrAbort, wallResult, type Spawned } from './process.ts';
import { checkLimits, checkUser, detectUserNs, makeRootlessDevTemplate, userNsArgs, type UserNs } from './rootless.ts';
import { execTailSpec, nativeSpec } from './native-spec.ts';
import { launchServer, type Zygote } from './launch-server.ts';
import { initHelper } from './init-helper.ts';
import { mountPlan, type BuiltinMountContext, type MountStep } from './builtin-mounts.ts';
import { cgroupNamespace } from './mounts.ts';
import { ensureDevTemplate } from './dev.ts';
import { q, setupScript, type ShellMountStep } from './builtin-shell.ts';

export { initHelper };
import { refuseNativeOnly } from './network.ts';
import { cgroupLimits } from './limits.ts';
import { phases } from '../debug/phases.ts';

const NO_SECCOMP_HELP =
  'bash scripts/build-native.sh (needs cc and libseccomp-dev), or install runc or crun; VLAB_EXECUTOR=builtin-shell runs them without seccomp';

const TOOLS = ['sh', 'unshare', 'setpriv', 'setsid', 'mount', 'mknod', 'env', 'cp'] as const;
export type Tools = Record<(typeof TOOLS)[number], string> & {
  ip?: string;
  hostname?: string;
  bash?: string;
  stat?: string;
};

let toolsFound: Promise<Tools> | undefined;

/** Finds the host tools the built-in executor needs (once per process); E_EXEC_UNAVAILABLE when one is missing. */
export function findBuiltinTools(): Promise<Tools> {
  const p = (toolsFound ??= lookUpTools());
  p.catch(() => (toolsFound = undefined)); // a later call looks again (e.g. after an install)
  return p;
}

async function lookUpTools(): Promise<Tools> {
  const found = await Promise.all([...TOOLS, 'ip', 'hostname', 'bash', 'stat'].map((t) => findHostTool(t)));
  const out: Partial<Tools> = {};
  TOOLS.forEach((t, i) => {
    if (!found[i])
      throw new VlabError('E_EXEC_UNAVAILABLE', `the built-in executor needs ${t} (util-linux) on the host`);
    out[t] = found[i];
  });
  [out.ip, out.hostname, out.bash, out.stat] = found.slice(TOOLS.length);
  return out as Tools;
}

export class BuiltinExecutor implements Executor {
  readonly name = 'builtin';
  private readonly hostKinds = new Map<string, 'dir' | 'file' | undefined>();
  private cgroups?: CgroupPool;
  /**
   * How a container starts: `native` = one vlab-init process (as root, when it is built);
   * `shell` = the util-linux chain (no C compiler, or rootless).
   */
  readonly launcher: 'native' | 'shell';
  /** Set when RUN steps get no seccomp filter (the shell launcher without vlab-init). */
  readonly warning?: string;
  private readonly init?: string;
  /** The shell launcher's last step, `vlab-init exec`, which loads the seccomp filter. */
  private readonly tail?: string;
  constructor(
    private readonly tools: Tools,
    private readonly devTemplate: string,
    private readonly opts: ExecutorOptions & { launcher?: 'native' | 'shell' } = {},
    /** Set in rootless mode: the user namespace mapping every run gets. */
    readonly userNs?: UserNs,
  ) {
    const helper = initHelper();
    if (userNs && opts.launcher === 'native')
      throw new VlabError(
        'E_EXEC_UNAVAILABLE',
        'vlab-init launches containers as root only (rootless uses the shell launcher)',
      );
    this.init = userNs || opts.launcher === 'shell' ? undefined : helper;
    if (!userNs && opts.launcher !== 'shell' && !this.init) {
      throw new VlabError(
        'E_EXEC_UNAVAILABLE',
        `vlab-init is not built, and RUN steps do not run without Docker's seccomp filter: ${NO_SECCOMP_HELP}`,
      );
    }
    this.launcher = this.init ? 'native' : 'shell';
    this.tail = this.init ? undefined : helper;
    if (this.launcher === 'shell' && !this.tail) {
      // Only when asked for (builtin-shell): the util-linux chain alone cannot load a filter.
      if (opts.launcher !== 'shell')
        throw new VlabError(
          'E_EXEC_UNAVAILABLE',
          `rootless RUN steps need vlab-init for the seccomp filter: ${NO_SECCOMP_HELP}`,
        );
      this.warning =
        'RUN steps run without a seccomp filter (VLAB_EXECUTOR=builtin-shell and vlab-init is not built): they may use keyctl, bpf, user namespaces…';
    }
  }

  /** As root: the full executor. Otherwise rootless (see rootless.ts). */
  static async create(opts: ExecutorOptions & { launcher?: 'native' | 'shell' } = {}): Promise<BuiltinExecutor> {
    const tools = await findBuiltinTools();
    if (process.getuid?.() !== 0) {
      // /proc/sys/kernel/hostname belongs to the host's root even in our uts namespace: the
      // rootless setup sets the name with sethostname(2), i.e. hostname(1).
      if (!tools.hostname)
        throw new VlabError('E_EXEC_UNAVAILABLE', 'the rootless built-in executor needs hostname(1) on the host');
      return new BuiltinExecutor(tools, '', opts, await detectUserNs());
    }
    // vlab-init makes /dev itself; only the shell chain copies the template.
    const native = opts.launcher !== 'shell';
    if (native && !initHelper()) return new BuiltinExecutor(tools, '', opts); // throws E_EXEC_UNAVAILABLE
    return new BuiltinExecutor(tools, native ? '' : await ensureDevTemplate(tools.mknod), opts);
  }

  private hostKind(p: string): 'dir' | 'file' | undefined {
    if (!this.hostKinds.has(p)) {
      let kind: 'dir' | 'file' | undefined;
      try {
        kind = statSync(p).isDirectory() ? 'dir' : 'file';
      } catch {
        kind = undefined;
      }
      this.hostKinds.set(p, kind);
    }
    return this.hostKinds.get(p);
  }

  async run(spec: RunSpec, opts: RunOptions = {}): Promise<RunResult> {
    if (opts.signal?.aborted) throw abortedError(opts.signal.reason);
    if (!this.init) refuseNativeOnly(spec, 'the shell launcher');
    const startedAt = Date.now();
    const lap = phases('exec');
    const layout = await detectCgroupLayout();
    const ns = this.userNs;
    if (ns) checkLimits(layout, spec.limits);
    // The run's files and its cgroup are made at once: neither needs the other.
    const id = newRunId();
    const pool = ns ? undefined : this.pool(layout);
    const limits = cgroupLimits(spec.limits, spec.network);
    const [prepared, made] = await Promise.allSettled([
      prepareRun(spec, { tmp: this.opts.tmpDir }, id),
      ns
        ? undefined
        : pool
          ? pool.take(limits)
          : Cgroup.create(layout, `${this.cgroupParent}/${id}`, limits, {
              devices: this.opts.deviceCgroup,
            }).then((c): RunCgroup => ({ cg: c })),
    ]);
    const cg = made.status === 'fulfilled' ? made.value?.cg : undefined;
    const zygote = made.status === 'fulfilled' ? made.value?.zygote : undefined;
    if (prepared.status === 'rejected' || made.status === 'rejected') {
      if (zygote) zygote.server.drop(zygote);
      await cg?.destroy().catch(() => {});
      if (prepared.status === 'fulfilled') await prepared.value.cleanup();
      throw prepared.status === 'rejected' ? prepared.reason : (made as PromiseRejectedResult).reason;
    }
    const prep = prepared.value;
    lap('prepare+cgroup');
    try {
      if (ns) checkUser(ns, prep.user, spec.user ?? '');
      const mounts: BuiltinMountContext = {
        hostHas: (p) => this.hostKind(p),
        cgroup: ns ? undefined : { version: layout.version, cg },
        ns,
      };
      if (this.init) return await this.runNative(prep, mounts, cg, zygote, startedAt, opts, lap);
      const t = this.tools;
      const unshareArgs = [
        ...(ns ? userNsArgs(ns) : []),
        '--pid',
        '--fork',
        '--kill-child',
        '--mount',
        '--uts',
        '--ipc',
        '--propagation',
        'private',
      ];
      if (prep.network !== 'host') unshareArgs.push('--net');
      if (cgroupNamespace(mounts.cgroup?.version)) unshareArgs.push('--cgroup'); // rooted where the trampoline joins
      // Trampoline: node cannot place a child in a cgroup before it execs (no CLONE_INTO_CGROUP,
      // no pre-exec hook), and moving it afterwards races with its first forks and allocations.
      // So a shell writes its own pid into every cgroup.procs and only then execs the container:
      // everything the container ever forks is born inside the limits.
      const stdinFile = await writeStdin(prep, opts);
      const redirect = stdinFile ? `exec 0<${q(stdinFile)} || exit 125; ` : '';
      // The setup shell is bash where there is one: it can close inherited fds above 9 (dash cannot).
      const trampoline = `${redirect}s=$1; shift; for f do echo $$ > "$f" || exit 125; done; exec ${q(t.unshare)} ${unshareArgs.join(' ')} ${q(t.bash ?? t.sh)} -c "$s"`;
      const plan = mountPlan(prep, mounts);
      let n = 0;
      const withFiles = (steps: MountStep[]) =>
        Promise.all(
          steps.map(async (s): Promise<ShellMountStep> => {
            if ('line' in s) return s;
            const file = path.join(prep.dir, `fstab.${n++}`);
            await fs.writeFile(file, s.fstab);
            return { file };
          }),
        );
      const steps = { early: await withFiles(plan.early), late: await withFiles(plan.late) };
      const devTemplate = ns ? await makeRootlessDevTemplate(prep.dir) : this.devTemplate;
      const tail = this.tail ? { helper: this.tail, spec: path.join(prep.dir, 'exec') } : undefined;
      if (tail) await fs.writeFile(tail.spec, execTailSpec(prep));
      const setup = setupScript(prep, t, devTemplate, steps, ns, tail);
      const child = spawnStreaming(t.sh, ['-c', trampoline, 'vlab-init', setup, ...(cg?.procsFiles() ?? [])], {
        ...opts,
        stdin: undefined,
      });
      return await finish(child, cg, startedAt, opts.signal);
    } finally {
      // finish() swept the cgroup (pid 1 gone, its pid namespace with it): pooled, its removal
      // goes on in the background, and close() waits for it
      if (cg && pool) pool.release(cg);
      await Promise.all([pool ? undefined : cg?.destroy().catch(() => {}), prep.cleanup()]);
      lap('cleanup');
    }
  }

  private get cgroupParent(): string {
    return this.opts.cgroupParent ?? CGROUP_PARENT;
  }

  /** The cgroup pool of a `pool` executor (see ExecutorOptions.pool), made on first use. */
  private pool(layout: CgroupLayout): CgroupPool | undefined {
    if (!this.opts.pool) return undefined;
    const init = this.init;
    return (this.cgroups ??= new CgroupPool(
      layout,
      this.cgroupParent,
      { devices: this.opts.deviceCgroup },
      init ? () => launchServer(init) : undefined,
    ));
  }

  /** Waits for the cgroups of finished runs to be removed, and drops the one made ahead. */
  async close(): Promise<void> {
    await this.cgroups?.close();
  }

  /** See Executor.prepareDetached: the spec file of a standalone `vlab-init SPEC`. */
  async prepareDetached(spec: RunSpec, where: { dir: string; cgroup: string }): Promise<DetachedLaunch> {
    if (!this.init || this.userNs)
      throw new VlabError(
        'E_EXEC_UNAVAILABLE',
        `containers need the vlab-init launcher as root (this executor uses the ${this.userNs ? 'rootless ' : ''}shell launcher): ${NO_SECCOMP_HELP}`,
      );
    const layout = await detectCgroupLayout();
    const prep = await prepareRun(spec, { dir: where.dir });
    let cg: Cgroup | undefined;
    try {
      cg = await Cgroup.create(layout, where.cgroup, cgroupLimits(spec.limits, spec.network), {
        devices: this.opts.deviceCgroup,
      });
      const specFile = path.join(prep.dir, 'spec');
      const mounts: BuiltinMountContext = { hostHas: (p) => this.hostKind(p), cgroup: { version: layout.version, cg } };
      await fs.writeFile(specFile, nativeSpec({ prep, mounts, cgroupProcs: cg.procsFiles() }));
      return { argv: [this.init, specFile], dir: prep.dir, cgroup: where.cgroup };
    } catch (e) {
      await cg?.destroy().catch(() => {});
      await prep.cleanup();
      throw e;
    }
  }

  /**
   * Through the vlab-init server: one forked launch process joins the cgroups, clones the
   * namespaces, mounts, pivots, execs.
   */
  private async runNative(
    prep: PreparedRun,
    mounts: BuiltinMountContext,
    cg: Cgroup | undefined,
    zygote: Zygote | undefined,
    startedAt: number,
    opts: RunOptions,
    lap: (name: string) => void,
  ): Promise<RunResult> {
    const specFile = path.join(prep.dir, 'spec');
    const stdinFile = await writeStdin(prep, opts);
    // synchronous: a small file on the critical path (µs, where a thread-pool trip is not)
    writeFileSync(specFile, nativeSpec({ prep, mounts, cgroupProcs: cg?.procsFiles() ?? [], stdinFile }));
    lap('spec');
    const launched = launchServer(this.init!).launch(specFile, opts.onOutput, zygote);
    return finish(launched, cg, startedAt, opts.signal, lap);
  }
}

/** stdin goes through a file: Node's stdio pipes are sockets, which /dev/stdin cannot reopen. */
async function writeStdin(prep: PreparedRun, opts: RunOptions): Promise<string | undefined> {
  if (!opts.stdin) return undefined;
  const file = path.join(prep.dir, 'stdin');
  await fs.writeFile(file, opts.stdin, { mode: 0o600 });
  return file;
}

/** Waits for a container's launcher; on abort kills it, then sweeps the cgroup; reads usage. */
async function finish(
  child: Spawned,
  cg: Cgroup | undefined,
  startedAt: number,
  signal?: AbortSignal,
  lap: (name: string) => void = () => {},
): Promise<RunResult> {
  const exit = await waitOrAbort(child.exited, signal, () => {
    // SIGKILL to the launcher kills pid 1 (unshare --kill-child; vlab-init's parent-death
    // signal), which tears down the pid namespace; the cgroup sweep catches anything that raced.
    void killUntil(child.exited, async () => {
      child.kill('SIGKILL');
      await cg?.killAll(0);
    });
  });
  lap('command');
  // pid 1 is gone, and its pid namespace with it: sweeping stragglers and reading usage can overlap
  const [, stats]: [unknown, CgroupStats] = await Promise.all([cg?.killAll(), cg ? cg.stats() : { oomKills: 0 }]);
  lap('stats');
  return wallResult(exit, startedAt, stats);
}
