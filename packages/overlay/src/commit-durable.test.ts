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
let reason = '';
beforeAll(async () => {
  tmp = await fs.mkdtemp(base);
  try {
    const fstype = execFileSync('stat', ['-f', '-c', '%T', tmp], { encoding: 'utf8' }).trim();
    if (fstype !== 'ext2/ext3') reason = `${tmp} is on ${fstype}, not ext4: no delalloc flag to look at`;
    execFileSync('filefrag', ['-V'], { stdio: 'ignore' });
  } catch (e) {
    reason ||= `no filefrag (e2fsprogs): ${(e as Error).message}`;
  }
  if (reason) console.warn(`commit-durable: skipped: ${reason}`);
});
afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

/** filefrag's extent flags of `file`: `delalloc` while its data is only in the page cache. */
const extents = (file: string) => execFileSync('filefrag', ['-v', file], { encoding: 'utf8' });

describe('snapshot commit', () => {
  it.each([
    ['native', 1],
    ['overlay', 1],
    ['overlay', 100],
  ] as const)('%s, %d file(s): the content is written back before the commit names it', async (driver, n) => {
    if (reason) return;
    const s = await createSnapshotter(path.join(tmp, `${driver}-${n}`), { driver });
    await s.prepare('active', undefined);
    const { dir } = await s.writableDir('active');
    await fs.mkdir(path.join(dir, 'sub'));
    const files = Array.from({ length: n }, (_, i) => path.join(dir, 'sub', `data${i}.bin`));
    for (const f of files) await fs.writeFile(f, Buffer.alloc(64 * 1024, 7));
    // the control: freshly written data is not on disk yet (else this test proves nothing)
    expect(extents(files[n - 1]!)).toMatch(/delalloc/);
    await s.commit('named', 'active');
    // a commit keeps the snapshot's id, so its dir (and the files) stay where they were
    for (const f of [files[0]!, files[n - 1]!]) expect(extents(f)).not.toMatch(/delalloc/);
  });
});
