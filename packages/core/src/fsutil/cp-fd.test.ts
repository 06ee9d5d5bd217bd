/**
 * `vbuild cp` into a container: a copy whose source read fails closes its write fd once, itself;
 * no stream closes it later behind its back, when the number may have been reused by another
 * open. Real kernel: /proc/self/mem is a regular file (size 0) whose read(2) at 0 is EIO.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { copyToContainer } from './cp.ts';

let top: string;
beforeAll(async () => {
  top = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-cp-fd-'));
});
afterAll(async () => {
  await fsp.rm(top, { recursive: true, force: true });
});

it('a failed copy does not close an fd opened after it (no double close)', async () => {
  const root = path.join(top, 'root');
  await fsp.mkdir(root);
  for (let n = 0; n < 5; n++) {
    // copied (the kernel reads it as empty) or the read error itself: never EBADF from closing
    // an fd that a failed stream closed already (the old cp: pipeline into a lent fd)
    const got = await copyToContainer(root, '/proc/self/mem', `/m${n}`).then(
      () => 'copied',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(['copied', 'EIO']).toContain(got);
    // the numbers the failed copy used, taken again at once, must stay ours
    const mine = Array.from({ length: 4 }, (_, i) => fs.openSync(path.join(top, `other${n}-${i}`), 'w'));
    await new Promise((r) => setTimeout(r, 30));
    for (const fd of mine) expect(() => fs.fstatSync(fd)).not.toThrow();
    for (const fd of mine) fs.closeSync(fd);
  }
});
