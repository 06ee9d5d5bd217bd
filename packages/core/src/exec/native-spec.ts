/**
 * The spec file vlab-init (native/vlab-init.c) carries out: NUL-terminated tokens, a keyword and
 * its arguments (the C file's header lists them). Everything is decided here, in TypeScript:
 * mounts, devices, identity, capabilities, the seccomp rules; the helper only makes the system calls, in order.
 */
import { createHash } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { PreparedRun } from './prepare.ts';
import { initHelper } from './init-helper.ts';
import type { CreatedMountpoints } from './mountpoints.ts';
import { builtinMounts, type BuiltinMountContext, type FstabLine } from './builtin-mounts.ts';
import { DEV_NODES, cgroupNamespace } from './mounts.ts';
import { DEV_DIRS, DEV_LINKS } from './dev.ts';
import { DEFAULT_CAPS, NOFILE_LIMIT } from './defaults.ts';
import { seccompTokens } from './seccomp.ts';
import { pastaArgv } from './network.ts';

/** mount(2) flags for the mount(8) option words we use; every other word is filesystem data. */
const FLAG_WORDS: Record<string, number> = {
  ro: 0x1, // MS_RDONLY
  nosuid: 0x2,
  nodev: 0x4,
  noexec: 0x8,
  relatime: 1 << 21,
  strictatime: 1 << 24,
  rw: 0,
  bind: 0x1000, // MS_BIND
  rbind: 0x1000 | 0x4000, // MS_BIND | MS_REC
};
const MS_REMOUNT = 0x20;
const MS_BIND = 0x1000;
const PER_MOUNT = 0xf; // MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC

/** Capability numbers (linux/capability.h) of the names in DEFAULT_CAPS. */
const CAP_NUMBERS: Record<string, number> = {
  chown: 0,
  dac_override: 1,
  dac_read_search: 2,
  fowner: 3,
  fsetid: 4,
  kill: 5,
  setgid: 6,
  setuid: 7,
  setpcap: 8,
  linux_immutable: 9,
  net_bind_service: 10,
  net_broadcast: 11,
  net_admin: 12,
  net_raw: 13,
  ipc_lock: 14,
  ipc_owner: 15,
  sys_module: 16,
  sys_rawio: 17,
  sys_chroot: 18,
  sys_ptrace: 19,
  sys_pacct: 20,
  sys_admin: 21,
  sys_boot: 22,
  sys_nice: 23,
  sys_resource: 24,
  sys_time: 25,
  sys_tty_config: 26,
  mknod: 27,
  lease: 28,
  audit_write: 29,
  audit_control: 30,
  setfcap: 31,
};

export function capNumbers(names: string[]): number[] {
  return names.map((n) => {
    const c = CAP_NUMBERS[n];
    if (c === undefined) throw new Error(`unknown capability ${n}`);
    return c;
  });
}

/**
 * One fstab line → the mount(2) calls it takes: a bind with flags is a bind, then a remount;
 * `X-mount.mkdir` (mount(8)'s) makes the target first.
 */
export function mountCalls([source, target, type, options]: FstabLine): string[][] {
  let flags = 0;
  const data: string[] = [];
  const calls: string[][] = [];
  for (const o of options.split(',').filter(Boolean)) {
    if (o === 'X-mount.mkdir') calls.push(['mkdir', target, '755']);
    else if (o in FLAG_WORDS) flags |= FLAG_WORDS[o]!;
    else data.push(o);
  }
  const nul = (s: string) => (s === '' || s === 'none' ? '-' : s);
  if (flags & MS_BIND) {
    calls.push(['mount', source, target, '-', String(flags & ~PER_MOUNT), '-']);
    // bind ignores per-mount flags: ro, nosuid, nodev, noexec take a remount
    if (flags & PER_MOUNT)
      calls.push(['mount', '-', target, '-', String(MS_REMOUNT | MS_BIND | (flags & PER_MOUNT)), '-']);
    return calls;
  }
  calls.push(['mount', source, target, nul(type), String(flags), nul(data.join(','))]);
  return calls;
}

export interface NativeSpecInput {
  prep: PreparedRun;
  /** The host and the run's cgroup, for the mount list (builtin-mounts.ts). */
  mounts: BuiltinMountContext;
  /** cgroup.procs files to join before anything forks. */
  cgroupProcs: string[];
  /** A file to read as stdin (the run's stdin bytes, written out by the executor). */
  stdinFile?: string;
}

export function nativeSpec({ prep, mounts, cgroupProcs, stdinFile }: NativeSpecInput): Buffer {
  const t: string[][] = [];
  for (const f of cgroupProcs) t.push(['cgroup', f]);
  if (stdinFile) t.push(['stdin', stdinFile]);
  if (prep.tty) t.push(['tty', String(prep.tty.rows ?? 24), String(prep.tty.cols ?? 80)]);
  if (prep.network !== 'host') t.push(['net']);
  // after the cgroup tokens: the namespace's root is the run's cgroup
  if (cgroupNamespace(mounts.cgroup?.version)) t.push(['cgroupns']);
  if (prep.network === 'private') for (const a of pastaArgv(prep.ports ?? [])) t.push(['netcmd', a]);
  const { early, late } = builtinMounts(prep, mounts);
  for (const line of early) t.push(...mountCalls(line));
  const dev = path.join(prep.rootfs, 'dev');
  for (const [name, major, minor] of DEV_NODES)
    t.push(['mknod', path.join(dev, name), '666', String(major), String(minor)]);
  for (const [name, target] of DEV_LINKS) t.push(['symlink', target, path.join(dev, name)]);
  for (const d of DEV_DIRS) t.push(['mkdir', path.join(dev, d), '755']);
  for (const line of late) t.push(...mountCalls(line));
  t.push(['hostname', prep.hostname]);
  if (prep.network !== 'host') t.push(['lo']);
  t.push(['nofile', String(prep.nofile ?? NOFILE_LIMIT)]);
  t.push(['root', prep.rootfs]);
  const u = prep.user;
  t.push(['gid', String(u.gid)], ['groups', u.additionalGids.join(',')], ['caps', capNumbers(DEFAULT_CAPS).join(',')]);
  // a loop, not a spread: an image's Env can hold 10^5 entries, past the engine's argument limit
  for (const tok of commandTokens(prep)) t.push(tok);
  t.push(...cleanupTokens(prep.mountpoints));
  return encode(t);
}

/** After the container: its mountpoints go (deepest first, if still empty), parents' mtimes back. */
function cleanupTokens(mp: CreatedMountpoints): string[][] {
  const t: string[][] = [];
  for (const c of [...mp.created].reverse()) t.push([c.kind === 'dir' ? 'rmdir' : 'rmfile', c.path]);
  for (const [dir, [, mtime]] of mp.parents) {
    const [sec, nsec] = mtime.split('.');
    t.push(['mtime', dir, sec!, String(Number(nsec))]);
  }
  return t;
}

/**
 * A launch by another runtime (runc): only the cleanup part of a spec, in the same format, so
 * cleanupDetached and the diff's mountpoint rule read every detached launch alike.
 */
export function cleanupSpec(prep: PreparedRun): Buffer {
  return encode([['root', prep.rootfs], ...cleanupTokens(prep.mountpoints)]);
}

/** cwd, uid, the seccomp filter (Docker's profile for DEFAULT_CAPS, loaded right before execve), env, argv. */
function commandTokens(prep: PreparedRun): string[][] {
  const t: string[][] = [['cwd', prep.cwd], ['uid', String(prep.user.uid)], ...seccompSection()];
  for (const e of prep.env) t.push(['env', e]);
  for (const a of prep.argv) t.push(['arg', a]);
  return t;
}

/** Where root's vlab-init keeps compiled filters (root-only; /run is cleared at boot). */
const SECCOMP_CACHE = '/run/vlab/seccomp';
let section: string[][] | undefined;

/**
 * The seccomp tokens (the same for every run of this process) and, as root, the file that holds
 * their compiled program, named by the hash of the rules and of the vlab-init binary.
 */
export function seccompSection(): string[][] {
  if (section) return section;
  const t = seccompTokens();
  const helper = initHelper();
  if (process.getuid?.() === 0 && helper) {
    const st = statSync(helper);
    const key = createHash('sha256')
      .update(JSON.stringify([t, helper, st.size, st.mtimeMs, st.ino]))
      .digest('hex')
      .slice(0, 32);
    mkdirSync(SECCOMP_CACHE, { recursive: true, mode: 0o700 });
    t.push(['sccache', path.join(SECCOMP_CACHE, key)]);
  }
  return (section = t);
}

/** `vlab-init exec`'s spec: the shell launcher's last step (setpriv has set gid, groups and caps). */
export function execTailSpec(prep: PreparedRun): Buffer {
  return encode(commandTokens(prep));
}

/** Tokens → the NUL-separated spec file (a token with a NUL is refused). */
export function encode(t: string[][]): Buffer {
  // one pass, one string: a launch spec has ~1500 tokens (the seccomp rules), and flat/map/join
  // took half a millisecond of every RUN step
  let out = '';
  for (const tok of t)
    for (const s of tok) {
      if (s.includes('\0')) throw new Error(`a NUL byte in ${JSON.stringify(s)}`);
      out += s + '\0';
    }
  return Buffer.from(out);
}

/**
 * The mountpoints a launch spec made in its rootfs (its `rmdir`/`rmfile` tokens), as container
 * paths: while the container runs they are in its writable layer, and vlab-init removes them
 * when it ends; `diff` and `commit` of a running container leave them out (docker's init layer).
 * `parents`: the dirs they were made in, whose mtime vlab-init puts back at the end.
 */
export function specMountpoints(spec: Buffer, rootfs: string): { created: string[]; parents: string[] } {
  const created: string[] = [];
  const parents: string[] = [];
  const root = path.resolve(rootfs);
  for (const [k, p] of decodeSpec(spec)) {
    if ((k === 'rmdir' || k === 'rmfile' || k === 'mtime') && p!.startsWith(root + '/'))
      (k === 'mtime' ? parents : created).push(p!.slice(root.length));
  }
  return { created, parents };
}

/** The cleanup a launch spec asks of vlab-init after the container (its root, rmdir/rmfile, mtime), as data. */
export function specCleanup(spec: Buffer): CreatedMountpoints {
  const c: CreatedMountpoints = { root: '', created: [], parents: new Map(), resolved: [] };
  for (const [k, a, b, n] of decodeSpec(spec)) {
    if (k === 'root') c.root = a!;
    // the spec lists them deepest first; removeMountpoints takes creation order
    else if (k === 'rmdir' || k === 'rmfile') c.created.unshift({ path: a!, kind: k === 'rmdir' ? 'dir' : 'file' });
    else if (k === 'mtime') c.parents.set(a!, ['', `${b}.${n!.padStart(9, '0')}`]);
  }
  if (!c.root) c.created.length = 0;
  return c;
}

/** Arguments of each keyword (vlab-init.c's arity table). */
const ARITY: Record<string, number> = {
  cgroup: 1,
  net: 0,
  stdin: 1,
  mount: 5,
  mknod: 4,
  symlink: 2,
  mkdir: 2,
  hostname: 1,
  lo: 0,
  nofile: 1,
  root: 1,
  cwd: 1,
  uid: 1,
  gid: 1,
  groups: 1,
  caps: 1,
  env: 1,
  arg: 1,
  rmdir: 1,
  rmfile: 1,
  mtime: 3,
  seccomp: 1,
  scarch: 1,
  scrule: 3,
  sccache: 1,
  target: 1,
  tty: 2,
  netcmd: 1,
};

/** A spec file back into its [keyword, ...args] entries (E_EXEC_SETUP for one we did not write). */
export function decodeSpec(spec: Buffer): string[][] {
  const toks = spec.toString('utf8').split('\0');
  if (toks[toks.length - 1] === '') toks.pop();
  const out: string[][] = [];
  for (let i = 0; i < toks.length;) {
    const n = ARITY[toks[i]!];
    if (n === undefined || i + n >= toks.length)
      throw new VlabError('E_EXEC_SETUP', `not a vlab-init spec: ${toks[i]}`);
    out.push(toks.slice(i, i + n + 1));
    i += n + 1;
  }
  return out;
}
