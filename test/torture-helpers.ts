import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repo } from './helpers.ts';

export const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running `vbuild …` on store `root`: its process and how it ended (never rejects). */
export function startCli(root: string, args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<CliResult>; stderr: () => string } {
  const child = spawn(process.execPath, [vbuild, ...args, '--root', root], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
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
