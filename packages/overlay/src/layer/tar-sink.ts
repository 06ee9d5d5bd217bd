/**
 * A layer tar written synchronously into one reused buffer and handed to `out` a full buffer at
 * a time (`out` must be done with it when it returns: a synchronous file write). Memory stays one
 * buffer whatever the layer holds: a stream of fresh chunks leaves them all to the garbage
 * collector, which lets ~64 MB of them pile up before it runs. Same bytes as tarEntryBytes
 * (tar-write.ts): one header encoder, file bytes, zero padding.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { encodeHeader, padding, END_OF_ARCHIVE, type TarEntry } from './tar-format.ts';
import { whiteoutHeader } from './tar-write.ts';
import { hostPath } from '../fsname.ts';
import { openSameSync, type FileIdentity } from '../open-same.ts';

/** Above this size a file is checked for growth after its bytes are read (as the streamed path does). */
const SMALL = 256 * 1024;
/** A big file lets the event loop run after every this many bytes. */
const BREATHE_BYTES = 8 << 20;

export class TarSink {
  private readonly buf: Buffer;
  private used = 0;

  constructor(
    private readonly out: (chunk: Buffer) => void,
    chunkBytes = 1 << 20,
  ) {
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }

  /**
   * One entry: its header, then for a file `h.size` bytes of host path `file` and the padding.
   * E_DIFF_CHANGED when its size changed. With `want` (what a walk saw), the file is opened as
   * that very file (open-same.ts), else E_CONTEXT_CHANGED.
   */
  async entry(h: TarEntry, file?: string, want?: FileIdentity): Promise<void> {
    this.put(encodeHeader(h));
    if (h.type !== 'file' || h.size === 0 || file === undefined) return;
    const fd = want ? openSameSync(file, want, h.name).fd : openSync(hostPath(file), 'r');
    let n = 0;
    try {
      let breathed = 0;
      while (n < h.size) {
        if (this.used === this.buf.length) this.flush();
        const got = readSync(fd, this.buf, this.used, Math.min(h.size - n, this.buf.length - this.used), n);
        if (!got) break;
        this.used += got;
        n += got;
        if (n - breathed >= BREATHE_BYTES) {
          breathed = n;
          await new Promise((r) => setImmediate(r));
        }
      }
      if (n === h.size && h.size > SMALL && readSync(fd, Buffer.alloc(1), 0, 1, n) > 0) n++;
    } finally {
      closeSync(fd);
    }
    if (n !== h.size)
      throw new VlabError('E_DIFF_CHANGED', `${h.name} changed size while being archived: build again`, {
        details: { path: h.name },
      });
    this.zeros(padding(h.size));
  }

  /** A whiteout marker entry (whiteoutHeader). */
  whiteout(name: string): void {
    this.put(whiteoutHeader(name));
  }

  /** The end-of-archive blocks; everything handed to `out`. */
  end(): void {
    this.put(END_OF_ARCHIVE);
    this.flush();
  }

  private flush(): void {
    if (!this.used) return;
    this.out(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  private put(b: Buffer): void {
    for (let off = 0; off < b.length;) {
      if (this.used === this.buf.length) this.flush();
      const n = b.copy(this.buf, this.used, off);
      this.used += n;
      off += n;
    }
  }

  private zeros(count: number): void {
    while (count > 0) {
      if (this.used === this.buf.length) this.flush();
      const n = Math.min(count, this.buf.length - this.used);
      this.buf.fill(0, this.used, this.used + n);
      this.used += n;
      count -= n;
    }
  }
}
