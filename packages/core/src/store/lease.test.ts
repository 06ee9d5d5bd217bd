import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from './blobs.ts';
import { Lease, liveLeases } from './lease.ts';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-lease-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** A tmpfs of its own at `root`, full while `fn` runs its first part. */
async function onTmpfs(opts: string, fn: () => Promise<void>): Promise<void> {
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', root]);
  try {
    await fn();
  } finally {
    execFileSync('umount', [root]);
  }
}

async function fill(): Promise<string> {
  const filler = path.join(root, 'filler');
  const st = await fsp.statfs(root);
  execFileSync('fallocate', ['-l', String(st.bavail * st.bsize), filler]);
  return filler;
}

const names = (from: number, n: number) => Array.from({ length: n }, (_, i) => sha256(`b${from + i}`));

describe.skipIf(process.getuid?.() !== 0)('a lease on a full disk', () => {
  it('a partly written append does not swallow the next hold’s first name', async () => {
    await onTmpfs('size=256k', async () => {
      const lease = new Lease(root);
      await lease.hold({ blobs: names(0, 38) }); // ~2926 B: the next 30 cross the page
      const filler = await fill();
      await expect(lease.hold({ blobs: names(100, 30) })).rejects.toMatchObject({ code: 'E_NO_SPACE' });
      await fsp.rm(filler);
      const next = sha256('next');
      await lease.hold({ blobs: [next] });
      const live = (await liveLeases(root)).blobs;
      expect(live.has(next)).toBe(true);
      for (const b of names(0, 38)) expect(live.has(b)).toBe(true);
    });
  });

  it('a fresh store whose leases/ cannot be made fails E_NO_SPACE and holds nothing', async () => {
    await onTmpfs('size=256k,nr_inodes=3', async () => {
      for (const f of ['x', 'y']) await fsp.writeFile(path.join(root, f), ''); // every inode left
      const lease = new Lease(root);
      const b = sha256('a');
      await expect(lease.hold({ blobs: [b] })).rejects.toMatchObject({ code: 'E_NO_SPACE' });
      for (const f of ['x', 'y']) await fsp.rm(path.join(root, f));
      expect(await lease.hold({ blobs: [b] })).toEqual({ blobs: [b], snapshots: [] });
      expect((await liveLeases(root)).blobs).toEqual(new Set([b]));
    });
  });

  it('a hold of names whose append is in flight is not told they are held before they are', async () => {
    await onTmpfs('size=256k', async () => {
      await new Lease(root).hold({ blobs: [sha256('first')] }); // makes leases/
      const filler = await fill();
      const lease = new Lease(root); // a file of its own: its first line needs a page
      const many = names(0, 3);
      const a = lease.hold({ blobs: many });
      const b = lease.hold({ blobs: [many[0]!] });
      await expect(a).rejects.toMatchObject({ code: 'E_NO_SPACE' });
      const second = await b.then(
        () => 'held',
        (e: { code?: string }) => e.code,
      );
      await fsp.rm(filler);
      if (second === 'held') expect((await liveLeases(root)).blobs.has(many[0]!)).toBe(true);
      else expect(second).toBe('E_NO_SPACE');
    });
  });
});
