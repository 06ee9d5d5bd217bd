import { createCipheriv, createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipEngine, gzipStream, looksRandom } from './pgzip.ts';

async function gz(chunks: Buffer[], level?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(c: Buffer, _e, cb) {
      parts.push(c);
      cb();
    },
  });
  await pipeline(Readable.from(chunks), gzipStream(level), out);
  return Buffer.concat(parts);
}

const random = (n: number, seed: number) =>
  createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(Buffer.alloc(n));
const text = (n: number) =>
  Buffer.from('the layer of a container image is a tar of files\n'.repeat(Math.ceil(n / 49))).subarray(0, n);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('gzipStream (parallel segments, one member)', () => {
  // text, random (stored), text again: 1 MiB segments cut across all three
  const data = Buffer.concat([text(1_500_000), random(2_200_000, 1), text(900_000)]);

  it('gives one gzip member that gunzip and the gzip CLI read back exactly', async () => {
    const out = await gz([data]);
    expect(gunzipSync(out).equals(data)).toBe(true);
    expect(execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 64 << 20 }).equals(data)).toBe(true);
    expect(execFileSync('gzip', ['-lv'], { input: out }).toString()).not.toMatch(/multiple|trailing/i);
    // as small as one zlib stream to within a few percent (matches reach across segments)
    expect(out.length).toBeLessThan(gzipSync(data, { level: 6 }).length * 1.03);
  });

  it('is reproducible: the same bytes whatever the chunking and timing', async () => {
    const once = await gz([data]);
    const pieces: Buffer[] = [];
    for (let o = 0; o < data.length; o += 7919) pieces.push(data.subarray(o, o + 7919));
    expect(sha(await gz(pieces))).toBe(sha(once));
    expect(sha(await gz([data], 1))).not.toBe(sha(once));
  });

  it('stores random segments, compresses the rest; empty input is a valid empty gzip', async () => {
    expect(looksRandom(random(1 << 20, 2))).toBe(true);
    expect(looksRandom(text(1 << 20))).toBe(false);
    expect(looksRandom(Buffer.concat([random(900_000, 3), text(148_576)]))).toBe(false);
    const r = random(3 << 20, 4);
    const out = await gz([r]);
    expect(out.length - r.length).toBeGreaterThan(0);
    expect(out.length - r.length).toBeLessThan(r.length / 1000); // stored blocks: a 5-byte header each
    expect(gunzipSync(await gz([])).length).toBe(0);
  });
});

const addon = fileURLToPath(new URL('../../native/bin/vlab-isal.node', import.meta.url));
const noAddon = !existsSync(addon) || process.env.VLAB_NO_NATIVE === '1';
if (noAddon) console.warn(`pgzip igzip tests skipped: ${addon} is not built (libisal-dev; scripts/build-native.sh)`);

describe.skipIf(noAddon)('gzipStream on igzip (levels 1-3, vlab-isal.node)', () => {
  const data = Buffer.concat([text(1_300_000), random(1_100_000, 5), text(2_700_000)]);

  it('is what levels 1-3 run on, one member gunzip and the gzip CLI read back, the same bytes every time', async () => {
    expect(gzipEngine()).toBe('igzip');
    for (const level of [1, 3]) {
      const out = await gz([data], level);
      expect(gunzipSync(out).equals(data)).toBe(true);
      expect(execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 64 << 20 }).equals(data)).toBe(true);
      expect(execFileSync('gzip', ['-lv'], { input: out }).toString()).not.toMatch(/multiple|trailing/i);
      expect(out.length).toBeLessThan(gzipSync(data, { level: 1 }).length * 1.05);
      const pieces: Buffer[] = [];
      for (let o = 0; o < data.length; o += 65_521) pieces.push(data.subarray(o, o + 65_521));
      expect(sha(await gz(pieces, level))).toBe(sha(out));
    }
  });
});
