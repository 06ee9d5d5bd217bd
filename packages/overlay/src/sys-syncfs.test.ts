import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { syncFilesystem } from './sys.ts';

const src = fileURLToPath(new URL('../native/vlab-sys.c', import.meta.url));
let cc: string | undefined = 'cc';
try {
  execFileSync(cc, ['--version'], { stdio: 'ignore' });
} catch {
  cc = undefined;
  console.warn('syncFilesystem fallback test skipped: no C compiler (cc) to build a vlab-sys without syncfs');
}

describe.skipIf(!cc)('syncFilesystem with a vlab-sys built before it knew syncfs', () => {
  let tmp: string | undefined;
  afterAll(async () => {
    delete process.env.VLAB_NATIVE_DIR;
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('falls back to sync -f on its usage answer (through its server)', async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-stale-sys-'));
    // the real helper with its syncfs operation taken out: what an older build answers
    const old = (await fs.readFile(src, 'utf8')).replace('strcmp(argv[0], "syncfs") == 0', '0');
    expect(old).not.toBe(await fs.readFile(src, 'utf8'));
    await fs.writeFile(path.join(tmp, 'vlab-sys.c'), old);
    execFileSync(cc!, ['-O1', '-o', path.join(tmp, 'vlab-sys'), path.join(tmp, 'vlab-sys.c')]);
    const direct = spawnSync(path.join(tmp, 'vlab-sys'), ['syncfs', tmp], { encoding: 'utf8' });
    expect([direct.status, direct.stderr]).toEqual([2, expect.stringContaining('usage:')]);
    process.env.VLAB_NATIVE_DIR = tmp; // sysHelper() now finds the old one
    await fs.writeFile(path.join(tmp, 'f'), 'x');
    await expect(syncFilesystem(path.join(tmp, 'f'))).resolves.toBeUndefined();
  });
});
