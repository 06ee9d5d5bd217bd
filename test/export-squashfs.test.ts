/**
 * Singularity and Shifter run squashfs images of a rootfs: `--format squashfs` (mksquashfs) is
 * listed with `unsquashfs`, mounted (`mount -t squashfs -o loop,ro`) and run with ch-run; the same
 * image saved twice under SOURCE_DATE_EPOCH gives the same sha256.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec, makeContext } from './helpers.ts';
import { exportSuite, missingTool, runCli, skipReason } from './export-helpers.ts';

const skip = skipReason(missingTool('mksquashfs', 'unsquashfs'), 'squashfs export');

/** Loop devices and ch-run are needed only for the run inside the mounted image. */
function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a squashfs needs root';
  try {
    execFileSync('losetup', ['-f'], { stdio: 'pipe' });
  } catch {
    return 'no free loop device (losetup -f failed)';
  }
  return missingTool('ch-run');
}
const skipMount = skip || skipReason(cannotMount(), 'squashfs mount and run');

const suite = exportSuite(skip, 'vlab-sqfs-', {
  tag: 'sq:1',
  context: () =>
    makeContext({
      Dockerfile: [
        'FROM busybox',
        'RUN echo "written by the Dockerfile" > /file && touch /suid && chown 12:34 /suid && chmod 4750 /suid',
        'CMD ["cat", "/file"]',
        '',
      ].join('\n'),
    }),
});

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

describe.skipIf(skip)('squashfs', () => {
  it('deterministic: saved twice, same sha256; unsquashfs lists the files with their owners and modes', async () => {
    const a = path.join(suite.out, 'a.sqfs');
    const b = path.join(suite.out, 'b.sqfs');
    expect((await runCli(suite.root, ['save', '--format', 'squashfs', '-o', a, 'sq:1'], EPOCH)).code).toBe(0);
    const viaBuild = await runCli(suite.root, ['build', '-q', '--output', `type=squashfs,dest=${b}`, suite.ctx], EPOCH);
    expect(viaBuild.code, viaBuild.stderr).toBe(0);
    expect(sha(a)).toBe(sha(b));
    const list = (await exec('unsquashfs', ['-lln', a])).stdout;
    expect(list).toMatch(/^-rwsr-x--- 12\/34 +0 2023-11-14 22:13 squashfs-root\/suid$/m);
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +26 .* squashfs-root\/file$/m);
    expect(list).toMatch(/^-rwxr-xr-x 0\/0 .* squashfs-root\/bin\/busybox$/m);
    expect((await exec('unsquashfs', ['-s', a])).stdout).toMatch(
      /Creation or last append time Tue Nov 14 22:13:20 2023/,
    );
  });

  it.skipIf(skipMount)('mounted read-only, ch-run runs a command in it', async () => {
    const img = path.join(suite.out, 'run.sqfs');
    expect((await runCli(suite.root, ['save', '--format', 'squashfs', '-o', img, 'sq:1'])).code).toBe(0);
    const mnt = path.join(suite.out, 'mnt');
    await fsp.mkdir(mnt);
    await exec('mount', ['-t', 'squashfs', '-o', 'loop,ro', img, mnt]);
    try {
      const r = await exec('ch-run', [mnt, '--', 'cat', '/file'], {
        env: { ...process.env, USER: process.env.USER ?? 'root' },
      });
      expect(r.stdout).toBe('written by the Dockerfile\n');
    } finally {
      await exec('umount', [mnt]);
    }
  });
});
