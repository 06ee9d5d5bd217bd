/**
 * A context changed by a concurrent writer between the walk and the reads (the context is
 * untrusted): a file swapped for a symlink to a host file, a directory swapped for a symlink to a
 * host directory. The build copies what it walked or fails with E_CONTEXT_CHANGED (or a not-found
 * / escape error where a source is resolved while it is a link); no host file's bytes, name,
 * metadata or hash reach an image, the hash cache or a RUN.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, isVlabError } from '@vlab/image';
import { parseOutput } from '../packages/core/src/export/export.ts';
import { exec, freshStore, removeStore } from './helpers.ts';

let root: string;
let top: string;
/** This walk's directory under `top`. */
let dir: string;
beforeAll(async () => {
  root = await freshStore();
  top = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-race-'));
});
afterAll(async () => {
  await removeStore(root);
  await fsp.rm(top, { recursive: true, force: true });
});

/** Swaps `ctx`/NAME between a hard link of DECOY and a link to SECRET (PAUSE ms in each state), until killed. */
const FILE_SWAPPER = `
const fs = require('node:fs');
const [ctx, name, decoy, secret, pause] = process.argv.slice(1);
process.chdir(ctx);
const wait = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  try { fs.unlinkSync(name + '.tmp'); } catch {}
  fs.symlinkSync(secret, name + '.tmp'); fs.renameSync(name + '.tmp', name);
  if (+pause) Atomics.wait(wait, 0, 0, +pause);
  try { fs.unlinkSync(name + '.tmp2'); } catch {}
  fs.linkSync(decoy, name + '.tmp2'); fs.renameSync(name + '.tmp2', name);
  if (+pause) Atomics.wait(wait, 0, 0, +pause);
}`;

/** Swaps directory `ctx`/d with a link to the host directory HOST (d.away meanwhile), ~1 ms each, until killed. */
const DIR_SWAPPER = `
const fs = require('node:fs');
const [ctx, host] = process.argv.slice(1);
process.chdir(ctx);
const pause = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  fs.renameSync('d', 'd.away'); fs.symlinkSync(host, 'd');
  Atomics.wait(pause, 0, 0, 1);
  fs.unlinkSync('d'); fs.renameSync('d.away', 'd');
  Atomics.wait(pause, 0, 0, 1);
}`;

/** Codes a build may end with while the swapper runs: what it read changed, or a source was a link then. */
const RACE_CODES = ['E_CONTEXT_CHANGED', 'E_CONTEXT_ESCAPE', 'E_COPY_SOURCE', 'E_RUN_MOUNT'];

/**
 * Builds `ctx` (no cache, a rootfs tar) again and again for `ms` (at least 4 builds) while
 * `swapper` runs with `args`; `check` looks at each tar built. Returns the outcomes.
 */
async function race(
  ctx: string,
  swapper: string,
  args: string[],
  ms: number,
  check: (tar: string, n: number) => Promise<void>,
) {
  const child = spawn(process.execPath, ['-e', swapper, ctx, ...args], { stdio: 'ignore' });
  const outcomes: string[] = [];
  try {
    const until = Date.now() + ms;
    for (let n = 0; Date.now() < until || n < 4; n++) {
      const out = path.join(dir, `out${n}.tar`);
      try {
        await build({ context: ctx, root, noCache: true, output: [parseOutput(`type=tar,dest=${out}`)] });
      } catch (e) {
        if (isVlabError(e) && RACE_CODES.includes(e.code)) {
          outcomes.push(e.code);
          continue;
        }
        throw e;
      }
      await check(out, n);
      outcomes.push('built');
      await fsp.rm(out);
    }
  } finally {
    child.kill();
    await new Promise((r) => child.once('exit', r));
  }
  return outcomes;
}

const SECRET = 'host-secret-bytes\n';

/**
 * Each race by vlab-walk, and by the JS walk that replaces it when the helpers are not built
 * (VLAB_NO_NATIVE=1 hides them all, as a machine without a C compiler has none).
 */
describe.each([
  ['vlab-walk', undefined],
  ['the JS walk (VLAB_NO_NATIVE=1)', '1'],
] as const)('%s', (_walk, noNative) => {
  const saved = process.env.VLAB_NO_NATIVE;
  beforeAll(async () => {
    dir = path.join(top, noNative ? 'js' : 'native');
    await fsp.mkdir(dir);
    if (noNative) process.env.VLAB_NO_NATIVE = noNative;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.VLAB_NO_NATIVE;
    else process.env.VLAB_NO_NATIVE = saved;
  });
  it('a context file swapped for a link to a host file: the decoy or E_CONTEXT_CHANGED, never the host file', async () => {
    const secret = path.join(dir, 'secret');
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
    const outcomes = await race(ctx, FILE_SWAPPER, ['a', 'decoy', secret, '0'], 3000, async (out, n) => {
      const { stdout } = await exec('tar', ['-xOf', out]);
      expect(stdout, `build ${n}: the host file's bytes are in the image`).not.toContain('host-secret');
    });
    const cache = fs.readFileSync(path.join(root, 'cache', 'filehash.bin'));
    expect(cache.includes(secretHash), "the host file's hash is in the hash cache").toBe(false);
    expect(cache.includes(secretHash.toString('hex')), "the host file's hash is in the hash cache").toBe(false);
    console.log(`context race: ${outcomes.length} builds: ${outcomes.join(' ')}`);
  }, 30_000);

  it('ADD of a context archive swapped for a link to a host archive: the walked archive is unpacked, never the host one', async () => {
    const ctx = path.join(dir, 'ctx-add');
    const src = path.join(dir, 'add-src');
    await fsp.mkdir(path.join(src, 'in'), { recursive: true });
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(src, 'in', 'host-secret'), SECRET);
    await exec('tar', ['-cf', path.join(dir, 'secret.tar'), '-C', path.join(src, 'in'), 'host-secret']);
    await fsp.writeFile(path.join(src, 'decoy'), 'decoy\n');
    await exec('tar', ['-cf', path.join(ctx, 'decoy.tar'), '-C', src, 'decoy']);
    await fsp.link(path.join(ctx, 'decoy.tar'), path.join(ctx, 'a.tar'));
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nADD a.tar /x/\n');
    await fsp.writeFile(path.join(ctx, '.dockerignore'), 'a.tar.tmp*\n');
    const outcomes = await race(
      ctx,
      FILE_SWAPPER,
      ['a.tar', 'decoy.tar', path.join(dir, 'secret.tar'), '1'],
      3000,
      async (out, n) => {
        const { stdout } = await exec('tar', ['-tf', out]);
        expect(stdout, `build ${n}: the host archive was unpacked`).not.toContain('host-secret');
        expect(stdout).toContain('x/decoy');
      },
    );
    console.log(`ADD archive race: ${outcomes.length} builds: ${outcomes.join(' ')}`);
  }, 30_000);

  /** A host directory with a symlink, a directory and a file under the names the context's `d` has. */
  async function hostDir(): Promise<string> {
    const host = path.join(dir, 'host-dir-MARK');
    if (fs.existsSync(host)) return host;
    await fsp.mkdir(path.join(host, 'sub'), { recursive: true, mode: 0o711 });
    await fsp.chmod(path.join(host, 'sub'), 0o711);
    await fsp.symlink('HOST-LINK-TARGET', path.join(host, 'l'));
    await fsp.writeFile(path.join(host, 'secret'), SECRET);
    await fsp.writeFile(path.join(host, 'sub', 'hostfile'), SECRET); // what a walk of d/sub through the link would list
    await fsp.utimes(path.join(host, 'sub'), new Date('2001-02-03'), new Date('2001-02-03'));
    return host;
  }

  /** A context with a directory `d` (a link, a directory, a file at the host directory's names). */
  async function dirContext(name: string, dockerfile: string, files: boolean): Promise<string> {
    const ctx = path.join(dir, name);
    await fsp.mkdir(path.join(ctx, 'd', 'sub'), { recursive: true });
    await fsp.symlink('in-context', path.join(ctx, 'd', 'l'));
    // Regular files are opened as the files walked (a host one is refused): without them, only the
    // reads of links and directories are left to look at.
    if (files) {
      await fsp.writeFile(path.join(ctx, 'd', 'secret'), 'decoy\n');
      await fsp.writeFile(path.join(ctx, 'd', 'sub', 'f'), 'f\n');
    }
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), dockerfile);
    await fsp.writeFile(path.join(ctx, '.dockerignore'), 'd.away\n');
    return ctx;
  }

  it('a context directory swapped for a link to a host directory: no host link target, name or metadata in the image', async () => {
    const host = await hostDir();
    const ctx = await dirContext('ctx-dir', 'FROM scratch\nCOPY d /d/\nCOPY --parents d/sub /p/\n', false);
    const outcomes = await race(ctx, DIR_SWAPPER, [host], 1500, async (out, n) => {
      const { stdout } = await exec('tar', ['-tvf', out]);
      expect(stdout, `build ${n}: a host link target is in the image`).not.toContain('HOST-LINK-TARGET');
      expect(stdout, `build ${n}: a host path is in the image`).not.toContain('MARK');
      expect(stdout, `build ${n}: a host file's name is in the image`).not.toContain('hostfile');
      expect(stdout, `build ${n}: a host directory's metadata is in the image`).not.toMatch(/drwx--x--x|2001-02-03/);
      expect((await exec('tar', ['-xOf', out])).stdout).not.toContain('host-secret');
    });
    console.log(`directory race (COPY): ${outcomes.length} builds: ${outcomes.join(' ')}`);
  }, 30_000);

  it('a bound context directory swapped for a link to a host directory: the RUN never sees the host directory', async () => {
    const host = await hostDir();
    const ctx = await dirContext(
      'ctx-bind',
      "FROM busybox\nRUN --mount=type=bind,source=d,target=/m sh -c 'cat /m/secret > /seen; ls -la /m/ /m/sub > /ls; true'\n",
      true,
    );
    const outcomes = await race(ctx, DIR_SWAPPER, [host], 2000, async (out, n) => {
      const { stdout } = await exec('tar', ['-xOf', out, 'seen', 'ls']);
      expect(stdout, `build ${n}: the RUN read the host directory`).not.toContain('host-secret');
      expect(stdout, `build ${n}: the RUN listed the host directory`).not.toContain('HOST-LINK-TARGET');
    });
    console.log(`directory race (RUN bind): ${outcomes.length} builds: ${outcomes.join(' ')}`);
  }, 30_000);

  it('a Dockerfile or .dockerignore in the context that links to a host file is read in the context, never on the host', async () => {
    const host = path.join(dir, 'host-df');
    await fsp.writeFile(host, 'HOSTSECRET one\n[HOSTSECRET\n');
    const ctx = path.join(dir, 'ctx-df');
    await fsp.mkdir(ctx);
    await fsp.symlink(host, path.join(ctx, 'Dockerfile'));
    const e = await build({ context: ctx, root, noCache: true }).catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'E_DOCKERFILE_NOT_FOUND' });
    expect(String((e as Error).message)).not.toContain('HOSTSECRET');
    // A .dockerignore link: the link's in-context target is missing, so nothing is ignored (and no error shows the host file).
    await fsp.rm(path.join(ctx, 'Dockerfile'));
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY . /c/\n');
    await fsp.symlink(host, path.join(ctx, '.dockerignore'));
    const out = path.join(dir, 'df.tar');
    await build({ context: ctx, root, noCache: true, output: [parseOutput(`type=tar,dest=${out}`)] });
    expect((await exec('tar', ['-tf', out])).stdout).toContain('c/Dockerfile');
  });
});
