/** The warm server's addon (native/vlab-fdpass.c): every call returns a number >= 0 or -errno. */
import { loadCoreAddon } from '../index.ts';

export interface FdPass {
  /** The request payload (no fds), or -errno. */
  recvRequest(fd: number, timeoutMs: number): Buffer | number;
  /** The client's go-ahead "G" and its fds 0, 1, 2 (close-on-exec), or -errno (-ECONNRESET: it left). */
  recvGo(fd: number, timeoutMs: number): [number, number, number] | number;
  peerUid(fd: number): number;
  peerPid(fd: number): number;
  /** A pidfd of the peer as at connect (SO_PEERPIDFD); -ENOPROTOOPT before Linux 6.5. */
  peerPidfd(fd: number): number;
  pidfdOpen(pid: number): number;
  /** 1 while the pidfd's process is not reaped (its pid cannot name another process), else -errno. */
  pidfdAlive(pidfd: number): number;
  /** 1 while the peer has not closed its end of the socket, 0 once it has, -EBADF for no open fd. */
  peerOpen(fd: number): number;
  dup2(from: number, to: number): number;
  /** A close-on-exec copy numbered above 2. */
  dup(fd: number): number;
  close(fd: number): number;
  getFl(fd: number): number;
  setFl(fd: number, flags: number): number;
  cloexec(fd: number): number;
  /** All of `buf`, waiting while a non-blocking pipe is full. */
  writeAll(fd: number, buf: Uint8Array): number;
}

/** The addon, from the sources or the CLI bundle; undefined when not built. */
export function loadFdPass(): FdPass | undefined {
  return loadCoreAddon<FdPass>('vlab-fdpass');
}
