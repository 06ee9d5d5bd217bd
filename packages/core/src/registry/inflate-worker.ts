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
/** ISA-L's output: out[0, made) hashed now, written at its offset on the thread pool; out is free again after. */
function putAsync(j, out, made) {
  const pos = j.size;
  if (stopped(j) || !within(j, made)) return void j.free.push(out);
  j.hashT.update(out.subarray(0, made));
  j.writing++;
  const done = (e) => { j.writing--; if (e) j.io ??= e; j.free.push(out); wake(j); };
  const from = (off) => fs.write(j.fd, out, off, made - off, pos + off, (e, n) => (e ? done(e) : off + n < made ? from(off + n) : done()));
  from(0);
  try { j.wb.grew(j.fd, j.size); } catch (e) { j.io ??= e; }
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
  const j = { id: m.id, fd: -1, hashT: crypto.createHash('sha256'), size: 0, limit: m.limit,
    wb: new Writeback(fs.fdatasync, WRITEBACK), bad: undefined, io: undefined };
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
  let out = await outBuf(j);
  let running = isal.inflate(j.state, input, out);
  for (;;) {
    const [rc, used, made, fin] = await running;
    input = input.subarray(used);
    j.fin = fin === 1;
    let next;
    if (rc < 0) j.bad ??= { kind: 'bad', message: 'invalid gzip data (ISA-L error ' + rc + ')' };
    else if (!used && !made && !j.fin && input.length) j.bad ??= { kind: 'bad', message: 'gunzip made no progress' };
    else if (input.length) next = input;
    else if (made === OUT && !j.fin) next = EMPTY; // a full output: the decoder may hold more
    if (next && j.fin) { isal.init(j.state); j.fin = false; } // another gzip member follows
    const nextOut = next && !stopped(j) ? await outBuf(j) : undefined;
    if (nextOut) running = isal.inflate(j.state, next, nextOut);
    if (made) putAsync(j, out, made);
    else j.free.push(out);
    if (!nextOut) return;
    out = nextOut;
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
  if (j.fd >= 0) fs.closeSync(j.fd);
  j.fd = -1;
}
async function end(m) {
  const j = jobs.get(m.id);
  if (!j) return;
  if (isal) {
    await j.chain;
    if (!stopped(j) && !j.fin) j.bad = { kind: 'bad', message: 'unexpected end of file' };
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
