/**
 * gzip layers are gunzipped, hashed twice and written off the main thread. On the main thread a
 * 1 GiB pull spent ~5 s of CPU in 256 KiB zlib callbacks, two sha256 updates per chunk, file
 * writes and the garbage they left, while the second core idled (bench/README.md "Registry"). Here
 * the main thread reads the socket and hashes the compressed bytes; a worker thread per core takes
 * them in 1 MiB messages (full ones transferred, not copied), gunzips them (ISA-L on the worker, else zlib on
 * libuv's thread pool), hashes the tar and writes it into a temp blob (ISA-L's output: 4 buffers
 * written on the thread pool while the next is filled). The caller checks both digests and names
 * the blob (blob-get.ts), so nothing changes in what is verified.
 *
 * The worker's code is plain CommonJS of Node's built-ins, evaluated from a string: the CLI is one
 * bundled file, and a worker script beside it would be a second file to find.
 */
import { createHash } from 'node:crypto';
import { nativeHelper } from '@vlab/overlay';
import { Worker } from 'node:worker_threads';

/**
 * native/vlab-igzip.c (ISA-L's inflate), from the sources (src/registry/) or the CLI bundle
 * (dist/), with VLAB_GUNZIP=isal; zlib otherwise. ISA-L takes 3.5x less CPU (a 512 MiB layer:
 * 0.37 s against 1.32 s), but on this loaded 2-core machine (load 10-20) the zlib path pulled
 * the 1 GiB image faster (5.4-9 s against 8.7-17 s): zlib inflates on the thread pool while
 * the worker hashes and writes, so a layer's work is spread over more threads. Opt-in until it
 * is measured on a quiet machine (bench/README.md "Registry").
 */
function isalAddon(): string | undefined {
  if (process.env.VLAB_GUNZIP !== 'isal') return undefined;
  return nativeHelper('vlab-igzip.node', [
    new URL('../../native/bin/vlab-igzip.node', import.meta.url),
    new URL('../native/bin/vlab-igzip.node', import.meta.url),
  ]);
}

const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const WRITEBACK = ${64 << 20};
const OUT = ${1 << 20};
/** ISA-L's output buffers per job: one is filled while the others are written on the thread pool. */
const RING = 4;
let isal;
if (workerData.addon) { const m = { exports: {} }; process.dlopen(m, workerData.addon); isal = m.exports; }
const jobs = new Map();
const post = (m) => parentPort.postMessage(m);
function put(j, c) {
  j.hashT.update(c);
  j.size += c.length;
  if (j.io) return;
  try { for (let off = 0; off < c.length; ) off += fs.writeSync(j.fd, c, off, c.length - off); } catch (e) { j.io = e; return; }
  writeback(j);
}
function writeback(j) {
  if (j.size - j.synced < WRITEBACK) return;
  j.synced = j.size; // flushed as it grows, off this thread: the disk writes while we inflate
  j.syncing = j.syncing.then(() => new Promise((res) => fs.fdatasync(j.fd, () => res())));
}
function wake(j) { const w = j.waiter; j.waiter = undefined; if (w) w(); }
/** Hash out[0, made) now and write it at its offset on the thread pool; out is free again after. */
function putAsync(j, out, made) {
  j.hashT.update(out.subarray(0, made));
  const pos = j.size;
  j.size += made;
  if (j.io) return void j.free.push(out);
  j.writing++;
  const done = (e) => { j.writing--; if (e) j.io ??= e; j.free.push(out); wake(j); };
  const from = (off) => fs.write(j.fd, out, off, made - off, pos + off, (e, n) => (e ? done(e) : off + n < made ? from(off + n) : done()));
  from(0);
  writeback(j);
}
async function outBuf(j) {
  while (!j.free.length) {
    if (j.allocated < RING) { j.allocated++; return Buffer.allocUnsafe(OUT); }
    await new Promise((r) => (j.waiter = r));
  }
  return j.free.pop();
}
async function drain(j) { while (j.writing) await new Promise((r) => (j.waiter = r)); }
function open(m) {
  const j = { id: m.id, fd: -1, hashT: crypto.createHash('sha256'), size: 0,
    synced: 0, syncing: Promise.resolve(), bad: undefined, io: undefined };
  jobs.set(m.id, j);
  try { j.fd = fs.openSync(m.file, 'wx'); } catch (e) { j.io = e; }
  if (isal) {
    j.state = Buffer.alloc(isal.stateSize());
    isal.init(j.state);
    j.free = [];
    j.allocated = 0;
    j.writing = 0;
    j.chain = Promise.resolve();
    j.fin = false;
    return;
  }
  j.gz = zlib.createGunzip({ chunkSize: ${256 << 10} });
  j.gz.on('data', (c) => put(j, c));
  j.ended = new Promise((res) => { j.gz.once('end', res); j.gz.once('error', (e) => { j.bad ??= e; res(); }); });
}
/** ISA-L: one inflate call into a free output buffer; false when the data is bad. */
async function step(j, input) {
  const out = await outBuf(j);
  const [rc, used, made, fin] = isal.inflate(j.state, input, out);
  if (made) putAsync(j, out, made);
  else j.free.push(out);
  if (rc < 0) { j.bad = new Error('invalid gzip data (ISA-L error ' + rc + ')'); return; }
  return { used, made, fin: fin === 1 };
}
/** ISA-L: decode all of buf (then the output the end of the input may leave inside the decoder). */
async function inflateIsal(j, buf) {
  if (j.bad) return;
  while (buf.length) {
    if (j.fin) { isal.init(j.state); j.fin = false; } // another gzip member follows
    const r = await step(j, buf);
    if (!r) return;
    buf = buf.subarray(r.used);
    j.fin = r.fin;
    if (!r.used && !r.made && !j.fin) { j.bad = new Error('gunzip made no progress'); return; }
  }
  for (;;) {
    const r = await step(j, Buffer.alloc(0));
    if (!r) return;
    j.fin = j.fin || r.fin;
    if (r.made < OUT) return;
  }
}
function data(m) {
  const j = jobs.get(m.id);
  const buf = Buffer.from(m.buf);
  let acked = false;
  const ack = () => { if (!acked) post({ op: 'ack', id: m.id, n: buf.length }); acked = true; };
  if (!j) return ack();
  if (j.bad || j.io) return ack();
  if (isal) return void (j.chain = j.chain.then(() => inflateIsal(j, buf)).then(ack, ack));
  j.gz.write(buf, ack);
  if (j.bad) ack();
}
async function close(j) {
  jobs.delete(j.id);
  if (isal) { await j.chain; await drain(j); }
  await j.syncing;
  if (j.fd >= 0) fs.closeSync(j.fd);
  j.fd = -1;
}
async function end(m) {
  const j = jobs.get(m.id);
  if (!j) return;
  if (isal) {
    await j.chain;
    if (!j.bad && !j.fin) j.bad = new Error('unexpected end of file');
  } else if (!j.bad && !j.io) {
    j.gz.end();
    await j.ended;
  } else j.gz.destroy();
  await close(j);
  if (j.io) return post({ op: 'error', id: j.id, message: j.io.message, code: j.io.code });
  post({ op: 'done', id: j.id, tar: j.hashT.digest('hex'), size: j.size, bad: j.bad ? j.bad.message : undefined });
}
async function abort(m) {
  const j = jobs.get(m.id);
  if (j) { j.gz?.destroy(); await close(j); }
  post({ op: 'aborted', id: m.id });
}
parentPort.on('message', (m) => {
  if (m.op === 'open') open(m);
  else if (m.op === 'data') data(m);
  else if (m.op === 'end') end(m).catch((e) => post({ op: 'error', id: m.id, message: e.message, code: e.code }));
  else if (m.op === 'abort') abort(m);
});
`;

/** What a job found: the compressed bytes' digest and count (hashed here: this thread mostly waits on sockets), the tar's digest and size (by the worker), and why gunzip failed. */
export interface InflateResult {
  digest: string;
  n: number;
  tar: string;
  size: number;
  bad?: string;
}
type WorkerResult = Omit<InflateResult, 'digest' | 'n'>;

type Reply =
  | { op: 'ack'; id: number; n: number }
  | ({ op: 'done'; id: number } & WorkerResult)
  | { op: 'error'; id: number; message: string; code?: string }
  | { op: 'aborted'; id: number };

/** Compressed bytes sent per message, and at most this many in flight per layer. */
const MESSAGE = 1 << 20;
const IN_FLIGHT = 8 << 20;

interface Pending {
  inFlight: number;
  wake?: () => void;
  settle?: { resolve: (r: WorkerResult) => void; reject: (e: Error) => void };
  failed?: Error;
}

class Slot {
  readonly worker: Worker;
  readonly jobs = new Map<number, Pending>();
  /** Exited or failed: it takes no more jobs. */
  dead = false;
  constructor(addon: string | undefined) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { addon } });
    this.worker.unref();
    this.worker.on('message', (m: Reply) => this.reply(m));
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`the gunzip worker exited (${code})`)));
  }
  private reply(m: Reply): void {
    const p = this.jobs.get(m.id);
    if (!p) return;
    if (m.op === 'ack') {
      p.inFlight -= m.n;
      p.wake?.();
    } else if (m.op === 'done') {
      this.jobs.delete(m.id);
      p.settle?.resolve(m);
    } else if (m.op === 'error') {
      this.jobs.delete(m.id);
      p.settle?.reject(Object.assign(new Error(m.message), { code: m.code }));
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
export class InflateJob {
  private buf = Buffer.allocUnsafeSlow(MESSAGE);
  private used = 0;
  private readonly hash = createHash('sha256');
  private n = 0;
  /** The worker has answered `end`: it closed the file and forgot the job. */
  private over = false;
  constructor(
    private readonly slot: Slot,
    private readonly id: number,
    private readonly p: Pending,
  ) {}

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

  private async flush(): Promise<void> {
    if (this.p.failed) throw this.p.failed;
    // a full block goes as it is (its own ArrayBuffer: allocUnsafeSlow); only the last, partial one is copied
    const whole = this.used === this.buf.buffer.byteLength && this.buf.byteOffset === 0;
    const out = (whole ? this.buf.buffer : this.buf.buffer.slice(0, this.used)) as ArrayBuffer;
    this.p.inFlight += this.used;
    this.slot.worker.postMessage({ op: 'data', id: this.id, buf: out }, [out]);
    this.buf = Buffer.allocUnsafeSlow(MESSAGE);
    this.used = 0;
    while (this.p.inFlight > IN_FLIGHT && !this.p.failed) await new Promise<void>((r) => (this.p.wake = r));
    this.p.wake = undefined;
    if (this.p.failed) throw this.p.failed;
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

/** Up to one worker per core, started on first use and ended by `close()`. */
export class InflatePool {
  private readonly slots: Slot[] = [];
  private next = 0;
  /** One worker per layer in flight (pull's default is 3): more did not help, fewer (one per core) was slower at load. */
  private readonly max = 4;
  private readonly addon = isalAddon();

  /** A job gunzipping into `file` (created exclusively by the worker) on the least busy worker. */
  start(file: string): InflateJob {
    for (let i = this.slots.length - 1; i >= 0; i--) if (this.slots[i]!.dead) this.slots.splice(i, 1);
    let slot = this.slots.find((s) => s.jobs.size === 0);
    if (!slot && this.slots.length < this.max) this.slots.push((slot = new Slot(this.addon)));
    slot ??= this.slots.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.next++;
    const p: Pending = { inFlight: 0 };
    slot.jobs.set(id, p);
    slot.worker.postMessage({ op: 'open', id, file });
    return new InflateJob(slot, id, p);
  }

  async close(): Promise<void> {
    const all = this.slots.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }
}
