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
import { promises as fs, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Executor, ExecutorOptions, RunOptions, RunResult, RunSpec } from './types.ts';
import { prepareRun, type PreparedRun } from './prepare.ts';
import { Cgroup, CGROUP_PARENT, detectCgroupLayout, type CgroupStats } from './cgroups.ts';
import { DEFAULT_CAPS, MASKED_PATHS, NOFILE_LIMIT, READONLY_PATHS } from './defaults.ts';
import { abortedError, killUntil, spawnStreaming, waitOrAbort, wallResult, type Spawned } from './process.ts';
import {
  checkLimits,
  checkUser,
  detectUserNs,
  makeRootlessDevTemplate,
  mapsId,
  userNsArgs,
  type UserNs,
} from './rootless.ts';
import { nativeHelper } from '@vlab/overlay';
import { execTailSpec, nativeSpec } from './native-spec.ts';
import { launchServer } from './launch-server.ts';

const NO_SECCOMP_HELP =
  'bash scripts/build-native.sh (needs cc and libseccomp-dev), or install runc or crun; VLAB_EXECUTOR=builtin-shell runs them without seccomp';

/** native/vlab-init.c, from the sources (src/exec/) or from the CLI bundle (dist/). */
export function initHelper(): string | undefined {
  return nativeHelper('vlab-init', [
    new URL('../../native/bin/vlab-init', import.meta.url),
    new URL('../native/bin/vlab-init', import.meta.url),
  ]);
}

const TOOLS = ['sh', 'unshare', 'setpriv', 'setsid', 'mount', 'mknod', 'env', 'cp'] as const;
type Tools = Record<(typeof TOOLS)[number], string> & { ip?: string; hostname?: string; bash?: string };

let toolsFound: Promise<Tools> | undefined;

/** Finds the host tools the built-in executor needs (once per process); E_EXEC_UNAVAILABLE when one is missing. */
export function findBuiltinTools(): Promise<Tools> {
  const p = (toolsFound ??= lookUpTools());
  p.catch(() => (toolsFound = undefined)); // a later call looks again (e.g. after an install)
  return p;
}

async function lookUpTools(): Promise<Tools> {
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const find = async (name: string) => {
    for (const d of dirs) {
      const p = path.join(d, name);
      if (
        await fs.access(p, fs.constants.X_OK).then(
          () => true,
          () => false,
        )
      )
        return p;
    }
    return undefined;
  };
  const found = await Promise.all([...TOOLS, 'ip', 'hostname', 'bash'].map(find));
  const out: Partial<Tools> = {};
  TOOLS.forEach((t, i) => {
    if (!found[i])
      throw new VlabError('E_EXEC_UNAVAILABLE', `the built-in executor needs ${t} (util-linux) on the host`);
    out[t] = found[i];
  });
  [out.ip, out.hostname, out.bash] = found.slice(TOOLS.length);
  return out as Tools;
}

export class BuiltinExecutor implements Executor {
  readonly name = 'builtin';
  private readonly hostKinds = new Map<string, 'dir' | 'file' | undefined>();
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
    return new BuiltinExecutor(tools, native ? '' : await ensureDevTemplate(tools), opts);
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
    const startedAt = Date.now();
    const layout = await detectCgroupLayout();
    const ns = this.userNs;
    if (ns) checkLimits(layout, spec.limits);
    const prep = await prepareRun(spec, this.opts.tmpDir);
    let cg: Cgroup | undefined;
    try {
      if (ns) checkUser(ns, prep.user, spec.user ?? '');
      else
        cg = await Cgroup.create(layout, `${this.opts.cgroupParent ?? CGROUP_PARENT}/${prep.id}`, spec.limits, {
          devices: this.opts.deviceCgroup,
        });
      if (this.init) return await this.runNative(prep, cg, startedAt, opts);
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
      // Trampoline: node cannot place a child in a cgroup before it execs (no CLONE_INTO_CGROUP,
      // no pre-exec hook), and moving it afterwards races with its first forks and allocations.
      // So a shell writes its own pid into every cgroup.procs and only then execs the container:
      // everything the container ever forks is born inside the limits.
      const stdinFile = await writeStdin(prep, opts);
      const redirect = stdinFile ? `exec 0<${q(stdinFile)} || exit 125; ` : '';
      // The setup shell is bash where there is one: it can close inherited fds above 9 (dash cannot).
      const trampoline = `${redirect}s=$1; shift; for f do echo $$ > "$f" || exit 125; done; exec ${q(t.unshare)} ${unshareArgs.join(' ')} ${q(t.bash ?? t.sh)} -c "$s"`;
      const plan = mountPlan(prep, (p) => this.hostKind(p), ns);
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
      await cg?.destroy().catch(() => {});
      await prep.cleanup();
    }
  }

  /**
   * Through the vlab-init server: one forked launch process joins the cgroups, clones the
   * namespaces, mounts, pivots, execs.
   */
  private async runNative(
    prep: PreparedRun,
    cg: Cgroup | undefined,
    startedAt: number,
    opts: RunOptions,
  ): Promise<RunResult> {
    const specFile = path.join(prep.dir, 'spec');
    const stdinFile = await writeStdin(prep, opts);
    await fs.writeFile(
      specFile,
      nativeSpec({ prep, hostHas: (p) => this.hostKind(p), cgroupProcs: cg?.procsFiles() ?? [], stdinFile }),
    );
    return finish(launchServer(this.init!).launch(specFile, opts.onOutput), cg, startedAt, opts.signal);
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
): Promise<RunResult> {
  const exit = await waitOrAbort(child.exited, signal, () => {
    // SIGKILL to the launcher kills pid 1 (unshare --kill-child; vlab-init's parent-death
    // signal), which tears down the pid namespace; the cgroup sweep catches anything that raced.
    void killUntil(child.exited, async () => {
      child.kill('SIGKILL');
      await cg?.killAll(0);
    });
  });
  await cg?.killAll();
  const stats: CgroupStats = cg ? await cg.stats() : { oomKills: 0 };
  return wallResult(exit, startedAt, stats);
}

/** A mount step of the setup script: `mount -a -T file`, or one entry mounted by itself. */
export type ShellMountStep = { file: string } | { line: FstabLine };

/**
 * The setup run as pid 1 inside the new namespaces, still on the host's root. Process starts are
 * the cost here (~10 ms each on a small VM), so mounts are batched: `mount -a -T <fstab>` mounts a
 * whole generated table in one process, and /dev is filled by one `cp -a` of a template.
 */
export function setupScript(
  p: PreparedRun,
  t: Tools,
  devTemplate: string,
  steps: { early: ShellMountStep[]; late: ShellMountStep[] },
  ns?: UserNs,
  tail?: { helper: string; spec: string },
): string {
  const R = p.rootfs;
  const L: string[] = ['set -e'];
  // Rootless: libmount believes it is root and would update /run/mount/utab (the host's, not
  // writable): -n (no mtab/utab) for every mount.
  const mount = ns ? `${q(t.mount)} -n` : q(t.mount);
  // One entry by itself: libmount makes a bind with flags a bind, then a remount (as mountCalls).
  const one = ([src, tgt, type, opts]: FstabLine) =>
    `${mount}${type === 'none' ? '' : ` -t ${q(type)}`} -o ${q(opts)} ${q(src)} ${q(tgt)}`;
  const mounts = (ss: ShellMountStep[]) => ss.map((s) => ('file' in s ? `${mount} -a -T ${q(s.file)}` : one(s.line)));
  L.push(...mounts(steps.early));
  if (ns) L.push(`${q(t.hostname!)} ${q(p.hostname)}`);
  else L.push(`echo ${q(p.hostname)} > ${q(path.join(R, '/proc/sys/kernel/hostname'))}`);
  L.push(`${q(t.cp)} -a ${q(devTemplate + '/.')} ${q(path.join(R, '/dev'))}`);
  L.push(...mounts(steps.late));
  if (p.network !== 'host' && t.ip) L.push(`${q(t.ip)} link set lo up`);
  L.push(`ulimit -n ${p.nofile ?? NOFILE_LIMIT}`);
  L.push(`cd ${q(R)}`, `${mount} --move . /`);
  const u = p.user;
  // With the single rootless mapping setgroups(2) is denied: groups can be neither set nor dropped.
  const groups =
    ns?.kind === 'single'
      ? ['--keep-groups']
      : u.additionalGids.length
        ? ['--groups', u.additionalGids.join(',')]
        : ['--clear-groups'];
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
  // vlab-init exec: chroot, cwd, uid, seccomp filter, execve (native-spec.ts writes its spec);
  // without vlab-init, unshare does the same but cannot load a filter.
  const enter = tail
    ? [tail.helper, 'exec', tail.spec]
    : [t.unshare, '--root=.', `--wd=${p.cwd}`, '--setuid', String(u.uid), '--', ...p.argv];
  L.push(closeInheritedFds());
  // setsid: a new session without a controlling terminal (TIOCSTI cannot reach vbuild's terminal).
  L.push(
    ['exec', t.setsid, '--wait', t.env, '-i', ...(tail ? [] : p.env), ...priv, ...enter]
      .map((a, i) => (i === 0 ? a : q(a)))
      .join(' '),
  );
  return L.join('\n');
}

/**
 * Node passes on every fd it inherited without close-on-exec (a pipe of the user's shell, a CI
 * runner's): none may reach the container. dash only knows fds 0-9, hence bash for the others.
 */
export function closeInheritedFds(): string {
  const bashOnly = `[ -n "\${BASH_VERSION:-}" ] || { echo "vlab: cannot close inherited fd $n: the shell launcher needs bash" >&2; exit 125; }`;
  return `for f in /proc/self/fd/*; do n=\${f##*/}; case $n in 0|1|2) ;; [3-9]) eval "exec $n>&-" ;; *) ${bashOnly}; eval "exec $n>&-" ;; esac; done`;
}

export type FstabLine = [source: string, target: string, type: string, options: string];

/** What the shell launcher mounts: a table for one `mount -a -T`, or one entry by itself. */
export type MountStep = { fstab: string } | { line: FstabLine };

/**
 * containerMounts() as the shell launcher carries it out, before /dev is filled (root, /proc,
 * /dev) and after (everything else): runs of entries batched into fstab tables, in order. But
 * `mount -a` skips as "already mounted" an entry whose target was a mount of the same source when
 * it started (it reads the mount table once): the rootfs self-bind (the rootfs is a mount, the
 * builder's snapshot; skipped, the root would lose nodev), or an entry on a target an earlier
 * table mounted. An entry on a target mounted before (the rootfs, any earlier entry's) is mounted
 * by itself, in its place.
 */
export function mountPlan(
  p: PreparedRun,
  hostHas: (containerPath: string) => 'dir' | 'file' | undefined,
  ns?: UserNs,
): { early: MountStep[]; late: MountStep[] } {
  const { early, late } = containerMounts(p, hostHas, ns);
  const mounted = new Set([p.rootfs]);
  const plan = (lines: FstabLine[]) => {
    const steps: MountStep[] = [];
    let table = '';
    for (const l of lines) {
      const target = l[1];
      if (mounted.has(target)) {
        if (table) steps.push({ fstab: table });
        table = '';
        steps.push({ line: l });
      } else table += l.map(fstabEscape).join(' ') + ' 0 0\n';
      mounted.add(target);
    }
    if (table) steps.push({ fstab: table });
    return steps;
  };
  return { early: plan(early), late: plan(late) };
}

/** The container's mounts as data, in mount(8) terms; shared by the shell and vlab-init paths. */
export function containerMounts(
  p: PreparedRun,
  hostHas: (containerPath: string) => 'dir' | 'file' | undefined,
  ns?: UserNs,
): { early: FstabLine[]; late: FstabLine[] } {
  const R = p.rootfs;
  const r = (sub: string) => path.join(R, sub);
  // Device access by mount flags, whatever the cgroup layout (pure v2 has no devices controller
  // and we load no eBPF program): the root, /dev and every bind are nodev, so a node the RUN
  // makes (CAP_MKNOD) or the image brings cannot be opened; the allowed devices are the host's
  // own nodes bind-mounted in (devpts gives the ptys). Not nosuid: setuid binaries work as in Docker.
  // Rootless needs none of it on the binds (no CAP_MKNOD over the host: the user opens only what it
  // could anyway), and a remount there must keep the source's locked flags, which we do not know.
  const nodev = ns ? [] : ['nodev'];
  const early: FstabLine[] = [
    [R, R, 'none', ['bind', ...nodev].join(',')],
    ['proc', r('/proc'), 'proc', 'nosuid,noexec,nodev'],
    ['tmpfs', r('/dev'), 'tmpfs', 'nosuid,nodev,strictatime,mode=755,size=65536k'],
  ];
  // Rootless: devpts' gid=5 only where gid 5 is mapped; host device nodes are bind-mounted (no
  // mknod in a user namespace); sysfs can only be mounted in a net namespace we own, so with host
  // networking the host's /sys is bind-mounted read-only.
  const ptsGid = !ns || mapsId(ns, 5, 'gids') ? ',gid=5' : '';
  const late: FstabLine[] = [
    ...DEV_NODES.map(([d]): FstabLine => ['/dev/' + d, r('/dev/' + d), 'none', 'bind']),
    ['devpts', r('/dev/pts'), 'devpts', 'nosuid,noexec,newinstance,ptmxmode=0666,mode=0620' + ptsGid],
    ['shm', r('/dev/shm'), 'tmpfs', 'nosuid,noexec,nodev,mode=1777,size=65536k'],
    ['mqueue', r('/dev/mqueue'), 'mqueue', 'nosuid,noexec,nodev'],
    ns && p.network === 'host'
      ? ['/sys', r('/sys'), 'none', 'rbind,ro']
      : ['sysfs', r('/sys'), 'sysfs', 'ro,nosuid,noexec,nodev'],
  ];
  for (const m of p.mounts) {
    if (m.type === 'tmpfs') {
      const o = ['nosuid', 'nodev', ...(m.options ?? []), ...(m.readonly ? ['ro'] : [])];
      late.push(['tmpfs', m.hostTarget, 'tmpfs', o.join(',')]);
    } else {
      late.push([m.source!, m.hostTarget, 'none', ['rbind', ...nodev, ...(m.readonly ? ['ro'] : [])].join(',')]);
    }
  }
  // /proc and /sys show the host kernel's entries, so the host tells which of these exist.
  for (const m of MASKED_PATHS) {
    const kind = hostHas(m);
    if (kind === 'dir') late.push(['tmpfs', r(m), 'tmpfs', 'ro,nosuid,nodev,noexec,size=0']);
    if (kind === 'file') late.push(['/dev/null', r(m), 'none', 'bind']);
  }
  for (const m of READONLY_PATHS) if (hostHas(m)) late.push([r(m), r(m), 'none', 'bind,ro']);
  return { early, late };
}

function fstabEscape(s: string): string {
  return s.replace(/[\\ \t\n]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}

/**
 * A container's /dev (Docker's): character devices (name, major, minor; mode 0666), links, dirs.
 * The nodes made in the nodev /dev are only mountpoints: the host's nodes are bound onto them.
 */
export const DEV_NODES: [string, number, number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];
export const DEV_LINKS: [string, string][] = [
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
  ['ptmx', 'pts/ptmx'],
  ['core', '/proc/kcore'],
];
export const DEV_DIRS = ['pts', 'shm', 'mqueue'];

/** Where the /dev template lives (device nodes, std links, empty pts/shm/mqueue dirs). */
export const DEV_TEMPLATE = '/run/vlab/dev-template';

/** Makes the /dev template once (atomically: built aside, then renamed into place). */
async function ensureDevTemplate(t: Tools): Promise<string> {
  if (
    await fs.access(path.join(DEV_TEMPLATE, 'ptmx')).then(
      () => true,
      () => false,
    )
  )
    return DEV_TEMPLATE;
  await fs.mkdir(path.dirname(DEV_TEMPLATE), { recursive: true });
  const tmp = await fs.mkdtemp(DEV_TEMPLATE + '.');
  try {
    for (const [n, maj, min] of DEV_NODES)
      await promisify(execFile)(t.mknod, ['-m', '666', path.join(tmp, n), 'c', String(maj), String(min)]);
    for (const [n, target] of DEV_LINKS) await fs.symlink(target, path.join(tmp, n));
    for (const d of DEV_DIRS) await fs.mkdir(path.join(tmp, d));
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, DEV_TEMPLATE).catch(() => {}); // lost a race: the other one is as good
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return DEV_TEMPLATE;
}

/** POSIX shell single-quoting. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
