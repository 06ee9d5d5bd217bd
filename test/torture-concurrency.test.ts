/**
 * Concurrency torture: 4 CLI builds at once on one store (the same Dockerfile twice, two others,
 * one shared base) while `rmi` and `prune --all` race them from other processes. Every build must
 * succeed (the base is never removed, so no failure is a clean one here), every image a build
 * tagged must be complete, and fsck must be clean afterwards.
 * TORTURE_ROUNDS (default 3) sets the number of rounds.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsck, openEngine, prune, Store } from '@vlab/image';
import { freshStore, makeContext, removeStore } from './helpers.ts';
import { runCli, sleep, startCli } from './torture-helpers.ts';

const ROUNDS = Number(process.env.TORTURE_ROUNDS ?? 3);

const DOCKERFILES = {
  a: 'FROM busybox\nARG ROUND\nCOPY data/ /data/\nRUN cat /data/* > /all && echo $ROUND >> /all\nRUN wc -c /all > /count\n',
  b: 'FROM busybox\nARG ROUND\nRUN echo "b $ROUND" > /b\nCOPY data/f0.txt /a\nRUN cat /a /b > /ab\n',
  c: 'FROM busybox\nARG ROUND\nRUN echo "c $ROUND" > /c && sleep 0.2\nCOPY data/ /cdata/\nRUN ls /cdata >> /c\n',
};

let root: string;
const dirs: string[] = [];
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

async function context(round: number): Promise<string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < 20; i++) files[`data/f${i}.txt`] = `round ${round} file ${i}\n`;
  for (const [k, v] of Object.entries(DOCKERFILES)) files[`${k}.Dockerfile`] = v;
  const dir = await makeContext(files);
  dirs.push(dir);
  return dir;
}

/** Every blob the image of `tag` needs is in the store. */
async function complete(store: Store, tag: string): Promise<boolean> {
  const img = await store.resolve(tag);
  if (!img) return false;
  for (const l of img.manifest.layers) if (!(await store.blobs.has(l.digest))) return false;
  return true;
}

describe('torture: concurrent builds, rmi and prune on one store', () => {
  it(`${ROUNDS} rounds of 4 builds racing rmi and prune --all`, async () => {
    const failures: string[] = [];
    let prunes = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const ctx = await context(round);
      const kinds = ['a', 'a', 'b', 'c'] as const;
      const builds = kinds.map(
        (k, i) =>
          startCli(root, [
            'build',
            '--progress=plain',
            '-f',
            path.join(ctx, `${k}.Dockerfile`),
            '--build-arg',
            `ROUND=${round}`,
            '-t',
            `t${round}-${i}`,
            ctx,
          ]).done,
      );
      let running = true;
      const all = Promise.all(builds).finally(() => (running = false));
      // prune in this process in a tight loop (another process than the builds), and the CLI's
      // rmi + prune --all beside it
      const engine = await openEngine(root);
      const pruner = (async () => {
        while (running) {
          await prune(engine.store, engine.cache, engine.snapshots, { all: true });
          prunes++;
          await sleep(20);
        }
      })();
      const remover = (async () => {
        while (running) {
          if (round > 1) await runCli(root, ['rmi', ...kinds.map((_, i) => `t${round - 1}-${i}`)]);
          await runCli(root, ['prune', '--all']);
          prunes++;
        }
      })();
      const results = await all;
      await Promise.all([pruner, remover]);
      results.forEach((r, i) => {
        if (r.code !== 0)
          failures.push(
            `round ${round} build ${i} (${kinds[i]}): exit ${r.code} ${r.stderr.trim().split('\n').at(-1)?.slice(0, 300)}`,
          );
      });
      const store = await Store.open(root);
      for (let i = 0; i < kinds.length; i++)
        if (results[i]!.code === 0) expect(await complete(store, `t${round}-${i}`)).toBe(true);
      await engine.store.lease.release();
      expect((await fsck(root)).problems, `fsck after round ${round}`).toEqual([]);
    }
    console.log(`concurrency: ${ROUNDS} rounds × 4 builds, ${prunes} prunes raced, ${failures.length} failed`);
    expect(failures).toEqual([]);
  }, 600_000);
});
