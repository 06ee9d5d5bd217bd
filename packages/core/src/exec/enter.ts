/**
 * One more process in a running container (`vbuild exec`): `vlab-init enter` (native/vlab-init-enter.c)
 * joins the namespaces of the container's pid 1 with setns, its root and its cgroup, and drops to
 * the same privileges as pid 1 had (Docker's capability set, no_new_privs, the seccomp filter).
 * The user is resolved in the container's root as it is now (in-root: a symlinked /etc/passwd of
 * the container never reads a host file).
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { initHelper } from './builtin.ts';
import { capNumbers, encode, seccompSection } from './native-spec.ts';
import { DEFAULT_CAPS, NOFILE_LIMIT } from './defaults.ts';
import { completeEnv } from './prepare.ts';
import { resolveUser } from './user.ts';
import { exitCodeOf, spawnStreaming, waitOrAbort, type Exit } from './process.ts';
import type { RunOptions } from './types.ts';
import { ownedTempDir } from '../fsutil/owned-temp.ts';

export interface EnterSpec {
  /** Host pid of the container's pid 1 (its namespaces and root are joined). */
  pid: number;
  /** The container cgroup's cgroup.procs files (`Cgroup.procsFiles()`); the command joins them. */
  cgroupProcs: string[];
  argv: string[];
  /** 'K=V' entries (the container's, then exec -e); PATH and HOME completed as for a run. */
  env: string[];
  cwd?: string;
  /** name, uid, name:group or uid:gid, resolved in the container's /etc/passwd and /etc/group. */
  user?: string;
  /** A pty of the container's devpts; rows/cols when the caller's stdin is not a terminal. */
  tty?: { rows?: number; cols?: number };
  nofile?: number;
}

export interface EnterOptions extends RunOptions {
  /** 'inherit': the command uses this process's stdout/stderr (the CLI's terminal); else output via onOutput. */
  stdio?: 'inherit' | 'pipe';
  /** With stdio 'inherit': stdin too (exec -i); else the command's stdin is /dev/null. */
  interactive?: boolean;
}

export interface EnterResult {
  exitCode: number;
  signal?: string;
}

/** Whether `pid` is alive and has namespaces we can join (a zombie has none). */
export async function canEnter(pid: number): Promise<boolean> {
  return fs.readlink(`/proc/${pid}/ns/mnt`).then(
    () => true,
    () => false,
  );
}

/**
 * Runs argv in the container of `spec.pid`. Resolves with its exit code (126/127 as docker exec
 * for a command that cannot be executed / is not found; 125 when entering failed). Rejects with
 * E_CONTAINER_NOT_RUNNING when the process is gone, E_EXEC_UNAVAILABLE without vlab-init,
 * E_USER_NOT_FOUND for an unknown user, E_RUN_ABORTED when `opts.signal` fired.
 */
export async function enterContainer(spec: EnterSpec, opts: EnterOptions = {}): Promise<EnterResult> {
  const helper = initHelper();
  if (!helper || process.getuid?.() !== 0)
    throw new VlabError('E_EXEC_UNAVAILABLE', 'exec needs root and vlab-init (bash scripts/build-native.sh)');
  if (!spec.argv.length) throw new VlabError('E_EXEC_SETUP', 'nothing to run: no command given');
  const cwd = spec.cwd || '/';
  if (!cwd.startsWith('/')) throw new VlabError('E_EXEC_SETUP', `working directory ${cwd} is not absolute`);
  if (!(await canEnter(spec.pid)))
    throw new VlabError('E_CONTAINER_NOT_RUNNING', `the container's process ${spec.pid} is not running`);
  const user = await resolveUser(`/proc/${spec.pid}/root`, spec.user ?? '');
  const t: string[][] = [['target', String(spec.pid)]];
  for (const f of spec.cgroupProcs) t.push(['cgroup', f]);
  if (spec.tty) t.push(['tty', String(spec.tty.rows ?? 24), String(spec.tty.cols ?? 80)]);
  t.push(['nofile', String(spec.nofile ?? NOFILE_LIMIT)], ['cwd', cwd], ['uid', String(user.uid)]);
  t.push(['gid', String(user.gid)], ['groups', user.additionalGids.join(',')]);
  t.push(['caps', capNumbers(DEFAULT_CAPS).join(',')], ...seccompSection());
  for (const e of completeEnv(spec.env, user)) t.push(['env', e]);
  for (const a of spec.argv) t.push(['arg', a]);
  const dir = await ownedTempDir(os.tmpdir(), 'vlab-enter-');
  try {
    const file = path.join(dir, 'spec');
    await fs.writeFile(file, encode(t), { mode: 0o600 });
    const child =
      opts.stdio === 'inherit'
        ? spawnInherit(helper, ['enter', file], !!opts.interactive)
        : spawnStreaming(helper, ['enter', file], opts);
    const exit = await waitOrAbort(child.exited, opts.signal, () => child.kill('SIGKILL'));
    return { exitCode: exitCodeOf(exit), ...(exit.signal ? { signal: exit.signal } : {}) };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function spawnInherit(file: string, args: string[], stdin: boolean) {
  const child = spawn(file, args, {
    stdio: [stdin ? 'inherit' : 'ignore', 'inherit', 'inherit'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', (e) => reject(new VlabError('E_EXEC_SETUP', `cannot start ${file}: ${e.message}`)));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { exited, kill: (sig: NodeJS.Signals) => void child.kill(sig) };
}
