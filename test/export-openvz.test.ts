/**
 * OpenVZ: `--format openvz -o DIR` writes DIR/DIST-VERSION-ARCH.tar.gz (DIST and VERSION from the
 * image's /etc/os-release), a gzipped rootfs tar as vzctl's template cache holds them. Checked with
 * a tar listing, and by unpacking it as vzctl does and running a command in the tree (chroot, what
 * a container's init is started in).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec, makeContext } from './helpers.ts';
import { exportSuite, missingTool, runCli, skipReason } from './export-helpers.ts';

const skip = skipReason(
  process.getuid?.() !== 0 ? 'chroot into the unpacked template needs root' : missingTool('chroot', 'tar'),
  'OpenVZ export',
);

const suite = exportSuite(skip, 'vlab-ovz-', {
  tag: 'ovz:1',
  context: () =>
    makeContext({
      Dockerfile: [
        'FROM busybox',
        'RUN printf \'ID=vlabos\\nVERSION_ID="1.2"\\n\' > /etc/os-release && echo "written by the Dockerfile" > /file',
        '',
      ].join('\n'),
    }),
});

describe.skipIf(skip)('OpenVZ', () => {
  it('template cache DIST-VERSION-ARCH.tar.gz: listed by tar, unpacked and run', async () => {
    const cache = path.join(suite.out, 'template-cache');
    const s = await runCli(suite.root, ['save', '--format', 'openvz', '-o', cache, 'ovz:1']);
    expect(s.code, s.stderr).toBe(0);
    const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string] ?? process.arch;
    expect(await fsp.readdir(cache)).toEqual([`vlabos-1.2-${arch}.tar.gz`]);
    const tgz = path.join(cache, `vlabos-1.2-${arch}.tar.gz`);
    const list = (await exec('tar', ['-tzvf', tgz], { maxBuffer: 16 << 20 })).stdout;
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +26 .* file$/m);
    expect(list).toMatch(/^-rwxr-xr-x 0\/0 .* bin\/busybox$/m);
    const priv = path.join(suite.out, 'private', '101'); // vzctl's private area of container 101
    await fsp.mkdir(priv, { recursive: true });
    await exec('tar', ['--numeric-owner', '-xzpf', tgz, '-C', priv]);
    expect((await exec('chroot', [priv, '/bin/cat', '/file'])).stdout).toBe('written by the Dockerfile\n');
  });
});
