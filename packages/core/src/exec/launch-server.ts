/**
 * One long-lived `vlab-init serve` per process (native/vlab-init-serve.c): Node's spawn forks the whole
 * Node process, ~15 ms a RUN here with the event loop blocked; the server forks a small C process
 * instead. Runs go on concurrently (parallel stages); each one's stdout/stderr come back framed,
 * then its end. The server dies with Node (parent-death signal) and takes its containers along;
 * it is unref'd while no run is going, so it never keeps Node alive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { holdEventLoop } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import type { Exit, Spawned } from './process.ts';

/** A launch process made ahead of its run (LaunchServer.prepare). */
export interface Zygote {
  readonly server: LaunchServer;
  readonly child: ChildProcess;
  readonly id: number;
}

interface Active {
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  resolve: (e: Exit) => void;
  reject: (e: Error) => void;
}

const SIGNAL_NAMES = new Map(
  Object.entries(constants.signals).map(([name, n]) => [n as number, name as NodeJS.Signals]),
);

export class LaunchServer {
  private child?: ChildProcess;
  private nextId = 1;
  private readonly active = new Map<number, Active>();
  private buffered: Buffer = Buffer.alloc(0);
  /** Whether the running server said it takes zygotes (its first line). */
  private zygotes = false;

  constructor(private readonly bin: string) {}

  /**
   * Starts the container described by `specFile`; the same shape as a spawned process. In
   * `zygote` (see prepare) when given: a zygote that is gone is replaced by a fresh launch.
   */
  launch(specFile: string, onOutput?: Active['onOutput'], zygote?: Zygote): Spawned {
    if (/[\n\r]/.test(specFile))
      throw new VlabError('E_EXEC_SETUP', `spec path has a line break: ${JSON.stringify(specFile)}`);
    const child = (this.child ??= this.start());
    const id = this.nextId++;
    const exited = new Promise<Exit>((resolve, reject) => this.active.set(id, { onOutput, resolve, reject }));
    holdEventLoop(child, true);
    const fromZygote = zygote?.server === this && zygote.child === child;
    child.stdin!.write(fromZygote ? `C ${id} ${zygote.id} ${specFile}\n` : `R ${id} ${specFile}\n`);
    return {
      pid: undefined,
      exited,
      kill: () => {
        if (this.active.has(id) && this.child === child) child.stdin!.write(`K ${id}\n`);
      },
    };
  }

  /**
   * Forks a launch process ahead of its run (a zygote, native/vlab-init-serve.c): it joins the
   * cgroups whose `cgroup.procs` files are given, so the wait a move into a cgroup costs is paid
   * now, and the container it launches later (`launch(…, zygote)`) is born inside them. Until
   * claimed it says nothing; killed (`drop`, or with its cgroup) it is forgotten.
   */
  prepare(procsFiles: string[]): Zygote | undefined {
    const child = (this.child ??= this.start());
    // a vlab-init built before zygotes says nothing first, and would leave a claim unanswered
    if (!this.zygotes) return undefined;
    const id = this.nextId++;
    const enc = (f: string) => f.replace(/[% \n\r]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
    child.stdin!.write(`Z ${id} ${procsFiles.map(enc).join(' ')}\n`);
    return { server: this, child, id };
  }

  /** Kills a zygote nobody claimed (its cgroup's removal would too). */
  drop(z: Zygote): void {
    if (z.server === this && this.child === z.child) z.child.stdin!.write(`K ${z.id}\n`);
  }

  private start(): ChildProcess {
    // Its own stderr (fatal setup errors only) goes into the error a failed run gets, not to ours.
    const child = spawn(this.bin, ['serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-1000)));
    child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      this.drain();
    });
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.zygotes = false;
      this.buffered = Buffer.alloc(0);
      for (const a of this.active.values())
        a.reject(new VlabError('E_EXEC_SETUP', `the vlab-init server ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
      this.active.clear();
    };
    child.on('error', (e) => gone(`failed: ${e.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    child.stdin!.on('error', () => {});
    this.idleIfDone(child);
    return child;
  }

  /** Parses every complete frame in the buffer (see the protocol in vlab-init-serve.c). */
  private drain(): void {
    for (;;) {
      const nl = this.buffered.indexOf(10);
      if (nl < 0) return;
      const head = this.buffered.subarray(0, nl).toString().split(' ');
      const id = Number(head[1]);
      const run = this.active.get(id);
      if (head[0] === 'O') {
        const len = Number(head[3]);
        if (this.buffered.length < nl + 1 + len) return;
        const data = Buffer.from(this.buffered.subarray(nl + 1, nl + 1 + len));
        this.buffered = this.buffered.subarray(nl + 1 + len);
        run?.onOutput?.(head[2] === '1' ? 'stdout' : 'stderr', data);
        continue;
      }
      this.buffered = this.buffered.subarray(nl + 1);
      if (head[0] === 'V') this.zygotes = head.includes('zygote');
      if (head[0] === 'E' && run) {
        this.active.delete(id);
        const sig = head[3] === '-' ? null : (SIGNAL_NAMES.get(Number(head[3])) ?? 'SIGKILL');
        run.resolve({ code: head[2] === '-' ? null : Number(head[2]), signal: sig });
        if (this.child) this.idleIfDone(this.child);
      }
      // 'S' (started, with the pid) needs nothing: kills go through the server by id.
    }
  }

  /** Only runs in flight keep the event loop alive. */
  private idleIfDone(child: ChildProcess): void {
    if (!this.active.size) holdEventLoop(child, false);
  }
}

const servers = new Map<string, LaunchServer>();

export function launchServer(bin: string): LaunchServer {
  let s = servers.get(bin);
  if (!s) servers.set(bin, (s = new LaunchServer(bin)));
  return s;
}
