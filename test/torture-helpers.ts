import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { repo } from './helpers.ts';

export const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

/**
 * The CLI bundled by packages/core/scripts/bundle.mjs into a private file beside where the
 * real bundle goes: a test that starts the CLI 50 times then pays ~0.4 s a start, not tsx's ~1.2 s.
 * Returns its path and a cleanup. Falls back to vbuild.js when the bundle cannot be made.
 */
const execFileAsync = promisify(execFile);
export async function bundledCli(): Promise<{ cli: string; remove: () => Promise<void> }> {
  const core = path.join(repo, 'packages/core');
  const outfile = path.join(core, 'dist', `torture-${process.pid}.mjs`);
  try {
    // the one bundle recipe (scripts/bundle.mjs), into a private file
    await execFileAsync('node', [path.join(core, 'scripts/bundle.mjs'), outfile]);
  } catch {
    return { cli: vbuild, remove: async () => undefined };
  }
  return { cli: outfile, remove: () => fsp.rm(outfile, { force: true }) };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running `vbuild …` on store `root`: its process and how it ended (never rejects). */
export function startCli(
  root: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cli = vbuild,
): { child: ChildProcess; done: Promise<CliResult>; stderr: () => string } {
  const child = spawn(process.execPath, [cli, ...args, '--root', root], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done, stderr: () => stderr };
}

export function runCli(root: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return startCli(root, args, env).done;
}

/** The `[E_…]` code of a CLI error line, if any. */
export function errorCode(stderr: string): string | undefined {
  return /\[(E_[A-Z_]+)\]\s*$/m.exec(stderr)?.[1];
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
