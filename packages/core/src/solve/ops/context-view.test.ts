import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BuildContext } from '../../context/context.ts';
import { FileHashCache } from '../../context/hash-cache.ts';
import { contextView } from './context-view.ts';
import type { Undo } from './bind-source.ts';

const run = promisify(execFile);
const root = process.getuid?.() === 0;
if (!root) console.warn('context-view: the other-filesystem case needs root (a tmpfs mount): skipped');

// The same-filesystem case (hard links) runs end to end in test/run-mount.test.ts.
describe.skipIf(!root)('contextView on another filesystem than the context', () => {
  let ctxDir: string;
  let scratch: string;
  beforeEach(async () => {
    ctxDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-view-ctx-'));
    scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-view-tmpfs-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', scratch]);
    for (const [f, body] of Object.entries({ 'keep/a': 'a\n', 'keep/x.log': 'log\n', 'big/b': 'b'.repeat(5000) })) {
      await fsp.mkdir(path.dirname(path.join(ctxDir, f)), { recursive: true });
      await fsp.writeFile(path.join(ctxDir, f), body);
    }
    await fsp.chmod(path.join(ctxDir, 'keep/a'), 0o751);
    await fsp.symlink('../big/b', path.join(ctxDir, 'keep/l'));
    await fsp.writeFile(path.join(ctxDir, '.dockerignore'), '*.log\n*/*.log\n');
  });
  afterEach(async () => {
    await run('umount', [scratch]);
    await fsp.rm(scratch, { recursive: true, force: true });
    await fsp.rm(ctxDir, { recursive: true, force: true });
  });

  it('copies what the context shows (modes, owners, links kept), bounded, and is removed by its undo', async () => {
    const ctx = await BuildContext.open(ctxDir, new FileHashCache());
    const undo: Undo = [];
    const view = await contextView(ctx, 'keep', scratch, undo);
    expect((await fsp.readdir(view)).sort()).toEqual(['a', 'l']);
    const [orig, copy] = await Promise.all([fsp.stat(path.join(ctxDir, 'keep/a')), fsp.stat(path.join(view, 'a'))]);
    expect(copy.ino).not.toBe(orig.ino); // a copy: another filesystem
    expect([copy.mode, copy.uid]).toEqual([orig.mode, orig.uid]);
    expect(Math.abs(copy.mtimeMs - orig.mtimeMs)).toBeLessThan(0.01); // utimes takes seconds as a double
    expect(await fsp.readlink(path.join(view, 'l'))).toBe('../big/b');
    await expect(contextView(ctx, '', scratch, undo, 1000)).rejects.toMatchObject({
      code: 'E_RUN_MOUNT',
      message: expect.stringContaining('needs more than 1000 bytes copied'),
    });
    for (const u of undo.reverse()) await u();
    expect(await fsp.readdir(scratch)).toEqual([]);
  });

  it('names that are not UTF-8 are viewed as their bytes (copied and hard-linked)', async () => {
    const b = (s: string) => Buffer.from(s, 'latin1');
    const at = (...p: string[]) => Buffer.concat([b(ctxDir + '/keep/'), ...p.map(b)]);
    fs.writeFileSync(at('\xfe'), 'fe\n');
    fs.mkdirSync(at('\xff'));
    fs.writeFileSync(at('\xff/f\xfe'), 'ff\n');
    fs.symlinkSync(b('\xfe'), at('ln\xfe'));
    const ctx = await BuildContext.open(ctxDir, new FileHashCache());
    const sameFs = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-view-same-'));
    const undo: Undo = [];
    try {
      for (const where of [scratch, sameFs]) {
        const view = await contextView(ctx, 'keep', where, undo);
        const names = (p: string) => fs.readdirSync(Buffer.concat([b(view + '/'), b(p)]), { encoding: 'buffer' });
        expect(
          names('')
            .map((n) => n.toString('latin1'))
            .sort(),
        ).toEqual(['a', 'l', 'ln\xfe', '\xfe', '\xff']);
        expect(names('\xff').map((n) => n.toString('latin1'))).toEqual(['f\xfe']);
        expect(fs.readFileSync(Buffer.concat([b(view + '/'), b('\xfe')]), 'utf8')).toBe('fe\n');
        expect(fs.readlinkSync(Buffer.concat([b(view + '/'), b('ln\xfe')]), 'buffer')).toEqual(b('\xfe'));
      }
    } finally {
      for (const u of undo.reverse()) await u();
      await fsp.rm(sameFs, { recursive: true, force: true });
    }
  });
});
