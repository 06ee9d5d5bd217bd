import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { jsZstdDecompress } from './zstd-decode.ts';

const zstdCli = (() => {
  try {
    execFileSync('zstd', ['--version']);
    return undefined;
  } catch {
    return 'the zstd CLI (Debian zstd) is not installed';
  }
})();
if (zstdCli) console.warn(`zstd-decode tests skipped: ${zstdCli}`);

async function decode(input: Buffer, piece = 7000): Promise<Buffer> {
  const parts: Buffer[] = [];
  const chunks: Buffer[] = [];
  for (let o = 0; o < input.length; o += piece) chunks.push(input.subarray(o, o + piece));
  await pipeline(
    Readable.from(chunks),
    jsZstdDecompress(),
    new Writable({
      write(c: Buffer, _e, cb) {
        parts.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

const zstd = (data: Buffer, args: string[] = []) =>
  execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 64 << 20 });

describe.skipIf(zstdCli)('zstd layers on any Node (fzstd behind frame checks)', () => {
  const random = createCipheriv('aes-256-ctr', Buffer.alloc(32, 1), Buffer.alloc(16)).update(Buffer.alloc(1 << 20));
  const data = Buffer.concat([Buffer.from('a tar of text\n'.repeat(200_000)), random, Buffer.alloc(3 << 20)]);

  it('decodes what the zstd CLI writes: several frames, a checksum, a skippable frame, any chunking', async () => {
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('hello')]);
    const two = Buffer.concat([zstd(data, ['-19', '--check']), skippable, zstd(Buffer.from('tail\n'), ['--no-check'])]);
    expect((await decode(two)).equals(Buffer.concat([data, Buffer.from('tail\n')]))).toBe(true);
    expect((await decode(two, 1)).length).toBe(data.length + 5);
  });

  it('refuses a window over 128 MiB before decoding, and a truncated or foreign stream, as E_LAYER_INVALID', async () => {
    const big = zstd(data, ['--long=30', '--single-thread', '--no-content-size']);
    await expect(decode(big)).rejects.toMatchObject({ code: 'E_LAYER_INVALID', message: /window/ });
    const ok = zstd(data);
    await expect(decode(ok.subarray(0, ok.length - 100))).rejects.toMatchObject({ code: 'E_LAYER_INVALID' });
    await expect(decode(Buffer.from('not zstd at all'))).rejects.toMatchObject({ code: 'E_LAYER_INVALID' });
  });
});
