/**
 * A big file is flushed to disk as it grows: an fdatasync every 64 MiB, on libuv's thread pool.
 * Otherwise the dirty pages wait for the commit's fsync, and the disk starts writing only after
 * all the hashing is done (1 GiB: ~2 s of writing at the end, serial). One place for every
 * writer of blobs: store/blobs.ts's streams and the pull's gunzip workers
 * (registry/inflate-pool.ts, which run this class's source: it uses nothing but its arguments).
 *
 * A flush's error (EIO, ENOSPC) belongs to the file: the kernel reports a writeback error once per
 * open file, so the commit's own fsync on a fresh fd would not see it, and the blob would be named
 * with pages that never reached the disk. It is kept, thrown by the next `grew`, and returned by
 * `settled`: the writer fails with it.
 */
import type fs from 'node:fs';

export const WRITEBACK_BYTES = 64 << 20;

export class Writeback {
  private synced = 0;
  private syncing: Promise<void> = Promise.resolve();
  private failed: NodeJS.ErrnoException | undefined;
  constructor(
    private readonly fdatasync: typeof fs.fdatasync,
    private readonly every: number,
    /**
     * Called with each range a flush made durable (page-cache.ts: its pages leave the cache), so
     * a big blob cycles through a window of pages instead of taking as many new ones as it has.
     */
    private readonly flushed?: (fd: number, from: number, to: number) => void,
  ) {}
  /**
   * The file on `fd` is now `size` bytes long: flush it when it grew by `every` since the last
   * flush. Throws the error of an earlier flush.
   */
  grew(fd: number, size: number): void {
    if (this.failed) throw this.failed;
    if (size - this.synced < this.every) return;
    const from = this.synced;
    this.synced = size;
    this.syncing = this.syncing.then(
      () =>
        new Promise<void>((res) =>
          this.fdatasync(fd, (e) => {
            this.failed ??= e ?? undefined;
            if (!this.failed) this.flushed?.(fd, from, size);
            res();
          }),
        ),
    );
  }
  /** Once no flush still runs on the fd (before it is closed): the first flush's error, if any. */
  settled(): Promise<NodeJS.ErrnoException | undefined> {
    return this.syncing.then(() => this.failed);
  }
}
