/**
 * A big file is flushed to disk as it grows: an fdatasync every 64 MiB, on libuv's thread pool.
 * Otherwise the dirty pages wait for the commit's fsync, and the disk starts writing only after
 * all the hashing is done (1 GiB: ~2 s of writing at the end, serial). One place for every
 * writer of blobs: store/blobs.ts's streams and the pull's gunzip workers
 * (registry/inflate-pool.ts, which run this class's source: it uses nothing but its arguments).
 */
import type fs from 'node:fs';

export const WRITEBACK_BYTES = 64 << 20;

export class Writeback {
  private synced = 0;
  private syncing: Promise<void> = Promise.resolve();
  constructor(
    private readonly fdatasync: typeof fs.fdatasync,
    private readonly every: number,
  ) {}
  /** The file on `fd` is now `size` bytes long: flush it when it grew by `every` since the last flush. */
  grew(fd: number, size: number): void {
    if (size - this.synced < this.every) return;
    this.synced = size;
    this.syncing = this.syncing.then(() => new Promise<void>((res) => this.fdatasync(fd, () => res())));
  }
  /** Once no flush still runs on the fd (before it is closed). */
  settled(): Promise<void> {
    return this.syncing;
  }
}
