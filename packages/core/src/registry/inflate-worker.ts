/**
 * The gunzip worker of inflate-pool.ts: plain CommonJS of Node's built-ins, evaluated from a
 * string (the CLI is one bundled file, and a worker script beside it would be a second file to
 * find). Per job it takes the compressed bytes in messages, gunzips them, hashes the tar and
 * writes it into a temp blob, and stops at `limit` tar bytes (a gzip bomb fills no disk).
 *
 * With ISA-L (vlab-isal.node) the inflate of a block runs on libuv's thread pool while this
 * thread hashes the block before it, and the writes run on the pool too: a layer's work is
 * spread over three threads. With zlib, zlib inflates on the pool and this thread hashes and
 * writes. Failures go back as `{ kind, message, code }`: 'bad' (not gzip) and 'big' (over the
 * limit) in `done`, after which the caller still checks the digest first; 'io' (the temp file)
 * as `error`. inflate-pool.ts and blob-get.ts make them VlabErrors.
 */
import { WRITEBACK_BYTES, Writeback } from '../store/writeback.ts';

export const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
// a class's source compiled with esbuild's keepNames (tsx) calls __name
const __name = (f) => f;
const Writeback = ${String(Writeback)};
const WRITEBACK = ${WRITEBACK_BYTES};
const OUT = ${1 << 20};
/** ISA-L's output buffers per job: two being inflated into or hashed, the others being written. */
const RING = 6;
const EMPTY = Buffer.alloc(0);
let isal;
if (workerData.addon) { const m = { exports: {} }; process.dlopen(m, workerData.addon); isal = m.exports; }
const jobs = new Map();
const post = (m) => parentPort.postMessage(m);
const stopped = (j) => j.bad || j.io;
/** Counts tar bytes against the job's limit; false (and the job failed) past it. */
function within(j, n) {
  j.size += n;
  if (j.size <= j.limit) return true;
  j.bad ??= { kind: 'big', message: 'it decompresses to more than ' + j.limit + ' bytes' };
  return false;
}
/** zlib's output: hashed and written here. */
function put(j, c) {
  if (stopped(j) || !within(j, c.length)) return void j.gz.destroy();
  j.hashT.update(c);
  try {
    for (let off = 0; off < c.length; ) off += fs.writeSync(j.fd, c, off, c.length - off);
    j.wb.grew(j.fd, j.size); // throws an earlier flush's error
  } catch (e) { j.io = e; }
}
function wake(j) { const w = j.waiter; j.waiter = undefined; if (w) w(); }
/**
 * ISA-L's output goes into 1 MiB buffers aligned in memory, each filled whole before it is
 * written, with O_DIRECT where the filesystem takes it: the tar does not pass through the page
 * cache. Copying it into fresh page-cache pages was the pull's biggest kernel cost here (a VM: up
 * to 2 CPU-s for 537 MB when the host had to back the pages; 0.09 s direct; bench/README.md "Pull
 * speed, session 22"). The last, partial buffer's unaligned tail goes through the plain fd.
 */
const ALIGN = 4096;
function writeAt(j, fd, buf, n, pos, done) {
  const from = (off) => fs.write(fd, buf, off, n - off, pos + off, (e, k) => {
    // a filesystem that refuses this direct write (alignment): the plain fd from now on
    if (e && e.code === 'EINVAL' && fd === j.dfd) { j.direct = false; return writeAt(j, j.fd, buf, n, pos, done); }
    if (e) return done(e);
    if (off + k < n) return from(off + k);
    if (fd === j.fd) try { j.wb.grew(j.fd, pos + n); } catch (e) { return done(e); } // an earlier flush's error
    done();
  });
  from(0);
}
/** Writes out[0, n) at pos on the thread pool; out is free again after. */
function putAsync(j, out, n, pos) {
  j.writing++;
  writeAt(j, j.direct ? j.dfd : j.fd, out, n, pos, (e) => { j.writing--; if (e) j.io ??= e; j.free.push(out); wake(j); });
}
/** out[start, start + made) came out of ISA-L: hashed and counted now, the buffer written once full. */
function took(j, out, start, made) {
  if (stopped(j) || !within(j, made)) return;
  j.hashT.update(out.subarray(start, start + made));
  if (start + made < OUT) return;
  putAsync(j, out, OUT, j.base);
  j.base += OUT;
  j.cur = undefined;
}
/** The last buffer, partly filled: its aligned part direct, the rest through the plain fd. */
async function tail(j) {
  const out = j.cur;
  j.cur = undefined;
  if (!out || !j.fill || stopped(j)) return;
  const aligned = j.direct ? j.fill - (j.fill % ALIGN) : 0;
  if (aligned) putAsync(j, out, aligned, j.base);
  j.tailed = aligned < j.fill;
  try { for (let off = aligned; off < j.fill; ) off += fs.writeSync(j.fd, out, off, j.fill - off, j.base + off); } catch (e) { j.io ??= e; }
}
async function outBuf(j) {
  while (!j.free.length) {
    if (j.allocated < RING) {
      j.allocated++;
      const raw = Buffer.allocUnsafeSlow(OUT + ALIGN);
      const pad = isal.misalign ? isal.misalign(raw, ALIGN) : 0;
      return raw.subarray(pad, pad + OUT);
    }
    await new Promise((r) => (j.waiter = r));
  }
  return j.free.pop();
}
async function drain(j) { while (j.writing) await new Promise((r) => (j.waiter = r)); }
function open(m) {
  const j = { id: m.id, fd: -1, hashT: crypto.createHash('sha256'), size: 0, limit: m.limit,
    wb: new Writeback(fs.fdatasync, WRITEBACK), bad: undefined, io: undefined };
  jobs.set(m.id, j);
  try { j.fd = fs.openSync(m.file, 'wx'); } catch (e) { j.io = e; }
  if (isal) {
    j.dfd = -1;
    if (j.fd >= 0) try { j.dfd = fs.openSync(m.file, fs.constants.O_WRONLY | fs.constants.O_DIRECT); } catch {} // not on this filesystem
    j.direct = j.dfd >= 0;
    j.base = 0;
    j.fill = 0;
    j.cur = undefined;
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
  j.ended = new Promise((res) => {
    j.gz.once('end', res);
    j.gz.once('close', res); // destroyed past the limit
    j.gz.once('error', (e) => { j.bad ??= { kind: 'bad', message: e.message }; res(); });
  });
}
/**
 * ISA-L: decode all of input, and then what the decoder still holds. The next inflate is started
 * on the pool before the output of the last one is hashed here.
 */
async function inflateIsal(j, input) {
  if (stopped(j)) return;
  let out = j.cur ?? (await outBuf(j));
  let start = j.cur ? j.fill : 0;
  j.cur = out;
  let running = isal.inflate(j.state, input, out.subarray(start));
  for (;;) {
    const [rc, used, made, fin] = await running;
    input = input.subarray(used);
    j.fin = fin === 1;
    let next;
    if (rc < 0) j.bad ??= { kind: 'bad', message: 'invalid gzip data (ISA-L error ' + rc + ')' };
    else if (!used && !made && !j.fin && input.length) j.bad ??= { kind: 'bad', message: 'gunzip made no progress' };
    else if (input.length) next = input;
    else if (start + made === OUT && !j.fin) next = EMPTY; // a full output: the decoder may hold more
    if (next && j.fin) { isal.init(j.state); j.fin = false; } // another gzip member follows
    const end = start + made;
    // the next inflate goes into the rest of this buffer, or a fresh one, while this part is hashed
    const nextOut = next && !stopped(j) ? (end < OUT ? out : await outBuf(j)) : undefined;
    const nextStart = nextOut === out ? end : 0;
    if (nextOut) running = isal.inflate(j.state, next, nextOut.subarray(nextStart));
    took(j, out, start, made);
    if (nextOut && nextOut !== out) j.cur = nextOut;
    j.fill = nextOut ? nextStart : end;
    if (!nextOut) return;
    out = nextOut;
    start = nextStart;
  }
}
function data(m) {
  const j = jobs.get(m.id);
  const buf = Buffer.from(m.buf);
  let acked = false;
  // the block goes back to be filled again (no 1 MiB allocation per message), once nothing reads it
  const ack = (done) => {
    if (acked) return;
    acked = true;
    if (done === true && m.buf.byteLength === ${1 << 20}) parentPort.postMessage({ op: 'ack', id: m.id, n: buf.length, buf: m.buf }, [m.buf]);
    else post({ op: 'ack', id: m.id, n: buf.length });
  };
  const done = () => ack(true);
  if (!j || stopped(j)) return done();
  if (isal) return void (j.chain = j.chain.then(() => inflateIsal(j, buf)).then(done, done));
  j.gz.write(buf, done);
  if (stopped(j)) ack(false); // zlib may still hold it
}
async function close(j) {
  jobs.delete(j.id);
  if (isal) { await j.chain; await drain(j); }
  const flushed = await j.wb.settled(); // a failed flush fails the job: its pages are not on disk
  if (flushed) j.io ??= flushed;
  // the tail went through the page cache: its writeback error is this fd's to see (writeback.ts)
  if (j.direct && j.tailed && !j.io) try { fs.fdatasyncSync(j.fd); } catch (e) { j.io = e; }
  if (j.dfd >= 0) fs.closeSync(j.dfd);
  j.dfd = -1;
  if (j.fd >= 0) fs.closeSync(j.fd);
  j.fd = -1;
}
async function end(m) {
  const j = jobs.get(m.id);
  if (!j) return;
  if (isal) {
    await j.chain;
    if (!stopped(j) && !j.fin) j.bad = { kind: 'bad', message: 'unexpected end of file' };
    await tail(j);
  } else if (!stopped(j)) {
    j.gz.end();
    await j.ended;
  } else j.gz.destroy();
  await close(j);
  if (j.io) return post({ op: 'error', id: j.id, kind: 'io', message: j.io.message, code: j.io.code });
  post({ op: 'done', id: j.id, tar: j.hashT.digest('hex'), size: j.size, bad: j.bad });
}
async function abort(m) {
  const j = jobs.get(m.id);
  if (j) { j.gz?.destroy(); await close(j); }
  post({ op: 'aborted', id: m.id });
}
parentPort.on('message', (m) => {
  if (m.op === 'open') open(m);
  else if (m.op === 'data') data(m);
  else if (m.op === 'end') end(m).catch((e) => post({ op: 'error', id: m.id, kind: 'io', message: e.message, code: e.code }));
  else if (m.op === 'abort') abort(m);
});
`;
