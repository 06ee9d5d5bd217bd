/**
 * A context file swapped for a symlink to a host file between the walk and the read (a concurrent
 * writer in the context): the build copies the file walked or fails with E_CONTEXT_CHANGED; the
 * host file's bytes never reach an image, and its hash never reaches the hash cache.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { build, isVlabError } from '@vlab/image';
import { parseOutput } from '../packages/core/src/export/export.ts';
import { exec, freshStore, removeStore } from './helpers.ts';

let root: string;
let dir: string;
beforeAll(async () => {
  root = await freshStore();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-race-'));
});
afterAll(async () => {
  await removeStore(root);
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Swaps `ctx`/a between a hard link of the decoy and a link to `secret`, until killed. */
const SWAPPER = `
const fs = require('node:fs');
const [ctx, secret] = process.argv.slice(1);
process.chdir(ctx);
for (;;) {
  try { fs.unlinkSync('a.tmp'); } catch {}
  fs.symlinkSync(secret, 'a.tmp'); fs.renameSync('a.tmp', 'a');
  try { fs.unlinkSync('a.tmp2'); } catch {}
  fs.linkSync('decoy', 'a.tmp2'); fs.renameSync('a.tmp2', 'a');
}`;

it('a context file swapped for a link to a host file: the decoy or E_CONTEXT_CHANGED, never the host file', async () => {
  const secret = path.join(dir, 'secret');
  const SECRET = 'host-secret-bytes\n';
  await fsp.writeFile(secret, SECRET);
  const secretHash = createHash('sha256').update(SECRET).digest();
  const ctx = path.join(dir, 'ctx');
  await fsp.mkdir(ctx);
  // The same size as the secret: a size check alone would not tell them apart.
  await fsp.writeFile(path.join(ctx, 'decoy'), 'decoy-data-bytes!\n');
  await fsp.link(path.join(ctx, 'decoy'), path.join(ctx, 'a'));
  // COPY of the lone file (hashed, then copied) and of the directory (walked, hashed, packed).
  await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\nCOPY . /d/\n');
  await fsp.writeFile(path.join(ctx, '.dockerignore'), 'a.tmp*\n');
  const swapper = spawn(process.execPath, ['-e', SWAPPER, ctx, secret], { stdio: 'ignore' });
  const outcomes: string[] = [];
  try {
    const until = Date.now() + 3000;
    for (let n = 0; Date.now() < until || n < 4; n++) {
      const out = path.join(dir, `out${n}.tar`);
      try {
        await build({ context: ctx, root, noCache: true, output: [parseOutput(`type=tar,dest=${out}`)] });
      } catch (e) {
        // A link at `a` when COPY a resolves it: one leaving the context (resolved in-root: not found).
        if (isVlabError(e) && (e.code === 'E_CONTEXT_CHANGED' || e.code === 'E_CONTEXT_ESCAPE')) {
          outcomes.push(e.code);
          continue;
        }
        throw e;
      }
      const { stdout } = await exec('tar', ['-xOf', out]);
      expect(stdout, `build ${n}: the host file's bytes are in the image`).not.toContain('host-secret');
      outcomes.push('built');
      await fsp.rm(out);
    }
  } finally {
    swapper.kill();
  }
  const cache = fs.readFileSync(path.join(root, 'cache', 'filehash.bin'));
  expect(cache.includes(secretHash), "the host file's hash is in the hash cache").toBe(false);
  expect(cache.includes(secretHash.toString('hex')), "the host file's hash is in the hash cache").toBe(false);
  console.log(`context race: ${outcomes.length} builds: ${outcomes.join(' ')}`);
}, 30_000);
