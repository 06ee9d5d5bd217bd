/**
 * The isolation tests' probe binary (probe.c): compiled once per source version with the
 * machine's cc as a static binary, so it runs in any test rootfs. Tests that need it skip with a
 * logged reason when there is no compiler.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const SOURCE = new URL('./probe.c', import.meta.url);
let built: Promise<string | undefined> | undefined;

/** Path of the compiled probe, or undefined (with the reason logged) when it cannot be built. */
export function buildProbe(): Promise<string | undefined> {
  return (built ??= (async () => {
    const src = readFileSync(SOURCE);
    const out = path.join(os.tmpdir(), `vlab-probe-${createHash('sha256').update(src).digest('hex').slice(0, 16)}`);
    if (
      await fs.access(out).then(
        () => true,
        () => false,
      )
    )
      return out;
    const tmp = `${out}.tmp.${process.pid}`;
    try {
      await promisify(execFile)(process.env.CC ?? 'cc', ['-static', '-O1', '-o', tmp, SOURCE.pathname]);
      await fs.rename(tmp, out);
      return out;
    } catch (e) {
      console.warn(
        `probe: cannot build the static probe (${(e as Error).message.split('\n')[0]}); tests that need it skip`,
      );
      await fs.rm(tmp, { force: true });
      return undefined;
    }
  })());
}

/** Copies the probe to `<rootfs>/bin/probe`; returns false when there is no probe. */
export async function installProbe(rootfs: string): Promise<boolean> {
  const p = await buildProbe();
  if (!p) return false;
  await fs.mkdir(path.join(rootfs, 'bin'), { recursive: true });
  await fs.copyFile(p, path.join(rootfs, 'bin/probe'));
  await fs.chmod(path.join(rootfs, 'bin/probe'), 0o755);
  return true;
}
