/**
 * The warm server's client process, as far as its cgroups go: a container monitor a command
 * starts joins its client's cgroups (containers/monitor.ts), read from /proc/PID/cgroup. A pid is
 * only a name: the client may exit, and its pid go to another process, before the read. So the
 * read goes through a pidfd of the client (SO_PEERPIDFD: the very process that connected), and is
 * kept only if that process is still alive after it (then the pid was still its own). Before
 * Linux 6.5 the pidfd is opened on SO_PEERCRED's pid, and the read is kept only if the client
 * also still holds its end of the socket: a client that died first would have closed it.
 * Anything unverified: no cgroups, and the monitor stays in the server's.
 */
import fs from 'node:fs';
import type { FdPass } from './server-native.ts';

const ENOPROTOOPT = 92;
const EINVAL = 22;

/** The client's /proc/PID/cgroup, when it is sure to be the client's (called right after accept). */
export function callerCgroups(fdp: FdPass, sock: number): string | undefined {
  let pidfd = fdp.peerPidfd(sock);
  const fallback = pidfd === -ENOPROTOOPT || pidfd === -EINVAL;
  if (fallback) {
    const pid = fdp.peerPid(sock);
    pidfd = pid > 0 ? fdp.pidfdOpen(pid) : -1;
  }
  if (pidfd < 0) return undefined;
  try {
    const pid = pidfdPid(pidfd);
    if (!pid) return undefined;
    const text = readProc(`/proc/${pid}/cgroup`);
    if (fdp.pidfdAlive(pidfd) !== 1) return undefined; // exited: the pid may name another process
    if (fallback && fdp.peerOpen(sock) !== 1) return undefined;
    return text;
  } finally {
    fdp.close(pidfd);
  }
}

/** The pid (in our namespace) of a pidfd's process: its fdinfo's "Pid:"; undefined once it exited or outside our namespace. */
function pidfdPid(pidfd: number): number | undefined {
  const m = /^Pid:\s*(-?\d+)$/m.exec(readProc(`/proc/self/fdinfo/${pidfd}`) ?? '');
  const pid = Number(m?.[1]);
  return pid > 0 ? pid : undefined;
}

function readProc(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined; // the client is gone already: its command is stopped anyway
  }
}
