/**
 * Differential suite: every case in test/differential/cases is built by vbuild and by Debian's
 * buildah from the same busybox base, both exported as OCI layouts and unpacked with umoci; the
 * rootfs listings and the configs must be equal except for the known differences in known.ts.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildahBuild,
  buildahConfig,
  buildahDockerfile,
  casesDir,
  compare,
  limiter,
  prepareContext,
  readImage,
  setUp,
  tearDown,
  vbuildBuild,
  type Difference,
  type Scratch,
} from './differential/harness.ts';
import { isKnown, knownFor, matches } from './differential/known.ts';
import { removeStore } from './helpers.ts';

const cases = (await fsp.readdir(casesDir)).sort();
let scratch: Scratch;
let skip: string | undefined;
const found = new Map<string, Difference[]>();
// Two cases at a time, each building with both tools at once: four builds on two cores.
const slot = limiter(2);

beforeAll(async () => {
  // Lower case: buildah names an image pulled from `oci:DIR` after DIR, and refs are lower case.
  const dir = path.join(os.tmpdir(), `vlab-diff-${process.pid}-${Date.now().toString(36)}`);
  await fsp.mkdir(dir);
  ({ scratch, skip } = await setUp(dir));
  if (skip) console.warn(`differential suite skipped: ${skip}`);
}, 120_000);
afterAll(async () => {
  // VLAB_DIFF_DUMP=file.json: every difference found, known or not, for updating known.ts.
  if (process.env.VLAB_DIFF_DUMP)
    await fsp.writeFile(process.env.VLAB_DIFF_DUMP, JSON.stringify(Object.fromEntries([...found].sort()), null, 1));
  if (!scratch) return;
  await tearDown(scratch);
  await removeStore(scratch.dir);
});

/** Both builds at once; a failed build is a difference of its own (`build:vbuild`), shown with its code. */
async function runCase(name: string): Promise<Difference[]> {
  const ctx = await prepareContext(scratch, name);
  const sides = await Promise.allSettled([
    vbuildBuild(scratch, name, ctx).then((image) => readImage(image, path.join(scratch.dir, 'unpack/vbuild', name))),
    buildahDockerfile(ctx)
      .then((df) => buildahBuild(scratch, name, ctx, df))
      .then(async (image) =>
        readImage(image, path.join(scratch.dir, 'unpack/buildah', name), await buildahConfig(scratch, name)),
      ),
  ]);
  const [v, b] = sides;
  if (v.status === 'fulfilled' && b.status === 'fulfilled') return compare(v.value, b.value);
  const why = (r: PromiseSettledResult<unknown>) =>
    r.status === 'rejected'
      ? `${(r.reason as { code?: string }).code ?? ''} ${(r.reason as Error).message}`.trim().slice(0, 300)
      : 'built';
  const diffs: Difference[] = [];
  if (v.status === 'rejected') diffs.push({ key: 'build:vbuild', vbuild: why(v), buildah: why(b) });
  if (b.status === 'rejected') diffs.push({ key: 'build:buildah', vbuild: why(v), buildah: why(b) });
  return diffs;
}

describe('differential: vbuild vs buildah', () => {
  it('has 40+ cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.for(cases)('%s', { concurrent: true, timeout: 120_000 }, async (name, { skip: skipTest, expect }) => {
    if (skip) return skipTest(skip);
    const diffs = await slot(() => runCase(name));
    found.set(name, diffs);
    const unexplained = diffs.filter((d) => !isKnown(name, d));
    expect(unexplained, `differences not in test/differential/known.ts`).toEqual([]);
    const stale = knownFor(name).filter((k) => !diffs.some((d) => matches(k, name, d)));
    expect(
      stale.map((k) => String(k.key)),
      'known differences that no longer occur: prune them',
    ).toEqual([]);
  });
});
