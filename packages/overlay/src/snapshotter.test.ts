import * as vitest from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSnapshotter, snapshotterSuite } from './index.ts';

for (const driver of ['overlay', 'native'] as const) {
  snapshotterSuite(
    driver,
    async () => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), `vlab-snap-${driver}-`));
      const snapshotter = await createSnapshotter(root, { driver });
      vitest.expect(snapshotter.driver).toBe(driver);
      return { snapshotter, cleanup: () => fs.rm(root, { recursive: true, force: true }) };
    },
    vitest,
  );
}

vitest.describe('the overlay probe remembered in the root (probe.json)', () => {
  if (process.getuid?.() !== 0) console.warn('probe.json tests skipped: overlay mounts need root');
  const fresh = () => fs.mkdtemp(path.join(os.tmpdir(), 'vlab-probe-'));
  const userxattr = (s: unknown) => (s as { userxattr: boolean }).userxattr;
  vitest.it.skipIf(process.getuid?.() !== 0)('is written after a probe, and read by the next open', async () => {
    const root = await fresh();
    try {
      vitest.expect(userxattr(await createSnapshotter(root, { driver: 'overlay' }))).toBe(false);
      const saved = JSON.parse(await fs.readFile(path.join(root, 'probe.json'), 'utf8'));
      vitest.expect(saved).toMatchObject({ kernel: os.release(), realRoot: true, userxattr: false });
      // another root (another process, for the in-memory answer) with the same stamp: not probed
      const next = await fresh();
      await fs.writeFile(
        path.join(next, 'probe.json'),
        JSON.stringify({ ...saved, dev: (await fs.stat(next)).dev, userxattr: true }),
      );
      vitest.expect(userxattr(await createSnapshotter(next, { driver: 'overlay' }))).toBe(true);
      await fs.rm(next, { recursive: true, force: true });
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
  vitest.it.skipIf(process.getuid?.() !== 0)('is probed again for another kernel', async () => {
    const root = await fresh();
    try {
      const dev = (await fs.stat(root)).dev;
      const stale = { kernel: 'another-kernel', dev, realRoot: true, userxattr: true };
      await fs.writeFile(path.join(root, 'probe.json'), JSON.stringify(stale));
      vitest.expect(userxattr(await createSnapshotter(root, { driver: 'overlay' }))).toBe(false);
      const saved = JSON.parse(await fs.readFile(path.join(root, 'probe.json'), 'utf8'));
      vitest.expect(saved.kernel).toBe(os.release());
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
