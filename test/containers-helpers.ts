/** Shared by the container suites: the CLI as a child process, and state peeks. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { repo } from './helpers.ts';

export const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI on store `root`; never rejects. `onSpawn` gets the child (to kill it); `env` is added to ours. */
export function cli(
  root: string,
  args: string[],
  onSpawn?: (child: ReturnType<typeof spawn>) => void,
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn('node', [vbuild, ...args], {
      env: { ...process.env, ...env, VLAB_ROOT: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    onSpawn?.(child);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : -1), stdout, stderr }));
  });
}

export async function stateOf(root: string, id: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fsp.readFile(path.join(root, 'containers', id, 'state.json'), 'utf8')) as Record<
    string,
    unknown
  >;
}

/** `pid`'s state letter in /proc/PID/stat (R, S, D, T stopped, t traced, Z zombie, …); undefined when gone. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3); // the name may hold ')'
  } catch {
    return undefined;
  }
}

/** A pid that is gone or a zombie (a killed container's pid 1 waits for the host's init to reap it). */
export function deadOrZombie(pid: number): boolean {
  const s = procState(pid);
  return s === undefined || s === 'Z' || s === 'X';
}
