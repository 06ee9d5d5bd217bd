/**
 * Run by server-peer.test.ts as pid 1 of a pid namespace of its own (`unshare -pf --mount-proc`),
 * where it may set ns_last_pid: a client connects and exits, and its pid is given to another
 * process before the server reads the client's cgroups. Prints JSON: whether the pid was reused,
 * what callerCgroups read, and what SO_PEERPIDFD gave (the path it took).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadFdPass } from '../server-native.ts';
import { callerCgroups } from '../server-peer.ts';

const dir = process.argv[2]!;
const sockPath = path.join(dir, 's.sock');
const fdp = loadFdPass()!;
const exited = (c: ChildProcess) => new Promise<void>((res) => c.once('exit', () => res()));

const accepted: net.Socket[] = [];
let onAccept: (() => void) | undefined;
const server = net.createServer({ pauseOnConnect: true }, (s) => {
  accepted.push(s);
  onAccept?.();
});
await new Promise<void>((res) => server.listen(sockPath, res));

/** A client that connects, waits to be accepted (its input closes), then exits. */
const connectingClient = () =>
  spawn(
    process.execPath,
    ['-e', `require('net').connect(${JSON.stringify(sockPath)}).on('end', () => process.exit(0))`],
    { stdio: 'ignore' },
  );

const result: { reused: boolean; read?: string | null; alive?: string | null; peerPidfd?: number } = {
  reused: false,
};
for (let attempt = 0; attempt < 5 && !result.reused; attempt++) {
  const got = new Promise<void>((res) => (onAccept = res));
  const client = connectingClient();
  await got;
  const sock = accepted.pop()!;
  sock.end();
  await exited(client);
  // its pid, to the next process forked here
  fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(client.pid! - 1));
  const other = spawn('sleep', ['5'], { stdio: 'ignore' });
  result.reused = other.pid === client.pid;
  const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
  result.read = result.reused ? (callerCgroups(fdp, fd) ?? null) : undefined;
  other.kill();
  await exited(other);
  sock.destroy();
}
// a live client: its cgroups are read
{
  const got = new Promise<void>((res) => (onAccept = res));
  const client = connectingClient();
  await got;
  const sock = accepted.pop()!;
  const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
  result.alive = callerCgroups(fdp, fd) ?? null;
  // which path callerCgroups took: a pidfd, or -ENOPROTOOPT (before Linux 6.5, or vlab-no-peerpidfd)
  result.peerPidfd = fdp.peerPidfd(fd);
  if (result.peerPidfd >= 0) fdp.close(result.peerPidfd);
  sock.end();
  await exited(client);
  sock.destroy();
}
server.close();
process.stdout.write(JSON.stringify(result));
process.exit(0);
