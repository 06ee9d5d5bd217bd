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
