/**
 * process.stdin / stdout / stderr of the warm server: the current request's own fds (received
 * from the client), made into the same kinds of stream Node makes for a direct run (a tty stream
 * on a tty, a socket on a pipe, a file stream on a file), lazily as Node does; between requests,
 * an empty input and discarding outputs.
 *
 * The fds are also dup2'ed onto 0, 1, 2, so child processes that inherit stdio get them as in a
 * direct run. The streams sit on copies of them (a stream's close closes its copy, never 0-2),
 * and each request's status flags (O_NONBLOCK) are put back as Node does at exit.
 */
import fs from 'node:fs';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import tty from 'node:tty';
import type { FdPass } from './server-native.ts';

type Std = NodeJS.ReadStream | NodeJS.WriteStream;
interface Slot {
  fd: number;
  flags: number;
  stream?: Std;
  copy?: number;
}

const NAMES = ['stdin', 'stdout', 'stderr'] as const;

/** Writes straight to an fd, as Node's stdout on a file (synchronous). */
class FdWriter extends Writable {
  readonly isTTY = false;
  broken = false;
  constructor(
    private readonly fdp: FdPass,
    readonly fd: number,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    // A closed reader (`| head`) ends the output, as it ends a direct run's: the rest is dropped.
    if (!this.broken && this.fdp.writeAll(this.fd, chunk) < 0) this.broken = true;
    cb();
  }
}

export class RequestStdio {
  private slots: Slot[] | undefined;
  private muted = false;
  private idle: Std[] = [];
  private readonly devNull: number;

  constructor(private readonly fdp: FdPass) {
    this.devNull = fs.openSync('/dev/null', 'r+');
    fdp.cloexec(this.devNull);
    for (let i = 0; i < 3; i++)
      Object.defineProperty(process, NAMES[i]!, { configurable: true, enumerable: true, get: () => this.get(i) });
  }

  begin(fds: number[]): void {
    this.slots = fds.map((fd, i) => {
      this.fdp.dup2(fd, i);
      return { fd, flags: this.fdp.getFl(fd) };
    });
  }

  /**
   * The client is gone (killed): what the command still prints is dropped, as a dead process
   * prints nothing (its terminal may still be there). Children keep the fds they inherited.
   */
  mute(): void {
    this.muted = true;
    for (const s of this.slots ?? []) if (s.stream instanceof FdWriter) s.stream.broken = true;
  }

  /** After the command: its streams closed, its fds' flags restored, 0-2 back to /dev/null. */
  end(): void {
    const slots = this.slots ?? [];
    this.slots = undefined;
    this.muted = false;
    slots.forEach((s, i) => {
      if (s.stream) {
        s.stream.destroy();
        if (s.stream instanceof FdWriter) this.fdp.close(s.copy!);
      }
      if (s.flags >= 0) this.fdp.setFl(s.fd, s.flags);
      this.fdp.dup2(this.devNull, i);
      this.fdp.close(s.fd);
    });
  }

  private get(i: number): Std {
    const s = this.muted && i > 0 ? undefined : this.slots?.[i];
    if (!s)
      return (this.idle[i] ??= (i === 0 ? Readable.from([]) : new Writable({ write: (_c, _e, cb) => cb() })) as Std);
    if (!s.stream) {
      s.stream = this.open(s, i);
      // A write after the command ended (a timer it left) must not take the server down.
      s.stream.on('error', () => {});
    }
    return s.stream;
  }

  private open(s: Slot, i: number): Std {
    const fd = (s.copy = this.fdp.dup(s.fd));
    if (tty.isatty(fd)) return i === 0 ? new tty.ReadStream(fd) : new tty.WriteStream(fd);
    const st = fs.fstatSync(fd);
    const piped = st.isFIFO() || st.isSocket();
    if (i > 0) return new FdWriter(this.fdp, fd) as unknown as Std;
    if (piped) return new net.Socket({ fd, readable: true, writable: false }) as unknown as Std;
    return fs.createReadStream('', { fd, autoClose: true }) as unknown as Std;
  }
}
