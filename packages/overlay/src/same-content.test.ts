import { describe, it, expect } from 'vitest';
import { sameBytes, sameContent } from './same-content.ts';

async function* chunks(parts: number[][], seen?: { closed: boolean; pulled: number }) {
  try {
    for (const p of parts) {
      if (seen) seen.pulled++;
      yield Buffer.from(p);
    }
  } finally {
    if (seen) seen.closed = true;
  }
}

describe('sameContent / sameBytes', () => {
  it('compares across different chunk boundaries (empty chunks too)', async () => {
    expect(await sameBytes(chunks([[1, 2], [3], [], [4, 5]]), chunks([[1], [2, 3, 4], [5]]))).toBe(true);
    expect(await sameBytes(chunks([[1, 2], [3]]), chunks([[1], [2, 4]]))).toBe(false);
    expect(await sameBytes(chunks([[1, 2]]), chunks([[1, 2], [3]]))).toBe(false);
    expect(await sameBytes(chunks([]), chunks([[], []]))).toBe(true);
  });

  it('stops at the first difference and closes both streams', async () => {
    const a = { closed: false, pulled: 0 };
    const b = { closed: false, pulled: 0 };
    const many = Array.from({ length: 100 }, () => [0]);
    expect(await sameBytes(chunks([[9], ...many], a), chunks([[8], ...many], b))).toBe(false);
    expect([a.pulled, b.pulled, a.closed, b.closed]).toEqual([1, 1, true, true]);
  });

  it('reads the bytes only for equal sizes and whole-second mtimes', async () => {
    let opened = 0;
    const bytes = (): [AsyncIterable<Buffer>, AsyncIterable<Buffer>] => {
      opened++;
      return [chunks([[1]]), chunks([[2]])];
    };
    expect(await sameContent({ size: 1, mtimeMs: 1_000 }, { size: 2, mtimeMs: 1_000 }, bytes)).toBe(false);
    expect(await sameContent({ size: 1, mtimeMs: 1_000 }, { size: 1, mtimeMs: 2_000 }, bytes)).toBe(false);
    expect(await sameContent({ size: 1, mtimeMs: 1_000.5 }, { size: 1, mtimeMs: 1_000.5 }, bytes)).toBe(true);
    expect(opened).toBe(0);
    expect(await sameContent({ size: 1, mtimeMs: 1_000 }, { size: 1, mtimeMs: 1_000 }, bytes)).toBe(false);
    expect(opened).toBe(1);
  });

  it('skips the bytes only for a single-named copy whose ctime is strictly before the marker', async () => {
    let opened = 0;
    const bytes = (): [AsyncIterable<Buffer>, AsyncIterable<Buffer>] => {
      opened++;
      return [chunks([[1]]), chunks([[2]])];
    };
    const b = { size: 1, mtimeMs: 1_000 };
    const a = (ctimeMs: number, nlink = 1) => ({ size: 1, mtimeMs: 1_000, ctimeMs, nlink });
    expect(await sameContent(a(4_999), b, bytes, 5_000)).toBe(true);
    expect(opened).toBe(0);
    // the marker's own tick, after it, no marker, a hard link: the bytes decide
    expect(await sameContent(a(5_000), b, bytes, 5_000)).toBe(false);
    expect(await sameContent(a(6_000), b, bytes, 5_000)).toBe(false);
    expect(await sameContent(a(4_999), b, bytes)).toBe(false);
    expect(await sameContent(a(4_999, 2), b, bytes, 5_000)).toBe(false);
    expect(opened).toBe(4);
  });
});
