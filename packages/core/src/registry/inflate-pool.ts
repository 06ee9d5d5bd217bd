/**
 * gzip layers are gunzipped, hashed twice and written off the main thread. On the main thread a
 * 1 GiB pull spent ~5 s of CPU in 256 KiB zlib callbacks, two sha256 updates per chunk, file
 * writes and the garbage they left, while the second core idled (bench/README.md "Registry"). Here
 * the main thread reads the socket and hashes the compressed bytes; a worker thread per layer in
 * flight takes them in 1 MiB messages (full ones transferred, not copied) and gunzips, hashes and
 * writes the tar (inflate-worker.ts: ISA-L's inflate on libuv's thread pool when vlab-isal.node is
 * built, else zlib's). The caller checks both digests and names the blob (blob-get.ts), so nothing
 * changes in what is verified.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { VlabError } from '@vlab/errors';
import { isalAddon } from '@vlab/overlay';
import { WORKER_SOURCE } from './inflate-worker.ts';
import type { BodySink } from './raw-get.ts';

/**
 * ISA-L's inflate (packages/overlay/native/vlab-isal.c) when built, unless VLAB_GUNZIP=zlib: 3.5x
 * less CPU than zlib for the same bytes (a 512 MiB layer: 0.37 s against 1.32 s), and, run on the
 * thread pool, no longer one thread's serial work (bench/README.md "Pull speed, session 21").
 */
function gunzipAddon(): string | undefined {
  return process.env.VLAB_GUNZIP === 'zlib' ? undefined : isalAddon();
}

/** Why a job's tar is not to be kept: not gzip ('bad'), or over its byte limit ('big'). */
export interface InflateFailure {
  kind: 'bad' | 'big';
  message: string;
}

/** What a job found: the compressed bytes' digest and count (hashed here: this thread mostly waits on sockets), the tar's digest and size (by the worker), and why gunzip failed. */
export interface InflateResult {
  digest: string;
  n: number;
  tar: string;
  size: number;
  bad?: InflateFailure;
}
type WorkerResult = Omit<InflateResult, 'digest' | 'n'>;

type Reply =
  | { op: 'ack'; id: number; n: number; buf?: ArrayBuffer }
  | ({ op: 'done'; id: number } & WorkerResult)
  | { op: 'error'; id: number; kind: 'io'; message: string; code?: string }
  | { op: 'aborted'; id: number };

/** Compressed bytes sent per message, and at most this many in flight per layer. */
const MESSAGE = 1 << 20;
const IN_FLIGHT = 8 << 20;
const SPARE = IN_FLIGHT / MESSAGE + 2;

interface Pending {
  inFlight: number;
  wake?: () => void;
  settle?: { resolve: (r: WorkerResult) => void; reject: (e: Error) => void };
  failed?: Error;
}

class Slot {
  readonly worker: Worker;
  readonly jobs = new Map<number, Pending>();
  /** Blocks the worker gave back, to be filled again (the main thread allocated 1 MiB per message). */
  readonly spare: ArrayBuffer[] = [];
  /** Exited or failed: it takes no more jobs. */
  dead = false;
  constructor(addon: string | undefined) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { addon } });
    this.worker.unref();
    this.worker.on('message', (m: Reply) => this.reply(m));
    this.worker.on('error', (e) =>
      this.fail(new VlabError('E_INTERNAL', `the gunzip worker failed: ${e.message}`, { cause: e })),
    );
    this.worker.on('exit', (code) => this.fail(new VlabError('E_INTERNAL', `the gunzip worker exited (${code})`)));
  }
  private reply(m: Reply): void {
    const p = this.jobs.get(m.id);
    if (!p) return;
    if (m.op === 'ack') {
      if (m.buf && this.spare.length < SPARE) this.spare.push(m.buf);
      p.inFlight -= m.n;
      p.wake?.();
    } else if (m.op === 'done') {
      this.jobs.delete(m.id);
      p.settle?.resolve(m);
    } else if (m.op === 'error') {
      this.jobs.delete(m.id);
      // the temp file's errno (ENOSPC becomes E_NO_SPACE where the blob is aborted: blob-get.ts)
      const cause = Object.assign(new Error(m.message), { code: m.code });
      p.settle?.reject(new VlabError('E_STORE', `writing a pulled layer's temp blob: ${m.message}`, { cause }));
    } else {
      this.jobs.delete(m.id);
      p.settle?.resolve({ tar: '', size: 0 });
    }
  }
  private fail(e: Error): void {
    this.dead = true;
    for (const p of this.jobs.values()) {
      p.failed ??= e;
      p.wake?.();
      p.settle?.reject(e);
    }
    this.jobs.clear();
  }
}

/** One gzip layer being gunzipped into `file` by a worker: `write` the compressed bytes, then `end` or `abort`. */
export class InflateJob implements BodySink {
  private buf: Buffer;
  private used = 0;
  private readonly hash = createHash('sha256');
  private n = 0;
  /** The worker has answered `end`: it closed the file and forgot the job. */
  private over = false;
  constructor(
    private readonly slot: Slot,
    private readonly id: number,
    private readonly p: Pending,
  ) {
    this.buf = this.block();
  }

  private block(): Buffer {
    const ab = this.slot.spare.pop();
    return ab ? Buffer.from(ab) : Buffer.allocUnsafeSlow(MESSAGE);
  }

  /** Take `chunk`; resolves once the worker has room for more (backpressure on the socket). */
  async write(chunk: Buffer): Promise<void> {
    this.hash.update(chunk);
    this.n += chunk.length;
    for (let off = 0; off < chunk.length;) {
      const n = chunk.copy(this.buf, this.used, off);
      this.used += n;
      off += n;
      if (this.used === MESSAGE) await this.flush();
    }
  }

  /** BodySink (raw-get.ts): the socket reads into the rest of the current block, no copy. */
  space(): Buffer {
    return this.buf.subarray(this.used);
  }

  /** BodySink: `n` bytes were read into `space()`; false once the worker has no room for more. */
  took(n: number): boolean {
    this.hash.update(this.buf.subarray(this.used, this.used + n));
    this.n += n;
    this.used += n;
    if (this.used === MESSAGE) this.post();
    return this.p.inFlight <= IN_FLIGHT && !this.p.failed;
  }

  /** BodySink: resolves once the worker has room again, rejects if it failed. */
  async room(): Promise<void> {
    while (this.p.inFlight > IN_FLIGHT && !this.p.failed) await new Promise<void>((r) => (this.p.wake = r));
    this.p.wake = undefined;
    if (this.p.failed) throw this.p.failed;
  }

  private post(): void {
    if (this.p.failed) throw this.p.failed;
    // a full block goes as it is (its own ArrayBuffer: allocUnsafeSlow); only the last, partial one is copied
    const whole = this.used === this.buf.buffer.byteLength && this.buf.byteOffset === 0;
    const out = (whole ? this.buf.buffer : this.buf.buffer.slice(0, this.used)) as ArrayBuffer;
    this.p.inFlight += this.used;
    this.slot.worker.postMessage({ op: 'data', id: this.id, buf: out }, [out]);
    this.buf = this.block();
    this.used = 0;
  }

  private async flush(): Promise<void> {
    this.post();
    await this.room();
  }

  /** All bytes given: the worker's digests, once the tar is written and closed. */
  async end(): Promise<InflateResult> {
    if (this.used) await this.flush();
    try {
      return { ...(await this.finish('end')), digest: this.hash.digest('hex'), n: this.n };
    } finally {
      this.over = true;
    }
  }

  /** Stop; the file is closed (the caller removes it). Never rejects. */
  async abort(): Promise<void> {
    if (this.over) return;
    this.over = true;
    await this.finish('abort').catch(() => undefined);
  }

  private finish(op: 'end' | 'abort'): Promise<WorkerResult> {
    if (this.p.failed) return Promise.reject(this.p.failed);
    return new Promise((resolve, reject) => {
      this.p.settle = { resolve, reject };
      this.slot.worker.postMessage({ op, id: this.id });
    });
  }
}

/** Workers end after this long without a job (a warm server keeps no idle threads' memory). */
const IDLE_MS = 10_000;

/** Up to four workers, started on first use and ended by `close()`, or after IDLE_MS once `release()`d. */
export class InflatePool {
  private readonly slots: Slot[] = [];
  private next = 0;
  /** One worker per layer in flight (pull's default is 3): more did not help, fewer (one per core) was slower at load. */
  private readonly max = 4;
  private idle: NodeJS.Timeout | undefined;
  constructor(private readonly addon = gunzipAddon()) {}

  /** Which gunzip the workers run. */
  get engine(): 'isal' | 'zlib' {
    return this.addon ? 'isal' : 'zlib';
  }

  /** A job gunzipping into `file` (created exclusively by the worker) on the least busy worker, stopping past `limit` tar bytes. */
  start(file: string, limit: number): InflateJob {
    clearTimeout(this.idle);
    this.idle = undefined;
    for (let i = this.slots.length - 1; i >= 0; i--) if (this.slots[i]!.dead) this.slots.splice(i, 1);
    let slot = this.slots.find((s) => s.jobs.size === 0);
    if (!slot && this.slots.length < this.max) this.slots.push((slot = new Slot(this.addon)));
    slot ??= this.slots.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.next++;
    const p: Pending = { inFlight: 0 };
    slot.jobs.set(id, p);
    slot.worker.postMessage({ op: 'open', id, file, limit });
    return new InflateJob(slot, id, p);
  }

  /** A pull is done with it: the workers stay for the next pull and end once idle for IDLE_MS. */
  release(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.slots.some((s) => s.jobs.size)) this.release();
      else void this.close();
    }, IDLE_MS).unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.idle);
    const all = this.slots.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }
}

const shared = new Map<string, InflatePool>();

/**
 * The process's pool for the gunzip chosen now (VLAB_GUNZIP): its workers outlive one pull, as
 * each costs ~25 ms of CPU to start (4 of them: ~0.1 CPU-s per pull of a big image).
 */
export function inflatePool(): InflatePool {
  const addon = gunzipAddon();
  const key = addon ?? 'zlib';
  let pool = shared.get(key);
  if (!pool) shared.set(key, (pool = new InflatePool(addon)));
  return pool;
}
