/**
 * One long-lived `vlab-sys serve` per process (native/vlab-sys.c): a mount, an unmount or an
 * xattr read is then a write and a read on a pipe (~0.2 ms) instead of a process start (~6 ms
 * from a busy Node process here, ~10 ms for mount(8) or getfattr(1)); a RUN step does one of
 * each. Requests go one at a time, in order. The server is unref'd while idle, so it never keeps
 * Node alive; it ends when Node exits and its stdin closes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { holdEventLoop } from './native.ts';

export interface ServerAnswer {
  code: number;
  /** The operation's output (code 0). */
  stdout: Buffer;
  /** The error (code ≠ 0). */
  stderr: string;
}

export class SysServer {
  private child?: ChildProcess;
  private queue: Promise<unknown> = Promise.resolve();
  private pending?: { resolve: (a: ServerAnswer) => void; reject: (e: Error) => void };
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly bin: string) {}

  /** Runs one operation of vlab-sys (`args`) with `cwd` as its working directory. */
  call(cwd: string | undefined, args: string[]): Promise<ServerAnswer> {
    const next = this.queue.then(() => this.send(cwd, args));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The framed answer "CODE LENGTH\n" + LENGTH bytes, once it is all there. */
  private takeAnswer(): ServerAnswer | undefined {
    const nl = this.buffered.indexOf(10);
    if (nl < 0) return undefined;
    const m = /^(\d+) (\d+)$/.exec(this.buffered.subarray(0, nl).toString());
    if (!m) throw new Error(`vlab-sys serve: bad answer ${JSON.stringify(this.buffered.subarray(0, nl).toString())}`);
    const len = Number(m[2]);
    if (this.buffered.length < nl + 1 + len) return undefined;
    const body = this.buffered.subarray(nl + 1, nl + 1 + len);
    this.buffered = this.buffered.subarray(nl + 1 + len);
    // the operation's own code, as the one-process vlab-sys exits: 2 is its usage, 32 a failure
    const code = Number(m[1]);
    return code === 0
      ? { code, stdout: Buffer.from(body), stderr: '' }
      : { code, stdout: Buffer.alloc(0), stderr: body.toString() };
  }

  private start(): ChildProcess {
    const child = spawn(this.bin, ['serve'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const gone = (why: string) => {
      if (this.child === child) this.child = undefined;
      this.pending?.reject(new Error(`vlab-sys serve ${why}`));
      this.pending = undefined;
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      if (!this.pending) return;
      try {
        const answer = this.takeAnswer();
        if (!answer) return;
        const p = this.pending;
        this.pending = undefined;
        p.resolve(answer);
      } catch (e) {
        child.kill('SIGKILL');
        gone((e as Error).message);
      }
    });
    child.on('error', (e) => gone(`failed: ${e.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    child.stdin!.on('error', () => {});
    holdEventLoop(child, false);
    return child;
  }

  private async send(cwd: string | undefined, args: string[]): Promise<ServerAnswer> {
    for (const a of [cwd ?? '-', ...args]) {
      if (a === '' || a.includes('\0')) throw new Error(`vlab-sys serve: bad argument ${JSON.stringify(a)}`);
    }
    const child = (this.child ??= this.start());
    holdEventLoop(child, true);
    try {
      return await new Promise<ServerAnswer>((resolve, reject) => {
        this.pending = { resolve, reject };
        child.stdin!.write([cwd ?? '-', ...args, ''].join('\0') + '\0');
      });
    } finally {
      if (this.child === child) holdEventLoop(child, false);
    }
  }
}

const servers = new Map<string, SysServer>();

export function sysServer(bin: string): SysServer {
  let s = servers.get(bin);
  if (!s) servers.set(bin, (s = new SysServer(bin)));
  return s;
}
