/**
 * A committed snapshot's content is on disk before the metadata names it: a RUN step's upper is
 * mounted `volatile` (no sync when it is unmounted), an unpacked layer is written without
 * fsyncs, and after a power loss a snapshot named but half-written would be a lower of every
 * later step. Checked on ext4, where data not yet written back has a delayed-allocation extent
 * (`filefrag -v` flags it `delalloc`) for the ~30 s until the kernel's writeback gets to it.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotter } from './snapshotter.ts';

const base = path.join(os.tmpdir(), 'vlab-durable-');
let tmp = '';
let mounted = '';
let reason = '';
beforeAll(async () => {
  tmp = await fs.mkdtemp(base);
  // A filesystem of its own: a syncfs anywhere else on a shared one (another test file's commit
  // or pull, run in parallel) would write the control's data back before it is looked at.
  if (process.getuid?.() === 0) {
    try {
      const img = path.join(tmp, 'fs.img');
      const mnt = path.join(tmp, 'mnt');
      await fs.writeFile(img, '');
      await fs.truncate(img, 64 << 20);
      execFileSync('mkfs.ext4', ['-q', '-F', img], { stdio: 'ignore' });
      await fs.mkdir(mnt);
      execFileSync('mount', ['-o', 'loop', img, mnt], { stdio: 'ignore' });
      mounted = mnt;
    } catch (e) {
      console.warn(`commit-durable: no private ext4 (${(e as Error).message}): using ${tmp}, shared with other tests`);
    }
  }
  try {
    const fstype = execFileSync('stat', ['-f', '-c', '%T', root()], { encoding: 'utf8' }).trim();
    if (fstype !== 'ext2/ext3') reason = `${root()} is on ${fstype}, not ext4: no delalloc flag to look at`;
    execFileSync('filefrag', ['-V'], { stdio: 'ignore' });
  } catch (e) {
    reason ||= `no filefrag (e2fsprogs): ${(e as Error).message}`;
  }
  if (reason) console.warn(`commit-durable: skipped: ${reason}`);
});
afterAll(async () => {
  if (mounted) execFileSync('umount', ['-l', mounted]);
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Where the snapshotters live: the private ext4 when there is one. */
const root = () => mounted || tmp;

/** filefrag's extent flags of `file`: `delalloc` while its data is only in the page cache. */
const extents = (file: string) => execFileSync('filefrag', ['-v', file], { encoding: 'utf8' });

describe('snapshot commit', () => {
  it.each([
    ['native', 1],
    ['overlay', 1],
    ['overlay', 100],
  ] as const)('%s, %d file(s): the content is written back before the commit names it', async (driver, n) => {
    if (reason) return;
    const s = await createSnapshotter(path.join(root(), `${driver}-${n}`), { driver });
    await s.prepare('active', undefined);
    const { dir } = await s.writableDir('active');
    await fs.mkdir(path.join(dir, 'sub'));
    // the control: freshly written data is not on disk yet (else this test proves nothing). A
    // background writeback (a loaded machine past its dirty threshold) may get there first: then
    // the files are written anew, a few times, before the control counts as failed.
    let files: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      files = Array.from({ length: n }, (_, i) => path.join(dir, 'sub', `data${attempt}-${i}.bin`));
      for (const f of files) await fs.writeFile(f, Buffer.alloc(64 * 1024, 7));
      if (/delalloc/.test(extents(files[n - 1]!))) break;
    }
    expect(extents(files[n - 1]!)).toMatch(/delalloc/);
    await s.commit('named', 'active');
    // a commit keeps the snapshot's id, so its dir (and the files) stay where they were
    for (const f of [files[0]!, files[n - 1]!]) expect(extents(f)).not.toMatch(/delalloc/);
  });
});
