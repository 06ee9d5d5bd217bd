/**
 * Is a container's process tree still there? state.json says `running` from the start on; what
 * ended it is found here, from facts that outlive every process:
 * - exit.json (written by the monitor when the tree ended): exited with that code;
 * - the monitor gone (SIGKILLed, its pid reused: the start time differs) without an exit.json:
 *   the container died with it (its launcher has PDEATHSIG), exit code unknown (-1);
 * - another boot id: the machine rebooted since, nothing of it runs; exit code unknown.
 * A pid is "alive" only when /proc/PID/stat shows the same start time and no zombie.
 */
import fsp from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { ContainerState } from './types.ts';

let boot: string | undefined;

export function bootId(): string {
  return (boot ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
}

/** Start time of `pid` (clock ticks after boot), undefined if it is gone or a zombie. */
export function procStart(pid: number): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parens: fields start after the last ')'
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return undefined;
    return Number(f[19]);
  } catch {
    return undefined;
  }
}

export function sameProcess(pid: number | undefined, start: number | undefined): boolean {
  return !!pid && start !== undefined && procStart(pid) === start;
}

export interface ExitRecord {
  exitCode: number;
  signal: number | null;
  finishedAt: string;
  /** Set when it never ran (its caller was gone before the monitor's go). */
  error?: string;
}

export async function readExit(file: string): Promise<ExitRecord | undefined> {
  const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as ExitRecord;
  } catch {
    return undefined; // never half-written (renamed into place); unreadable counts as absent
  }
}

/**
 * pid 1 of a running record that has none (its starter was killed before it recorded it), from
 * its pid file; undefined while there is none yet. Asked only while the monitor lives (pid 1
 * then has not been reaped: its pid names no other process).
 */
export async function initPid(state: ContainerState): Promise<{ pid: number; pidStart: number } | undefined> {
  if (state.status !== 'running' || state.pid || !state.pidFile || state.monitorStart === undefined) return undefined;
  const pid = Number(await fsp.readFile(state.pidFile, 'utf8').catch(() => ''));
  const pidStart = Number.isInteger(pid) && pid > 0 ? procStart(pid) : undefined;
  // pid 1 is reaped by its own parent (vlab-init, runc), maybe before exit.json: a pid reused
  // since would be another process, never one started before the monitor or outside the container
  if (pidStart === undefined || pidStart < state.monitorStart) return undefined;
  if (!inCgroup(pid, state.cgroup) && !descendsFrom(pid, state.monitorPid)) return undefined;
  return { pid, pidStart };
}

/** Whether `pid` is in cgroup `rel` (or below it) on some hierarchy. */
function inCgroup(pid: number, rel: string | undefined): boolean {
  if (!rel) return false;
  const want = `/${rel}`;
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .some((l) => {
        const p = l.split(':').slice(2).join(':');
        return p === want || p.startsWith(`${want}/`);
      });
  } catch {
    return false;
  }
}

/** Whether `ancestor` is `pid`'s parent, grandparent, … (a few levels: monitor, launcher, pid 1). */
function descendsFrom(pid: number, ancestor: number | undefined): boolean {
  if (!ancestor) return false;
  for (let p = pid, i = 0; p > 1 && i < 16; i++) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false;
    }
    if (p === ancestor) return true;
  }
  return false;
}

/**
 * The state as it really is: `running` turned into `exited` when the tree has ended. Returns
 * undefined when nothing changed. A `created` record with an exit.json, or an `exited` one not
 * cleaned with a newer exit.json, is a start whose caller died before it wrote the running record
 * (exit.json is removed before every start): ended all the same, by that exit.
 */
export async function observedState(state: ContainerState, exitFile: string): Promise<ContainerState | undefined> {
  const restarted = state.status === 'exited' && state.cleaned === false;
  if (state.status !== 'running' && state.status !== 'created' && !restarted) return undefined;
  const exit = await readExit(exitFile);
  if (restarted) return exit && exit.finishedAt !== state.finishedAt ? ended(state, exit) : undefined;
  if (exit) return ended(state, exit);
  if (state.status === 'created') return undefined;
  const rebooted = state.bootId !== bootId();
  if (!rebooted && sameProcess(state.monitorPid, state.monitorStart)) return undefined;
  // the monitor may have written exit.json between our read and its death
  const late = await readExit(exitFile);
  if (late) return observedState(state, exitFile);
  return {
    ...state,
    status: 'exited',
    pid: 0,
    exitCode: -1,
    finishedAt: new Date().toISOString(),
    error: rebooted
      ? 'the machine was rebooted while it ran: exit code unknown'
      : 'its monitor died (killed?) and the container with it: exit code unknown',
  };
}

function ended(state: ContainerState, exit: ExitRecord): ContainerState {
  return {
    ...state,
    status: 'exited',
    pid: 0,
    exitCode: exit.exitCode,
    finishedAt: exit.finishedAt,
    error: exit.error,
  };
}
