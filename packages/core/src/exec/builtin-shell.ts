/**
 * The shell launcher's setup script (the util-linux chain, see builtin.ts): what pid 1 runs in
 * the new namespaces to mount, name the host, switch root and drop privileges before the command.
 */
import path from 'node:path';
import type { PreparedRun } from './prepare.ts';
import type { FstabLine } from './builtin-mounts.ts';
import type { Tools } from './builtin.ts';
import type { UserNs } from './rootless.ts';
import { DEFAULT_CAPS, NOFILE_LIMIT } from './defaults.ts';

/** A mount step of the setup script: `mount -a -T file`, or one entry mounted by itself. */
export type ShellMountStep = { file: string } | { line: FstabLine; pin?: string };

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
  // a pinned source (builtin-mounts.ts pinnedSource): the target must now be the pinned file
  const check = (tgt: string, pin: string) =>
    t.stat
      ? `[ "$(${q(t.stat)} -L -c %d:%i ${q(tgt)})" = ${q(pin)} ] || { echo ${q(`vlab: the bind source for ${tgt} changed while the build ran: run the build again`)} >&2; exit 125; }`
      : `echo ${q(`vlab: a pinned bind source (${tgt}) needs stat(1) on the host`)} >&2; exit 125`;
  const mounts = (ss: ShellMountStep[]) =>
    ss.map((s) =>
      'file' in s ? `${mount} -a -T ${q(s.file)}` : one(s.line) + (s.pin ? `\n${check(s.line[1], s.pin)}` : ''),
    );
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

/** POSIX shell single-quoting. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
