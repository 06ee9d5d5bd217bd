/**
 * Disk full: a store on a small tmpfs (the overlay upper dirs live there too) fills during a COPY
 * (the layer blob, and with VLAB_NO_FAST_COPY the copy into the mounted upper) and during a RUN
 * (the command's own writes into its upper). Each ends in E_NO_SPACE — the RUN fails inside with
 * its own ENOSPC and exit code, which is the error's cause — with no partial blob, no step
 * snapshot left, fsck clean, and the next build works once space is freed.
 */
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { build, fsck, isVlabError, openEngine, prune } from '@vlab/image';
import { makeContext, removeStore, repo, snapshotRecords } from './helpers.ts';
import { runCli } from './torture-helpers.ts';

const MB = 1 << 20;
let scratch: string;
let mnt: string;
let root: string;
let filler: string;

beforeAll(async () => {
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-full-'));
  mnt = path.join(scratch, 'fs');
  await fsp.mkdir(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', mnt]);
  root = path.join(mnt, 'store');
  execFileSync('bash', [path.join(repo, 'examples/hello/make-base.sh')], {
    env: { ...process.env, VLAB_ROOT: root, SOURCE_DATE_EPOCH: '0' },
    stdio: 'pipe',
  });
  filler = path.join(mnt, 'filler');
});
// each case starts from the base image alone
beforeEach(async () => {
  const e = await openEngine(root);
  await prune(e.store, e.cache, e.snapshots, { all: true });
  await e.store.lease.release();
});
afterAll(async () => {
  await removeStore(root); // and its RUNs' cgroup parent
  execFileSync('umount', ['-R', '-l', mnt]);
  await fsp.rm(scratch, { recursive: true, force: true });
});

/** Leave about `free` bytes on the tmpfs. */
async function fill(free: number): Promise<void> {
  await fsp.rm(filler, { force: true });
  const st = await fsp.statfs(mnt);
  const size = st.bfree * st.bsize - free;
  const fh = await fsp.open(filler, 'w');
  const chunk = Buffer.alloc(MB, 1);
  for (let n = 0; n < size; n += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, size - n));
  await fh.close();
}

async function expectNoSpace(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(isVlabError(e, 'E_NO_SPACE'), String(e)).toBe(true);
  return e as Error;
}

/** No temp blob, no temporary snapshot, nothing fsck would list. */
async function expectClean(): Promise<void> {
  const blobs = await fsp.readdir(path.join(root, 'blobs', 'sha256'));
  expect(blobs.filter((n) => !/^[a-f0-9]{64}$/.test(n))).toEqual([]);
  expect(Object.keys(await snapshotRecords(root)).filter((k) => !k.startsWith('sha256:'))).toEqual([]);
  expect((await fsck(root)).problems).toEqual([]);
}

describe('torture: the store filesystem fills up', () => {
  it('during a COPY (the layer blob): E_NO_SPACE, no partial blob, fsck clean; works once space is freed', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nCOPY big.bin /big.bin\n' });
    await fsp.writeFile(path.join(ctx, 'big.bin'), Buffer.alloc(12 * MB, 3));
    await fill(6 * MB);
    await expectNoSpace(build({ context: ctx, root }));
    await expectClean();
    // the CLI says it the same way, with exit 1
    const cli = await runCli(root, ['build', '--progress=plain', ctx]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/no space left on the store's filesystem .*\[E_NO_SPACE\]/);
    await fsp.rm(filler);
    await build({ context: ctx, root });
    await expectClean();
    await fsp.rm(ctx, { recursive: true });
  });

  it('during a COPY into the mounted step (no fast path): E_NO_SPACE, fsck clean; works once space is freed', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nCOPY big2.bin /big2.bin\n' });
    await fsp.writeFile(path.join(ctx, 'big2.bin'), Buffer.alloc(12 * MB, 4));
    await fill(6 * MB);
    process.env.VLAB_NO_FAST_COPY = '1';
    try {
      await expectNoSpace(build({ context: ctx, root }));
      await expectClean();
      await fsp.rm(filler);
      await build({ context: ctx, root });
    } finally {
      delete process.env.VLAB_NO_FAST_COPY;
    }
    await expectClean();
    await fsp.rm(ctx, { recursive: true });
  });

  it('during a RUN (its writes into the upper dir): the RUN fails inside, the build says E_NO_SPACE; works once space is freed', async () => {
    const ctx = await makeContext({
      Dockerfile: 'FROM busybox\nRUN dd if=/dev/zero of=/fill bs=1M count=12 && echo done\n',
    });
    await fill(6 * MB);
    const e = await expectNoSpace(build({ context: ctx, root }));
    const causes: unknown[] = [];
    for (let c: unknown = e.cause; c; c = (c as Error).cause) causes.push(c);
    expect(
      causes.some((c) => isVlabError(c, 'E_RUN_FAILED')),
      String(e),
    ).toBe(true);
    expect(e.message).toContain('No space left on device'); // what dd said inside
    await expectClean();
    await fsp.rm(filler);
    await build({ context: ctx, root });
    await expectClean();
    await fsp.rm(ctx, { recursive: true });
  });
});
