/**
 * gzip layers are gunzipped, hashed twice and written off the main thread. On the main thread a
 * 1 GiB pull spent ~5 s of CPU in 256 KiB zlib callbacks, two sha256 updates per chunk, file
 * writes and the garbage they left, while the second core idled (bench/README.md "Registry"). Here
 * a worker thread per core takes the compressed bytes in 1 MiB messages (transferred, not copied),
 * hashes them, gunzips them on libuv's thread pool, hashes the tar and writes it with synchronous
 * writes into a temp blob; the main thread only reads sockets. The worker reports both digests;
 * the caller checks them and names the blob (blob-get.ts), so nothing changes in what is verified.
 *
 * The worker's code is plain CommonJS of Node's built-ins, evaluated from a string: the CLI is one
 * bundled file, and a worker script beside it would be a second file to find.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * native/vlab-igzip.c (ISA-L's inflate), from the sources (src/registry/) or the CLI bundle
 * (dist/); undefined when it is not built (no libisal) or VLAB_GUNZIP=zlib: zlib then.
 */
function isalAddon(): string | undefined {
  if (process.env.VLAB_GUNZIP === 'zlib') return undefined;
  for (const u of ['../../native/bin/vlab-igzip.node', '../native/bin/vlab-igzip.node']) {
    const p = fileURLToPath(new URL(u, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const WRITEBACK = ${64 << 20};
const OUT = ${1 << 20};
let isal;
if (workerData.addon) { const m = { exports: {} }; process.dlopen(m, workerData.addon); isal = m.exports; }
const jobs = new Map();
const post = (m) => parentPort.postMessage(m);
function put(j, c) {
  j.hashT.update(c);
  j.size += c.length;
  if (j.io) return;
  try { for (let off = 0; off < c.length; ) off += fs.writeSync(j.fd, c, off, c.length - off); } catch (e) { j.io = e; return; }
  if (j.size - j.synced >= WRITEBACK) {
    j.synced = j.size; // flushed as it grows, off this thread: the disk writes while we inflate
    j.syncing = j.syncing.then(() => new Promise((res) => fs.fdatasync(j.fd, () => res())));
  }
}
function open(m) {
  const j = { id: m.id, fd: -1, hashC: crypto.createHash('sha256'), hashT: crypto.createHash('sha256'), n: 0, size: 0,
    synced: 0, syncing: Promise.resolve(), bad: undefined, io: undefined };
  jobs.set(m.id, j);
  try { j.fd = fs.openSync(m.file, 'wx'); } catch (e) { j.io = e; }
  if (isal) {
    j.state = Buffer.alloc(isal.stateSize());
    isal.init(j.state);
    j.out = Buffer.allocUnsafe(OUT);
    j.fin = false;
    return;
  }
  j.gz = zlib.createGunzip({ chunkSize: ${256 << 10} });
  j.gz.on('data', (c) => put(j, c));
  j.ended = new Promise((res) => { j.gz.once('end', res); j.gz.once('error', (e) => { j.bad ??= e; res(); }); });
}
/** ISA-L: decode all of buf now (the output buffer is reused: put() hashes and writes it at once). */
function inflateSync(j, buf) {
  while (buf.length) {
    if (j.fin) { isal.init(j.state); j.fin = false; } // another gzip member follows
    const [rc, used, made, fin] = isal.inflate(j.state, buf, j.out);
    if (rc < 0) { j.bad = new Error('invalid gzip data (ISA-L error ' + rc + ')'); return; }
    if (made) put(j, j.out.subarray(0, made));
    buf = buf.subarray(used);
    j.fin = fin === 1;
    if (!used && !made && !j.fin) { j.bad = new Error('gunzip made no progress'); return; }
  }
  // the end of the input may leave output inside the decoder
  for (;;) {
    const [rc, , made, fin] = isal.inflate(j.state, Buffer.alloc(0), j.out);
    if (rc < 0) { j.bad = new Error('invalid gzip data (ISA-L error ' + rc + ')'); return; }
    if (made) put(j, j.out.subarray(0, made));
    j.fin = j.fin || fin === 1;
    if (made < j.out.length) return;
  }
}
function data(m) {
  const j = jobs.get(m.id);
  const buf = Buffer.from(m.buf);
  let acked = false;
  const ack = () => { if (!acked) post({ op: 'ack', id: m.id, n: buf.length }); acked = true; };
  if (!j) return ack();
  j.hashC.update(buf);
  j.n += buf.length;
  // after bad gzip the bytes are still hashed: a wrong digest is the better report
  if (j.bad || j.io) return ack();
  if (isal) { inflateSync(j, buf); return ack(); }
  j.gz.write(buf, ack);
  if (j.bad) ack();
}
async function close(j) {
  jobs.delete(j.id);
  await j.syncing;
  if (j.fd >= 0) fs.closeSync(j.fd);
  j.fd = -1;
}
async function end(m) {
  const j = jobs.get(m.id);
  if (!j) return;
  if (isal) {
    if (!j.bad && !j.fin) j.bad = new Error('unexpected end of file');
  } else if (!j.bad && !j.io) {
    j.gz.end();
    await j.ended;
  } else j.gz.destroy();
  await close(j);
  if (j.io) return post({ op: 'error', id: j.id, message: j.io.message, code: j.io.code });
  post({ op: 'done', id: j.id, digest: j.hashC.digest('hex'), n: j.n, tar: j.hashT.digest('hex'), size: j.size,
    bad: j.bad ? j.bad.message : undefined });
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

/** What a worker found: the compressed bytes' digest and count, the tar's digest and size, and why gunzip failed. */
export interface InflateResult {
  digest: string;
  n: number;
  tar: string;
  size: number;
  bad?: string;
}

type Reply =
  | { op: 'ack'; id: number; n: number }
  | ({ op: 'done'; id: number } & InflateResult)
  | { op: 'error'; id: number; message: string; code?: string }
  | { op: 'aborted'; id: number };

/** Compressed bytes sent per message, and at most this many in flight per layer. */
const MESSAGE = 1 << 20;
const IN_FLIGHT = 8 << 20;

interface Pending {
  inFlight: number;
  wake?: () => void;
  settle?: { resolve: (r: InflateResult) => void; reject: (e: Error) => void };
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
      p.settle?.resolve({ digest: '', n: 0, tar: '', size: 0 });
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
  /** The worker has answered `end`: it closed the file and forgot the job. */
  private over = false;
  constructor(
    private readonly slot: Slot,
    private readonly id: number,
    private readonly p: Pending,
  ) {}

  /** Take `chunk`; resolves once the worker has room for more (backpressure on the socket). */
  async write(chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length;) {
      const n = chunk.copy(this.buf, this.used, off);
      this.used += n;
      off += n;
      if (this.used === MESSAGE) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.p.failed) throw this.p.failed;
    const out = this.buf.buffer.slice(0, this.used) as ArrayBuffer;
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
      return await this.finish('end');
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

  private finish(op: 'end' | 'abort'): Promise<InflateResult> {
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
  private readonly max = Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length));
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
