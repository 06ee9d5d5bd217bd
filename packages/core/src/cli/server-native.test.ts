import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadFdPass } from './server-native.ts';

const fdp = loadFdPass();
if (!fdp) console.warn('vlab-fdpass tests skipped: vlab-fdpass.node is not built (scripts/build-native.sh)');

describe.skipIf(!fdp)('vlab-fdpass peerOpen', () => {
  it('fails closed: no fd, or one that is not open, is never a peer still there', () => {
    const fd = fs.openSync('/dev/null', 'r');
    fs.closeSync(fd); // now a number nothing is open on
    expect(fdp!.peerOpen(-1)).toBeLessThan(0);
    expect(fdp!.peerOpen(fd)).toBeLessThan(0);
  });

  it('a socket pair: 1 while the peer has its end, 0 once it closed it', async () => {
    const [a, b] = await socketPair();
    const fd = (a as unknown as { _handle: { fd: number } })._handle.fd;
    expect(fdp!.peerOpen(fd)).toBe(1);
    b.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(fdp!.peerOpen(fd)).toBe(0);
    a.destroy();
  });
});

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    allowHalfOpen: true,
  });
  await new Promise((r) => client.once('connect', r));
  const s = await accepted;
  server.close();
  return [client, s];
}
