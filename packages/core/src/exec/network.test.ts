import { describe, expect, it } from 'vitest';
import net from 'node:net';
import { BuiltinExecutor } from './builtin.ts';
import { findPasta, parsePort, pastaArgv } from './network.ts';
import { useExecutor } from './testing/fixture.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';

const hasPasta = (() => {
  try {
    return !!findPasta();
  } catch {
    return false;
  }
})();
if (!hasPasta) console.warn('pasta (Debian passt) is not installed: --network private is not tested');

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

/** Connects until the server answers (it may not listen yet); what it sent. */
async function fetchFrom(port: number, deadlineMs = 5000): Promise<string> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const got = await new Promise<string>((resolve) => {
      let data = '';
      const c = net.connect(port, '127.0.0.1');
      c.on('data', (b) => (data += b));
      c.on('close', () => resolve(data));
      c.on('error', () => resolve(''));
    });
    if (got || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('-p parsing (docker)', () => {
  it('takes [IP:]HOST:CONTAINER[/proto], refuses the rest', () => {
    expect(parsePort('8080:80')).toEqual({ hostPort: 8080, containerPort: 80, protocol: 'tcp' });
    expect(parsePort('127.0.0.1:53:5353/udp')).toEqual({
      hostIp: '127.0.0.1',
      hostPort: 53,
      containerPort: 5353,
      protocol: 'udp',
    });
    for (const bad of ['80', 'x:80', '0:80', '70000:80', '1:2/sctp'])
      expect(() => parsePort(bad), bad).toThrow(expect.objectContaining({ code: 'E_BAD_ARG' }));
  });
  it.skipIf(!hasPasta)("pasta forwards only the published ports and none of the host's loopback", () => {
    const a = pastaArgv([{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    expect(a.slice(1)).toEqual([
      '--config-net',
      '--quiet',
      '--runas',
      '0',
      '--no-map-gw',
      '-t',
      '127.0.0.1/8080:80',
      '-u',
      'none',
      '-T',
      'none',
      '-U',
      'none',
      '--netns',
      '{netns}',
    ]);
  });
});

describe('--network private (vlab-init + pasta)', () => {
  const fx = useExecutor('net', (o) => BuiltinExecutor.create(o));

  it.skipIf(!hasPasta)(
    'an own namespace with a routed interface; -p reaches a server in it from 127.0.0.1',
    async () => {
      const root = await makeBusyboxRootfs(fx.base);
      const port = await freePort();
      let out = '';
      const run = fx.ex.run(
        {
          rootfs: root,
          argv: [
            '/bin/sh',
            '-c',
            'ip -o -4 addr show scope global | wc -l; ip route | grep -c ^default; nc -l -p 80 -e echo hello-from-the-container',
          ],
          env: [],
          cwd: '/',
          network: 'private',
          ports: [{ hostIp: '127.0.0.1', hostPort: port, containerPort: 80, protocol: 'tcp' }],
        },
        { onOutput: (_s, b) => (out += b) },
      );
      expect(await fetchFrom(port)).toBe('hello-from-the-container\n');
      const r = await run;
      expect(r.exitCode).toBe(0);
      expect(out).toBe('1\n1\n');
      // pasta ended with the container (it was in its cgroup): the port is free again
      expect(await fetchFrom(port, 200)).toBe('');
    },
  );

  it('-p without --network private is refused', async () => {
    const root = await makeBusyboxRootfs(fx.base);
    const e = await fx.ex
      .run({ rootfs: root, argv: ['true'], env: [], cwd: '/', ports: [parsePort('1:2')] })
      .catch((x) => x);
    expect(e.code).toBe('E_BAD_ARG');
  });
});
