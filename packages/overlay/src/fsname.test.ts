import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hasEscapes, hostPath, nameBytes, nameFromBytes } from './fsname.ts';

describe('file names as bytes (surrogateescape)', () => {
  it('valid UTF-8 is its plain string, the same as Buffer#toString', () => {
    for (const s of ['a/b.txt', 'na\ufffdme', 'é/日本/😀', '']) {
      const b = Buffer.from(s);
      expect(nameFromBytes(b)).toBe(s);
      expect(hasEscapes(s)).toBe(false);
      expect(nameBytes(s).equals(b)).toBe(true);
      expect(hostPath(s)).toBe(s);
    }
  });

  it('a byte outside valid UTF-8 is one lone surrogate, and back', () => {
    const b = Buffer.from([0x6e, 0xff, 0x2f, 0xfe, 0xc3, 0xa9, 0xed, 0xa0, 0x80, 0xc0, 0xaf]);
    const s = nameFromBytes(b);
    expect(s).toBe('n\udcff/\udcfeé\udced\udca0\udc80\udcc0\udcaf');
    expect(hasEscapes(s)).toBe(true);
    expect(nameBytes(s).equals(b)).toBe(true);
    expect(hostPath(s)).toEqual(b);
  });

  it('any bytes round-trip, and two byte strings never share a name', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), fc.uint8Array({ maxLength: 24 }), (x, y) => {
        const a = Buffer.from(x);
        const b = Buffer.from(y);
        expect(nameBytes(nameFromBytes(a)).equals(a)).toBe(true);
        expect(nameFromBytes(a) === nameFromBytes(b)).toBe(a.equals(b));
      }),
      { numRuns: 2000 },
    );
  });
});
