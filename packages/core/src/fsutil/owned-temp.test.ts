/**
 * A temp dir whose process was SIGKILLed (no `finally` ran) is removed by the next one made under
 * the same parent; a live owner's, an old-style name and another prefix's are kept.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ownedTempDir } from './owned-temp.ts';

const here = fileURLToPath(new URL('./owned-temp.ts', import.meta.url));
let parent: string;
beforeEach(async () => {
  parent = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-owned-'));
});
afterEach(() => fs.rm(parent, { recursive: true, force: true }));

/** A node process that makes an owned dir under `parent`, prints it and waits to be killed. */
async function ownerProcess(): Promise<{ dir: string; kill: () => Promise<void> }> {
  const script = `const { ownedTempDir } = await import(${JSON.stringify(here)});
process.stdout.write(await ownedTempDir(${JSON.stringify(parent)}, 'vlab-exec-') + '\\n');
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const dir = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.endsWith('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`owner exited ${code} before printing its dir`)));
  });
  const kill = async () => {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  };
  return { dir, kill };
}

it('the next owned dir removes a SIGKILLed owner’s, and keeps a live one’s and others', async () => {
  const dead = await ownerProcess();
  const live = await ownerProcess();
  try {
    expect(path.basename(dead.dir)).toMatch(/^vlab-exec-\d+-[0-9A-Za-z]{6}$/);
    await fs.writeFile(path.join(dead.dir, 'spec'), 'x');
    await dead.kill();
    const old = path.join(parent, 'vlab-exec-123456'); // no owner pid: not ours to judge
    const other = path.join(parent, `vlab-enter-${dead.dir.split('-').at(-2)}-abcdef`); // another prefix
    await fs.mkdir(old);
    await fs.mkdir(other);
    const mine = await ownedTempDir(parent, 'vlab-exec-');
    expect(path.basename(mine)).toMatch(new RegExp(`^vlab-exec-${process.pid}-`));
    expect((await fs.readdir(parent)).sort()).toEqual(
      [path.basename(mine), path.basename(live.dir), 'vlab-exec-123456', path.basename(other)].sort(),
    );
  } finally {
    await live.kill();
  }
});
