/**
 * LXC (Debian's lxc 5.0): `--format lxc` writes DEST/rootfs and DEST/config; `lxc-execute -n NAME
 * -f DEST/config -- /bin/cat /file` prints what the Dockerfile wrote, the image's CMD runs when no
 * command is given, and the container has no network (loopback only).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec, makeContext } from './helpers.ts';
import { exportSuite, missingTool, runCli, skipReason } from './export-helpers.ts';

const skip = skipReason(
  process.getuid?.() !== 0 ? 'lxc-execute of a privileged container needs root' : missingTool('lxc-execute'),
  'LXC export',
);

const suite = exportSuite(skip, 'vlab-lxc-', {
  tag: 'lxcimg:1',
  context: () =>
    makeContext({
      Dockerfile: [
        'FROM busybox',
        'RUN echo "written by the Dockerfile" > /file && mkdir /work',
        'ENV GREETING="hello lxc"',
        'WORKDIR /work',
        'CMD ["sh", "-c", "echo \\"$GREETING from $(pwd)\\""]',
        '',
      ].join('\n'),
    }),
});

describe.skipIf(skip)('LXC', () => {
  it('lxc-execute runs the exported rootfs with the written config, without network', async () => {
    const dest = path.join(suite.out, 'lxcimg');
    const s = await runCli(suite.root, ['save', '--format', 'lxc', '-o', dest, 'lxcimg:1']);
    expect(s.code, s.stderr).toBe(0);
    const config = path.join(dest, 'config');
    expect(await fsp.readFile(config, 'utf8')).toMatch(/^lxc\.rootfs\.path = dir:.*\/lxcimg\/rootfs$/m);
    const lxcpath = path.join(suite.out, 'lxcpath'); // LXC's state dir for the run, not the host's /var/lib/lxc
    await fsp.mkdir(lxcpath);
    const lxc = (args: string[]) => exec('lxc-execute', ['-n', 'vlabtest', '-P', lxcpath, '-f', config, ...args]);
    expect((await lxc(['--', '/bin/cat', '/file'])).stdout).toBe('written by the Dockerfile\n');
    // the image's CMD, ENV and WORKDIR, from the config alone
    expect((await lxc([])).stdout).toBe('hello lxc from /work\n');
    const netdev = (await lxc(['--', '/bin/cat', '/proc/net/dev'])).stdout;
    const ifaces = netdev
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]!.trim())
      .filter(Boolean);
    expect(ifaces).toEqual(['lo']);
    expect((await lxc(['--', '/bin/hostname'])).stdout).toBe('lxcimg\n');
  });
});
