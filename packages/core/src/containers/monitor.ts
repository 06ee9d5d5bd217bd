/**
 * Starting a container's monitor (native/vlab-mon.c, conmon's role) and talking to it over fd 3:
 * it starts nothing before our "go" (said once the record says running with its pid), then says
 * "started LAUNCHER PID", later "exited CODE SIGNAL"; we answer "done" when we cleaned up
 * ourselves (foreground), or close our end (detached) so that it runs the exit command.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { VlabError } from '@vlab/errors';
import { nativeHelper } from '@vlab/overlay';
import { cgroupProcsFiles, detectCgroupLayout } from '../exec/cgroup-layout.ts';

export function monitorHelper(): string {
  const bin = nativeHelper('vlab-mon', [
    new URL('../../native/bin/vlab-mon', import.meta.url),
    new URL('../native/bin/vlab-mon', import.meta.url),
  ]);
  if (!bin)
    throw new VlabError(
      'E_EXEC_UNAVAILABLE',
      'containers need their monitor, vlab-mon: run bash scripts/build-native.sh (needs cc)',
    );
  return bin;
}

/** The vbuild CLI entry (bin/vbuild.js), from the sources or the bundle: the exit command runs it. */
export function vbuildBin(): string {
  for (const u of [new URL('../../bin/vbuild.js', import.meta.url), new URL('../bin/vbuild.js', import.meta.url)]) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return p;
  }
  throw new VlabError('E_INTERNAL', 'cannot find bin/vbuild.js for the container exit command');
}

export interface MonitorArgs {
  /** The container's state dir. */
  dir: string;
  logMaxSize: number;
  /** The launcher (vlab-init SPEC). */
  argv: string[];
  /** Run after the end unless we answered "done" (cleanup, --rm). */
  exitCommand: string[];
  attach?: { onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void; stdinFd?: number };
  /** cgroup.procs files the monitor joins before it starts anything (its caller's: callerCgroupFiles). */
  cgroups?: string[];
  /** Where it writes pid 1 once found (for a launcher that writes no pid file itself). */
  pidFile?: string;
}

export interface Monitor {
  pid: number;
  /** The launcher's pid and the container's (its pid 1; 0 when it failed before starting). */
  started: Promise<{ launcherPid: number; pid: number }>;
  /** Attached only: the end, as the monitor saw it. */
  exited: Promise<{ exitCode: number; signal: number }>;
  /** Lets it start the container (the record says `running` with the monitor's pid by now). */
  go(): void;
  /** Attached: we cleaned up, the monitor may exit without its exit command. */
  done(): void;
  /** Detached: let it go (it runs the exit command at the end). */
  detach(): void;
}

/**
 * Where a monitor goes: a direct CLI's child inherits its caller's cgroups by itself; under the
 * warm server it would inherit the server's (whoever started it: maybe another login's or CI
 * job's unit), so it joins its client's first. The server puts the client's /proc/PID/cgroup in
 * the command's environment as VLAB_CALLER_CGROUPS (cli/server.ts). Undefined: stay put.
 */
export async function callerCgroupFiles(): Promise<string[] | undefined> {
  const text = process.env.VLAB_CALLER_CGROUPS;
  return text ? cgroupProcsFiles(text, await detectCgroupLayout()) : undefined;
}

/** Ours, without the caller's cgroups (said to vlab-mon as the files to join, when any), and its pid file. */
function monitorEnv(cgroups: string[] | undefined, pidFile: string | undefined): NodeJS.ProcessEnv {
  const { VLAB_CALLER_CGROUPS: _, VLAB_MON_CGROUPS: __, VLAB_MON_PIDFILE: ___, ...env } = process.env;
  return {
    ...env,
    ...(cgroups?.length ? { VLAB_MON_CGROUPS: cgroups.join('\n') } : {}),
    ...(pidFile ? { VLAB_MON_PIDFILE: pidFile } : {}),
  };
}

export function startMonitor(a: MonitorArgs): Monitor {
  const attach = a.attach;
  const child = spawn(
    monitorHelper(),
    [a.dir, String(a.logMaxSize), attach ? '1' : '0', ...a.exitCommand, '--', ...a.argv],
    {
      detached: true, // its own session: the CLI's terminal and process group signals do not reach it
      env: monitorEnv(a.cgroups, a.pidFile),
      stdio: [attach?.stdinFd ?? 'ignore', attach ? 'pipe' : 'ignore', attach ? 'pipe' : 'ignore', 'pipe'],
    },
  );
  const ended: Promise<unknown>[] = [];
  if (attach) {
    child.stdout!.on('data', (c: Buffer) => attach.onOutput('stdout', c));
    child.stderr!.on('data', (c: Buffer) => attach.onOutput('stderr', c));
    for (const s of [child.stdout!, child.stderr!]) ended.push(new Promise((r) => s.once('close', r)));
  }
  const sync = child.stdio[3] as Socket;
  let buf = '';
  let startedResolve!: (v: { launcherPid: number; pid: number }) => void;
  let exitedResolve!: (v: { exitCode: number; signal: number }) => void;
  let fail!: (e: Error) => void;
  const started = new Promise<{ launcherPid: number; pid: number }>((res, rej) => {
    startedResolve = res;
    fail = rej;
  });
  let exitedReject!: (e: Error) => void;
  const exited = new Promise<{ exitCode: number; signal: number }>((res, rej) => {
    exitedResolve = res;
    exitedReject = rej;
  });
  exited.catch(() => undefined);
  let isStarted = false;
  sync.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      if (line[0] === 'started') {
        isStarted = true;
        startedResolve({ launcherPid: Number(line[1]), pid: Number(line[2]) });
      } else if (line[0] === 'exited') {
        const end = { exitCode: Number(line[1]), signal: Number(line[2]) };
        void Promise.all(ended).then(() => exitedResolve(end));
      } else if (line[0] === 'warn') process.stderr.write(`WARNING: ${line.slice(1).join(' ')}\n`);
      else if (line[0] === 'error')
        fail(new VlabError('E_EXEC_SETUP', `the container monitor failed: ${line.slice(1).join(' ')}`));
    }
  });
  sync.on('error', () => undefined);
  const gone = (why: string) => {
    const e = new VlabError('E_EXEC_SETUP', `the container monitor ${why}`);
    if (!isStarted) fail(e);
    exitedReject(e);
  };
  child.on('error', (e) => gone(`could not start: ${e.message}`));
  child.on('exit', (code, sig) => gone(`exited (${sig ?? code}) before reporting`));
  return {
    pid: child.pid ?? 0,
    started,
    exited,
    go() {
      sync.write('go\n');
    },
    done() {
      sync.end('done\n');
      child.unref();
    },
    detach() {
      sync.destroy();
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
    },
  };
}
