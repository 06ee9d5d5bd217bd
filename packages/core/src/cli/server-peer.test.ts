/**
 * The warm server reads its client's cgroups only while it is sure the pid is its client's: a
 * client that exited, whose pid went to another process before the read, gives none.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadFdPass } from './server-native.ts';

const why =
  process.getuid?.() !== 0
    ? 'needs root (a pid namespace of its own)'
    : !loadFdPass()
      ? 'vlab-fdpass.node is not built (scripts/build-native.sh)'
      : undefined;
if (why) console.warn(`warm server peer tests skipped: ${why}`);

describe.skipIf(why)("the warm server's client cgroups", () => {
  it('a client that exited, its pid reused before the read: no cgroups; a live one: its own', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vlab-peer-'));
    try {
      const script = fileURLToPath(new URL('./testing/peer-reuse-script.ts', import.meta.url));
      const out = execFileSync(
        'unshare',
        ['-p', '-f', '--mount-proc', process.execPath, '--import', 'tsx', script, dir],
        { cwd: path.dirname(script), encoding: 'utf8', timeout: 30_000 },
      );
      const r = JSON.parse(out) as { reused: boolean; read?: string | null; alive: string | null };
      expect(r.reused, "the pid namespace gave the client's pid to the next process").toBe(true);
      expect(r.read).toBeNull();
      expect(r.alive).toBe(fs.readFileSync('/proc/self/cgroup', 'utf8'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
