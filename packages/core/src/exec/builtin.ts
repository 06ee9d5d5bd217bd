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
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Executor, ExecutorOptions, RunOptions, RunResult, RunSpec } from './types.ts';
import { prepareRun, type PreparedRun } from './prepare.ts';
import { Cgroup, CGROUP_PARENT, detectCgroupLayout, type CgroupStats } from './cgroups.ts';
import { DEFAULT_CAPS, MASKED_PATHS, NOFILE_LIMIT, READONLY_PATHS } from './defaults.ts';
import { abortedError, killUntil, spawnStreaming, wallResult } from './process.ts';

const TOOLS = ['sh', 'unshare', 'setpriv', 'mount', 'mknod', 'env'] as const;
type Tools = Record<(typeof TOOLS)[number], string> & { ip?: string };

/** Finds the host tools the built-in executor needs; E_EXEC_UNAVAILABLE when one is missing. */
export async function findBuiltinTools(): Promise<Tools> {
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const find = async (name: string) => {
    for (const d of dirs) {
      const p = path.join(d, name);
      if (await fs.access(p, fs.constants.X_OK).then(() => true, () => false)) return p;
    }
    return undefined;
  };
  const out: Partial<Tools> = {};
  for (const t of TOOLS) {
    const p = await find(t);
    if (!p) throw new VlabError('E_EXEC_UNAVAILABLE', `the built-in executor needs ${t} (util-linux) on the host`);
    out[t] = p;
  }
  out.ip = await find('ip');
  return out as Tools;
}

export class BuiltinExecutor implements Executor {
  readonly name = 'builtin';
  constructor(
    private readonly tools: Tools,
    private readonly opts: ExecutorOptions = {},
  ) {}

  static async create(opts: ExecutorOptions = {}): Promise<BuiltinExecutor> {
    if (process.getuid?.() !== 0) {
      throw new VlabError('E_EXEC_UNAVAILABLE', 'the built-in executor needs root (rootless mode is not implemented)');
    }
    return new BuiltinExecutor(await findBuiltinTools(), opts);
  }

  async run(spec: RunSpec, opts: RunOptions = {}): Promise<RunResult> {
    if (opts.signal?.aborted) throw abortedError(opts.signal.reason);
    const startedAt = Date.now();
    const prep = await prepareRun(spec, this.opts.tmpDir);
    let cg: Cgroup | undefined;
    try {
      const layout = await detectCgroupLayout();
      cg = await Cgroup.create(layout, `${this.opts.cgroupParent ?? CGROUP_PARENT}/${prep.id}`, spec.limits);
      const t = this.tools;
      const unshareArgs = ['--pid', '--fork', '--kill-child', '--mount', '--uts', '--ipc', '--propagation', 'private'];
      if (prep.network !== 'host') unshareArgs.push('--net');
      // Trampoline: node cannot place a child in a cgroup before it execs (no CLONE_INTO_CGROUP,
      // no pre-exec hook), and moving it afterwards races with its first forks and allocations.
      // So a shell writes its own pid into every cgroup.procs and only then execs the container:
      // everything the container ever forks is born inside the limits.
      const trampoline = `s=$1; shift; for f do echo $$ > "$f" || exit 125; done; exec ${q(t.unshare)} ${unshareArgs.join(' ')} ${q(t.sh)} -c "$s"`;
      const child = spawnStreaming(t.sh, ['-c', trampoline, 'vlab-init', setupScript(prep, t), ...cg.procsFiles()], opts);
      const cgroup = cg;
      let aborted = false;
      const onAbort = () => {
        aborted = true;
        // SIGKILL to unshare kills pid 1 (--kill-child), which tears down the pid namespace; the
        // cgroup sweep catches anything that raced (e.g. still in the trampoline).
        void killUntil(child.exited, async () => {
          child.kill('SIGKILL');
          await cgroup.killAll(0);
        });
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.signal?.aborted) onAbort(); // fired while we were preparing
      let exit;
      try {
        exit = await child.exited;
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
      if (aborted) throw abortedError(opts.signal?.reason);
      await cg.killAll();
      const stats: CgroupStats = await cg.stats();
      return wallResult(exit, startedAt, stats);
    } finally {
      await cg?.destroy().catch(() => {});
      await prep.cleanup();
    }
  }
}

/** The setup run as pid 1 inside the new namespaces, still on the host's root. */
export function setupScript(p: PreparedRun, t: Tools): string {
  const R = p.rootfs;
  const r = (sub: string) => q(path.join(R, sub));
  const L: string[] = ['set -e'];
  L.push(`${q(t.mount)} --bind ${q(R)} ${q(R)}`);
  L.push(`${q(t.mount)} -t proc -o nosuid,noexec,nodev proc ${r('/proc')}`);
  L.push(`echo ${q(p.hostname)} > ${r('/proc/sys/kernel/hostname')}`);
  L.push(`${q(t.mount)} -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs ${r('/dev')}`);
  const devs: [string, number, number][] = [['null', 1, 3], ['zero', 1, 5], ['full', 1, 7], ['random', 1, 8], ['urandom', 1, 9], ['tty', 5, 0]];
  for (const [n, maj, min] of devs) L.push(`${q(t.mknod)} -m 666 ${r('/dev/' + n)} c ${maj} ${min}`);
  L.push(`cd ${r('/dev')} && ln -s /proc/self/fd fd && ln -s /proc/self/fd/0 stdin && ln -s /proc/self/fd/1 stdout && ln -s /proc/self/fd/2 stderr && ln -s pts/ptmx ptmx && mkdir pts shm mqueue && cd /`);
  L.push(`${q(t.mount)} -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts ${r('/dev/pts')}`);
  L.push(`${q(t.mount)} -t tmpfs -o nosuid,noexec,nodev,mode=1777,size=65536k shm ${r('/dev/shm')}`);
  L.push(`${q(t.mount)} -t mqueue -o nosuid,noexec,nodev mqueue ${r('/dev/mqueue')}`);
  L.push(`${q(t.mount)} -t sysfs -o ro,nosuid,noexec,nodev sysfs ${r('/sys')}`);
  for (const m of p.mounts) {
    const dst = q(m.hostTarget);
    if (m.type === 'tmpfs') {
      const o = ['nosuid', 'nodev', ...(m.options ?? []), ...(m.readonly ? ['ro'] : [])];
      L.push(`${q(t.mount)} -t tmpfs -o ${q(o.join(','))} tmpfs ${dst}`);
    } else {
      L.push(`${q(t.mount)} --rbind ${q(m.source!)} ${dst}`);
      if (m.readonly) L.push(`${q(t.mount)} -o remount,bind,ro ${dst}`);
    }
  }
  for (const m of MASKED_PATHS) {
    const h = r(m);
    L.push(`if [ -d ${h} ]; then ${q(t.mount)} -t tmpfs -o ro,nosuid,nodev,noexec tmpfs ${h}; elif [ -e ${h} ]; then ${q(t.mount)} --bind /dev/null ${h}; fi`);
  }
  for (const m of READONLY_PATHS) {
    const h = r(m);
    L.push(`if [ -e ${h} ]; then ${q(t.mount)} --bind ${h} ${h} && ${q(t.mount)} -o remount,bind,ro ${h}; fi`);
  }
  if (p.network !== 'host' && t.ip) L.push(`${q(t.ip)} link set lo up`);
  L.push(`ulimit -n ${NOFILE_LIMIT}`);
  L.push(`cd ${q(R)}`, `${q(t.mount)} --move . /`);
  const u = p.user;
  const groups = u.additionalGids.length ? ['--groups', u.additionalGids.join(',')] : ['--clear-groups'];
  const priv = [
    t.setpriv,
    '--bounding-set',
    ['-all', ...DEFAULT_CAPS.map((c) => '+' + c)].join(','),
    '--inh-caps=-all',
    '--nnp',
    '--regid',
    String(u.gid),
    ...groups,
    '--',
  ];
  const enter = [t.unshare, '--root=.', `--wd=${p.cwd}`, '--setuid', String(u.uid), '--', ...p.argv];
  L.push(['exec', t.env, '-i', ...p.env, ...priv, ...enter].map((a, i) => (i === 0 ? a : q(a))).join(' '));
  return L.join('\n');
}

/** POSIX shell single-quoting. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
