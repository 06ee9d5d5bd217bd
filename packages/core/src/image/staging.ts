/**
 * Content read from an untrusted archive or layout is staged before anything is named: small JSON
 * documents are kept in memory, everything else streams into temporary blobs of the store (not
 * yet visible under any digest). Only once the whole image checks out are the needed members
 * committed; on any error every temp blob is dropped, so a refused load leaves the store as it was.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { VlabError } from '@vlab/errors';
import type { Blobs, Digest } from '../store/types.ts';
import { MAX_JSON_BYTES } from './validate.ts';

/** All JSON documents kept in memory for one load, together (an archive holds a few kB of them). */
const MAX_JSON_TOTAL = 64 << 20;

export interface Staged {
  digest: Digest;
  size: number;
  /** sha256 of the content once gunzipped, when it is gzip (else undefined: not gzip, or bad gzip). */
  gunzippedDigest?: Digest;
  gzip: boolean;
  /** The bytes, when the content looked like a JSON document small enough to keep. */
  bytes?: Buffer;
  commit?: (expected: string) => Promise<unknown>;
  abort?: () => Promise<void>;
}

export class Staging {
  private readonly open = new Set<Staged>();
  private jsonBytes = 0;
  constructor(private readonly blobs: Blobs) {}

  /** Read `stream` (`size` bytes, as the archive declares) into memory or a temp blob. */
  async stage(stream: Readable, size: number): Promise<Staged> {
    // A Node stream in front of tar-stream's entry (a streamx stream), whose errors, while it is
    // read by hand below, would otherwise reject a promise nobody holds.
    const front = new PassThrough();
    pipeline(stream, front).catch(() => undefined);
    const it = front[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let headLen = 0;
    // Enough of the start to tell JSON ('{' or '[' after blanks) and gzip (1f 8b) apart.
    while (headLen < Math.min(size, 64)) {
      const r = await it.next();
      if (r.done) break;
      head.push(r.value);
      headLen += r.value.length;
    }
    const start = Buffer.concat(head);
    const rest = (async function* () {
      yield start;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    })();
    if (size <= MAX_JSON_BYTES && /^[\s]*[[{]/.test(start.subarray(0, 64).toString('latin1'))) {
      this.jsonBytes += size;
      if (this.jsonBytes > MAX_JSON_TOTAL)
        throw new VlabError('E_BAD_ARCHIVE', `more than ${MAX_JSON_TOTAL >> 20} MiB of JSON documents in one image`);
      const chunks: Buffer[] = [];
      for await (const c of rest) chunks.push(c);
      const bytes = Buffer.concat(chunks);
      return {
        digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
        size: bytes.length,
        bytes,
        gzip: false,
      };
    }
    return this.toTempBlob(Readable.from(rest), start[0] === 0x1f && start[1] === 0x8b);
  }

  /** Stream into a temp blob, hashing the bytes (and, for gzip, the gunzipped bytes) on the way. */
  private async toTempBlob(source: Readable, gzip: boolean): Promise<Staged> {
    const blob = await this.blobs.create();
    const raw = createHash('sha256');
    let size = 0;
    const inner = gzip ? gunzipHasher() : undefined;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        raw.update(chunk);
        size += chunk.length;
        if (inner) inner.write(chunk).then(() => cb(null, chunk), cb);
        else cb(null, chunk);
      },
    });
    const staged: Staged = {
      digest: 'sha256:' as Digest,
      size: 0,
      gzip,
      commit: (expected) => blob.commit(expected),
      abort: () => blob.abort(),
    };
    this.open.add(staged);
    try {
      await pipeline(source, tap, blob.stream);
    } catch (e) {
      this.open.delete(staged);
      await blob.abort();
      throw e;
    }
    staged.digest = `sha256:${raw.digest('hex')}`;
    staged.size = size;
    staged.gunzippedDigest = await inner?.end();
    return staged;
  }

  /** Name `s` in the store under `expected` (its digest, checked again). */
  async commit(s: Staged, expected: string): Promise<void> {
    if (s.bytes) {
      await this.blobs.putBytes(s.bytes);
      return;
    }
    if (!this.open.has(s)) return; // already committed for another reference
    this.open.delete(s);
    await s.commit!(expected);
  }

  /** Drop a staged member nobody needs (an archive may hold a later copy of the same name). */
  async drop(s: Staged): Promise<void> {
    if (this.open.delete(s)) await s.abort!();
  }

  /** Drop every temp blob not committed. Call in a finally. */
  async abortAll(): Promise<void> {
    const left = [...this.open];
    this.open.clear();
    await Promise.all(left.map((s) => s.abort!()));
  }
}

/** A gunzip that only hashes its output; a corrupt stream gives no digest instead of an error. */
function gunzipHasher(): { write(chunk: Buffer): Promise<void>; end(): Promise<Digest | undefined> } {
  const gunzip = createGunzip();
  const h = createHash('sha256');
  let failed = false;
  gunzip.on('data', (c: Buffer) => h.update(c));
  gunzip.on('error', () => (failed = true));
  const ended = new Promise<void>((res) => {
    gunzip.once('end', res);
    gunzip.once('error', () => res());
  });
  return {
    async write(chunk) {
      if (failed) return;
      if (!gunzip.write(chunk)) await Promise.race([once(gunzip, 'drain').catch(() => undefined), ended]);
    },
    async end() {
      if (!failed) gunzip.end();
      await ended;
      return failed ? undefined : `sha256:${h.digest('hex')}`;
    },
  };
}
