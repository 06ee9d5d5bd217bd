/** Run a command to its end and collect its exit code and output (the rootless tests' switch-user runs). */
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCommand(cmd: string, args: string[], cwd?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The uid and gid the rootless tests run as. */
export const NOBODY = 65534;

/** `setpriv` as nobody (no groups, no inheritable caps) running a tsx script under this node, HOME=home. */
export function asNobodyScript(home: string, script: string, args: string[]): string[] {
  return [
    'setpriv',
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    '--clear-groups',
    '--inh-caps=-all',
    'env',
    `HOME=${home}`,
    process.execPath,
    '--import',
    'tsx',
    script,
    ...args,
  ];
}
