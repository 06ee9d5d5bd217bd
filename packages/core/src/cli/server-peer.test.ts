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

/** Runs as on a kernel before 6.5 (SO_PEERPIDFD fails ENOPROTOOPT): native/testing/vlab-no-peerpidfd.c. */
const noPeerPidfd = fileURLToPath(new URL('../../native/bin/vlab-no-peerpidfd', import.meta.url));
const whyNoFallback =
  why ?? (fs.existsSync(noPeerPidfd) ? undefined : 'vlab-no-peerpidfd is not built (scripts/build-native.sh)');
if (whyNoFallback && !why) console.warn(`warm server peer fallback test skipped: ${whyNoFallback}`);

/** peer-reuse-script.ts in a pid namespace of its own, its command line after `wrap`. */
function reuseScript(wrap: string[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vlab-peer-'));
  try {
    const script = fileURLToPath(new URL('./testing/peer-reuse-script.ts', import.meta.url));
    const out = execFileSync(
      'unshare',
      ['-p', '-f', '--mount-proc', ...wrap, process.execPath, '--import', 'tsx', script, dir],
      { cwd: path.dirname(script), encoding: 'utf8', timeout: 30_000 },
    );
    return JSON.parse(out) as { reused: boolean; read?: string | null; alive: string | null; peerPidfd: number };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(why)("the warm server's client cgroups", () => {
  it('a client that exited, its pid reused before the read: no cgroups; a live one: its own', () => {
    const r = reuseScript([]);
    expect(r.reused, "the pid namespace gave the client's pid to the next process").toBe(true);
    expect(r.read).toBeNull();
    expect(r.alive).toBe(fs.readFileSync('/proc/self/cgroup', 'utf8'));
  });

  it.skipIf(whyNoFallback)(
    'the same before Linux 6.5 (pidfd_open of the peer pid, kept while its socket end is open)',
    () => {
      const r = reuseScript([noPeerPidfd]);
      expect(r.peerPidfd, 'SO_PEERPIDFD failed as before 6.5: the fallback ran').toBe(-92); // -ENOPROTOOPT
      expect(r.reused, "the pid namespace gave the client's pid to the next process").toBe(true);
      expect(r.read).toBeNull();
      expect(r.alive).toBe(fs.readFileSync('/proc/self/cgroup', 'utf8'));
    },
  );
});
