/**
 * What both executors do before and after a run: validate the spec, resolve the user, complete
 * the env, write /etc/hosts, /etc/resolv.conf and /etc/hostname into a private temp dir, create
 * the mountpoints the run needs inside the rootfs (and remove them afterwards, see
 * mountpoints.ts). Everything here is undone by `cleanup()`, which never throws.
 */
import { promises as fs, readFileSync, readdirSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import type { ExtraHost, ExtraMount, NetworkMode, PortMapping, RunSpec } from './types.ts';
import { resolveUser, type ResolvedUser } from './user.ts';
import { ensureDirIn, partsIn, resolveInRoot } from '../fsutil/in-root.ts';
import { InRootDirs } from '@vlab/overlay';
import { DEFAULT_PATH } from './defaults.ts';
import { ownedTempDir } from '../fsutil/owned-temp.ts';
import {
  createMountpoints,
  removeMountpoints,
  type CreatedMountpoints,
  type MountpointRequest,
} from './mountpoints.ts';

export const DEFAULT_HOSTNAME = 'vlab-build';
/** Temp dirs of runs start with this, under os.tmpdir() (tests look for leftovers by it). */
export const TMP_PREFIX = 'vlab-exec-';

/** A mount with its target already resolved to a host path inside the rootfs. */
export interface PreparedMount extends ExtraMount {
  /** Host path of the target (in-root resolved, exists). */
  hostTarget: string;
}

export interface PreparedRun {
  id: string;
  /** Private temp dir of this run (bundle dir for OCI runtimes). */
  dir: string;
  rootfs: string;
  argv: string[];
  env: string[];
  cwd: string;
  user: ResolvedUser;
  hostname: string;
  tty?: { rows?: number; cols?: number };
  network: NetworkMode;
  ports?: PortMapping[];
  /** RLIMIT_NOFILE of the process (soft = hard); the executors default to NOFILE_LIMIT. */
  nofile?: number;
  readonlyRootfs?: boolean;
  /** /etc/hosts, /etc/resolv.conf, /etc/hostname binds, then the spec's mounts, in mount order. */
  mounts: PreparedMount[];
  /** The mountpoints made in the rootfs for this run (vlab-init removes them itself when done). */
  mountpoints: CreatedMountpoints;
  cleanup(): Promise<void>;
}

/** Filesystems the runtime mounts itself at these container paths (dirs made in the rootfs). */
const SYSTEM_DIRS = ['/proc', '/dev', '/sys'];

/** A run's id: the owner pid in it names the run's cgroup, so a dead build's ones are found (orphanCgroups). */
export function newRunId(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * `where`: `{ tmp }` for a run this process waits for (a temp dir under `tmp`, default os.tmpdir(),
 * owned by this process: a dead owner's is removed by the next run, fsutil/owned-temp.ts);
 * `{ dir }` for a detached launch, whose dir outlives this process (its container's record owns it).
 */
export async function prepareRun(
  spec: RunSpec,
  where: { tmp?: string } | { dir: string } = {},
  id = newRunId(),
): Promise<PreparedRun> {
  if (!spec.argv?.length) throw new VlabError('E_EXEC_SETUP', 'nothing to run: argv is empty');
  const rootfs = path.resolve(spec.rootfs);
  const st = await fs.stat(rootfs).catch(() => undefined);
  if (!st?.isDirectory()) throw new VlabError('E_EXEC_SETUP', `rootfs ${spec.rootfs} is not a directory`);
  const cwd = spec.cwd || '/';
  if (!cwd.startsWith('/')) throw new VlabError('E_EXEC_SETUP', `working directory ${cwd} is not absolute`);
  const user = await resolveUser(rootfs, spec.user ?? '');
  const hostname = spec.hostname || DEFAULT_HOSTNAME;
  const network = spec.network ?? 'none';
  if (spec.ports?.length && network !== 'private')
    throw new VlabError('E_BAD_ARG', `publishing ports (-p) needs --network private, not ${network}`);

  const dir =
    'dir' in where
      ? await fs.mkdtemp(path.join(where.dir, TMP_PREFIX))
      : await ownedTempDir(where.tmp ?? os.tmpdir(), TMP_PREFIX);
  let created: Awaited<ReturnType<typeof createMountpoints>> | undefined;
  const cleanup = async () => {
    // the dir holds a few small files of ours: removed synchronously (µs, where thread-pool trips
    // are not), each unlinked by name (rmSync's walk first tries an rmdir that fails, and lstats
    // every entry); anything else there goes the long way
    try {
      for (const name of readdirSync(dir)) unlinkSync(path.join(dir, name));
      rmdirSync(dir);
    } catch {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        /* as before: never throws */
      }
    }
    if (created) await removeMountpoints(created).catch(() => {});
  };
  try {
    const etc = writeEtcFiles(dir, hostname, network, spec.extraHosts ?? []);
    const extra: ExtraMount[] = [
      ...etc.map(([target, source]) => ({ type: 'bind' as const, source, target })),
      ...(spec.mounts ?? []),
    ];
    const reqs: MountpointRequest[] = SYSTEM_DIRS.map((target) => ({ target, kind: 'dir' as const }));
    for (const m of extra) {
      if (!m.target.startsWith('/')) throw new VlabError('E_EXEC_SETUP', `mount target ${m.target} is not absolute`);
      if (m.type === 'bind') {
        const src = await fs.stat(m.source ?? '').catch(() => undefined);
        if (!src) throw new VlabError('E_EXEC_SETUP', `mount source ${m.source} does not exist`);
        reqs.push({ target: m.target, kind: src.isDirectory() ? 'dir' : 'file' });
      } else reqs.push({ target: m.target, kind: 'dir' });
    }
    // Skip targets that live on a filesystem the runtime mounts (/dev/…, /proc/…, /sys/…).
    const inRoot = reqs.filter(
      (r, i) => i < SYSTEM_DIRS.length || !SYSTEM_DIRS.some((s) => r.target.startsWith(s + '/')),
    );
    created = await createMountpoints(rootfs, inRoot);
    // The working directory is created like BuildKit does, and kept (it is part of the step).
    const [mounts] = await Promise.all([
      Promise.all(
        extra.map(async (m): Promise<PreparedMount> => ({ ...m, hostTarget: await resolveInRoot(rootfs, m.target) })),
      ),
      resolveInRoot(rootfs, cwd).then((hostCwd) => makeCwd(rootfs, hostCwd, cwd)),
    ]);
    return {
      id,
      dir,
      rootfs,
      argv: spec.argv,
      env: completeEnv(spec.env ?? [], user),
      cwd,
      user,
      hostname,
      tty: spec.tty,
      network,
      ports: spec.ports ?? [],
      nofile: spec.limits?.nofile,
      readonlyRootfs: spec.readonlyRootfs,
      mounts,
      mountpoints: created,
      cleanup,
    };
  } catch (e) {
    await cleanup();
    if (e instanceof VlabError) throw e;
    throw new VlabError('E_EXEC_SETUP', `cannot prepare the build container: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * mkdir -p of the resolved working directory `hostCwd` under `rootfs`, 0755, each directory made
 * from its parent's fd (ensureDirIn): nothing is made through a directory swapped for a symlink.
 * Errors as mkdir's were: plain, so the caller gives them as E_EXEC_SETUP.
 */
function makeCwd(rootfs: string, hostCwd: string, cwd: string): void {
  const root = path.resolve(rootfs);
  const dirs = new InRootDirs(root + '/.');
  try {
    ensureDirIn(dirs, partsIn(root, hostCwd), cwd, undefined, 0o755);
  } catch (e) {
    throw new Error(`working directory ${cwd}: ${(e as Error).message}`, { cause: e });
  } finally {
    dirs.close();
  }
}

/** PATH and HOME get Docker's defaults when absent; entries without `=` are dropped. */
export function completeEnv(env: string[], user: ResolvedUser): string[] {
  const out = env.filter((e) => e.includes('='));
  const has = (k: string) => out.some((e) => e.startsWith(k + '='));
  if (!has('PATH')) out.push(`PATH=${DEFAULT_PATH}`);
  if (!has('HOME')) out.push(`HOME=${user.home ?? '/'}`);
  return out;
}

function writeEtcFiles(dir: string, hostname: string, network: NetworkMode, extra: ExtraHost[]): [string, string][] {
  const hosts = [
    `127.0.0.1\tlocalhost ${hostname}`,
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...extra.map((h) => `${h.ip}\t${h.host}`),
    '',
  ].join('\n');
  const resolv = hostResolvConf(network);
  const files: [string, string, string][] = [
    ['/etc/hosts', 'hosts', hosts],
    ['/etc/resolv.conf', 'resolv.conf', resolv],
    ['/etc/hostname', 'hostname', hostname + '\n'],
  ];
  // synchronous: three small files on every RUN step's path (µs each, where each thread-pool
  // open, write and close is a wake-up of its own)
  return files.map(([target, name, content]): [string, string] => {
    const file = path.join(dir, name);
    writeFileSync(file, content, { mode: 0o644 });
    return [target, file];
  });
}

/** The host's resolv.conf; without host networking, loopback resolvers are useless and dropped. */
function hostResolvConf(network: NetworkMode): string {
  let text = '';
  try {
    text = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    /* none: the fallback resolvers below */
  }
  if (network === 'host') return text;
  const lines = text.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1\b)/.test(l));
  if (!lines.some((l) => /^\s*nameserver\s/.test(l))) lines.push('nameserver 8.8.8.8', 'nameserver 8.8.4.4');
  return lines.join('\n').trimEnd() + '\n';
}
