/**
 * Spawning the host-side process of a container (unshare or the OCI runtime) with output
 * streamed as events, and the kill loop used on abort.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { VlabError } from '@vlab/errors';
import type { RunOptions, RunResult } from './types.ts';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  pid: number | undefined;
  /** Resolves once the process has exited and its stdout/stderr are closed. */
  exited: Promise<Exit>;
  kill(sig?: NodeJS.Signals): void;
}

export function spawnStreaming(file: string, args: string[], opts: RunOptions & { env?: NodeJS.ProcessEnv }): Spawned {
  const child = spawn(file, args, {
    env: opts.env ?? { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: false,
  });
  child.stdout!.on('data', (c: Buffer) => opts.onOutput?.('stdout', c));
  child.stderr!.on('data', (c: Buffer) => opts.onOutput?.('stderr', c));
  if (opts.stdin) {
    child.stdin!.on('error', () => {}); // the container may exit without reading
    child.stdin!.end(opts.stdin);
  }
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', (e) =>
      reject(new VlabError('E_EXEC_SETUP', `cannot start ${file}: ${e.message}`, { cause: e })),
    );
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return {
    pid: child.pid,
    exited,
    kill: (sig = 'SIGKILL') => {
      try {
        child.kill(sig);
      } catch {
        /* gone */
      }
    },
  };
}

/** Shell convention: 128 + signal number when killed by a signal. */
export function exitCodeOf(exit: Exit): number {
  if (exit.code !== null) return exit.code;
  const n = exit.signal ? (constants.signals as Record<string, number>)[exit.signal] : undefined;
  return 128 + (n ?? 9);
}

/** Calls `kill` now and every `everyMs` until `done` settles (processes may still be forking). */
export function killUntil(done: Promise<unknown>, kill: () => Promise<void> | void, everyMs = 25): Promise<void> {
  let finished = false;
  const fin = done.then(
    () => {
      finished = true;
    },
    () => {
      finished = true;
    },
  );
  const loop = async () => {
    while (!finished) {
      await Promise.resolve(kill()).catch(() => {});
      await Promise.race([fin, new Promise((r) => setTimeout(r, everyMs))]);
    }
  };
  return loop();
}

export function abortedError(reason: unknown): VlabError {
  return new VlabError('E_RUN_ABORTED', 'the build container was killed: the run was aborted', { cause: reason });
}

export function wallResult(
  exit: Exit,
  startedAt: number,
  stats: { oomKills: number; maxMemoryBytes?: number; cpuUserMicros?: number; cpuSystemMicros?: number },
): RunResult {
  return {
    exitCode: exitCodeOf(exit),
    ...(exit.signal ? { signal: exit.signal } : {}),
    oomKilled: stats.oomKills > 0,
    usage: {
      cpuUserMicros: stats.cpuUserMicros,
      cpuSystemMicros: stats.cpuSystemMicros,
      maxMemoryBytes: stats.maxMemoryBytes,
      wallMs: Date.now() - startedAt,
    },
  };
}

/**
 * Wait for a container's process; when `signal` fires, call `kill` (which must make `exited`
 * settle) and reject with E_RUN_ABORTED once it has. Shared by both executors.
 */
export async function waitOrAbort(
  exited: Promise<Exit>,
  signal: AbortSignal | undefined,
  kill: () => void,
): Promise<Exit> {
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    kill();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort(); // fired while the container was being prepared
  let exit: Exit;
  try {
    exit = await exited;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (aborted) throw abortedError(signal?.reason);
  return exit;
}
