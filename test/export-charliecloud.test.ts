/**
 * Charliecloud (Debian's charliecloud 0.31): `ch-image import` takes vbuild's rootfs tar (from
 * `build --output type=rootfs-tar`) and its rootfs dir (`save --format rootfs-dir`), and `ch-run`
 * runs each, printing what the Dockerfile wrote. ch-image runs with /usr/bin/python3 (its lark
 * module is Debian's, not another python's on PATH).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec, makeContext } from './helpers.ts';
import { exportSuite, missingTool, runCli, skipReason } from './export-helpers.ts';

const PY = '/usr/bin/python3';
const CH_IMAGE = '/usr/bin/ch-image';
const why =
  fs.existsSync(CH_IMAGE) && fs.existsSync(PY)
    ? missingTool('ch-run')
    : `${CH_IMAGE} is not installed (apt-get install charliecloud-builders charliecloud-runtime)`;
const skip = skipReason(why, 'Charliecloud export');

const suite = exportSuite(skip, 'vlab-ch-');

const DOCKERFILE = 'FROM busybox\nRUN echo "written by the Dockerfile" > /file\nCMD ["cat", "/file"]\n';

// Charliecloud wants $USER (unset under some test runners).
const env = { ...process.env, USER: process.env.USER ?? 'root' };
const chImage = (args: string[]) =>
  exec(PY, [CH_IMAGE, '-s', path.join(suite.out, 'storage'), ...args], { cwd: suite.out, env });
const chRun = (img: string) => exec('ch-run', [img, '--', 'cat', '/file'], { env });

describe.skipIf(skip)('Charliecloud', () => {
  it('ch-image import of the rootfs tar and of the rootfs dir; ch-run prints the file', async () => {
    const ctx = await makeContext({ Dockerfile: DOCKERFILE });
    const tar = path.join(suite.out, 'img.tar');
    const b = await runCli(suite.root, ['build', '-q', '-t', 'ch:1', '--output', `type=rootfs-tar,dest=${tar}`, ctx]);
    expect(b.code, b.stderr).toBe(0);
    const dir = path.join(suite.out, 'img-dir');
    const s = await runCli(suite.root, ['save', '--format', 'rootfs-dir', '-o', dir, 'ch:1']);
    expect(s.code, s.stderr).toBe(0);
    for (const [src, name] of [
      [tar, 'fromtar'],
      [dir, 'fromdir'],
    ] as const) {
      await chImage(['import', src, name]);
      expect((await chRun(path.join(suite.out, 'storage', 'img', name))).stdout).toBe('written by the Dockerfile\n');
    }
    // ch-run takes the exported dir as it is, too
    expect((await chRun(dir)).stdout).toBe('written by the Dockerfile\n');
    await exec('rm', ['-rf', ctx]);
  });
});
