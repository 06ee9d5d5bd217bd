/**
 * The plan orders stages so that a stage only waits for stages started before it: a Dockerfile
 * whose stages COPY --from later ones builds, however many (BuildKit builds it; the queue used to
 * fill with waiting stages and stop), and a cycle of stages is refused, not waited on forever.
 */
import fsp from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWithEvents, freshStore, makeContext, removeStore, umociUnpack } from './helpers.ts';

let root: string;
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
});

async function tryBuild(dockerfile: string, tag?: string) {
  const ctx = await makeContext({ Dockerfile: dockerfile });
  try {
    return await buildWithEvents({ context: ctx, root, tags: tag ? [tag] : [] });
  } catch (e) {
    return { error: e as { code: string; message: string; location?: { line: number } } };
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

describe('stage order', () => {
  it('five stages that COPY --from a later stage build (more than the parallel limit)', async () => {
    const users = [0, 1, 2, 3, 4].map((i) => `FROM busybox AS s${i}\nCOPY --from=src /src /x${i}\n`).join('');
    const final = [0, 1, 2, 3, 4].map((i) => `COPY --from=s${i} /x${i} /\n`).join('');
    const r = await tryBuild(`${users}FROM busybox AS src\nRUN echo made > /src\nFROM busybox\n${final}`, 'later:1');
    expect('error' in r ? r.error : undefined).toBeUndefined();
    const rootfs = await umociUnpack(root, 'later:1');
    try {
      expect(await fsp.readFile(`${rootfs}/x4`, 'utf8')).toBe('made\n');
    } finally {
      await fsp.rm(rootfs, { recursive: true, force: true });
    }
  });

  it('a cycle of stages is E_STAGE_CYCLE at the COPY that closes it, before any step runs', async () => {
    const r = await tryBuild(
      'FROM busybox AS a\nCOPY --from=b /bin/sh /x\nFROM busybox AS b\nCOPY --from=a /bin/sh /y\n',
    );
    expect('error' in r && r.error.code).toBe('E_STAGE_CYCLE');
    if (!('error' in r)) return;
    expect(r.error.message).toMatch(/circular dependency.*\ba\b.*\bb\b/);
    expect(r.error.location?.line).toBeGreaterThan(0);
  });

  it('a cycle through a build arg (known only at run time) is E_STAGE_CYCLE too', async () => {
    const r = await tryBuild(
      'ARG FROM_B=b\nFROM busybox AS a\nARG FROM_B\nCOPY --from=$FROM_B /bin/sh /x\nFROM busybox AS b\nCOPY --from=a /bin/sh /y\n',
    );
    expect('error' in r && r.error.code).toBe('E_STAGE_CYCLE');
  });
});
