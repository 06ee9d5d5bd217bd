import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '@vlab/image';
import {
  buildWithEvents,
  cachedSteps,
  exec,
  freshStore,
  missedSteps,
  removeStore,
  repo,
  skopeoInspect,
  umociUnpack,
  makeContext,
} from './helpers.ts';

const example = path.join(repo, 'examples/hello');
let root: string;
let ctx: string;

beforeAll(async () => {
  root = await freshStore();
  // A private copy of the example, so the test can edit files.
  ctx = await makeContext({});
  await exec('cp', ['-a', `${example}/.`, ctx]);
});
afterAll(async () => {
  await removeStore(root);
  await fsp.rm(ctx, { recursive: true, force: true });
});

describe('examples/hello end to end', () => {
  let first: Awaited<ReturnType<typeof build>>;

  it('builds an OCI image that skopeo and umoci read', async () => {
    const { result, events } = await buildWithEvents({ context: ctx, tags: ['hello:latest'], root });
    first = result;
    expect(cachedSteps(events)).toEqual([]);
    const cfg = (await skopeoInspect(root, 'hello:latest')) as {
      config: Record<string, unknown>;
      rootfs: { diff_ids: string[] };
    };
    expect(cfg.config.Cmd).toEqual(['/bin/sh', '/app/scripts/show.sh']);
    expect(cfg.config.WorkingDir).toBe('/app');
    expect(cfg.config.Env).toContain('APP_MODE=demo');
    expect(cfg.rootfs.diff_ids.length).toBe(result.config.rootfs.diff_ids.length);
    const rootfs = await umociUnpack(root, 'hello:latest');
    expect(await fsp.readFile(path.join(rootfs, 'greeting.txt'), 'utf8')).toBe('hello from a RUN step\n');
    expect(await fsp.readFile(path.join(rootfs, 'app/message.txt'), 'utf8')).toBe('This file was copied by COPY.\n');
    expect((await fsp.stat(path.join(rootfs, 'app/scripts/show.sh'))).isFile()).toBe(true);
    expect((await fsp.lstat(path.join(rootfs, 'bin/sh'))).isSymbolicLink()).toBe(true);
    await exec('rm', ['-rf', path.dirname(rootfs)]);
  });

  it('rebuilds fully cached with the same digest', async () => {
    const { result, events } = await buildWithEvents({ context: ctx, tags: ['hello:latest'], root });
    expect(missedSteps(events)).toEqual([]);
    expect(cachedSteps(events).length).toBe(4); // RUN, WORKDIR, COPY, COPY
    expect(result.digest).toBe(first.digest);
  });

  it('rebuilds only the COPY whose source changed, and says which file', async () => {
    await fsp.writeFile(path.join(ctx, 'message.txt'), 'changed\n');
    const { events } = await buildWithEvents({ context: ctx, tags: ['hello:latest'], root });
    const missed = missedSteps(events);
    expect(missed.map((m) => m.name)).toEqual([
      expect.stringContaining('COPY message.txt'),
      expect.stringContaining('COPY scripts/'),
    ]);
    expect(missed[0]!.reason).toContain('message.txt');
    expect(missed[1]!.reason).toBe('previous step changed');
  });

  it('a changed build arg reruns the RUN that uses it', async () => {
    const { events } = await buildWithEvents({ context: ctx, root, buildArgs: { GREETING: 'hi' } });
    const missed = missedSteps(events);
    expect(missed[0]!.name).toContain('RUN echo');
    expect(missed[0]!.reason).toContain('GREETING');
  });

  it('is reproducible with SOURCE_DATE_EPOCH across fresh stores', async () => {
    const other = await freshStore();
    try {
      const a = await build({ context: ctx, root, sourceDateEpoch: 1700000000, noCache: true });
      const b = await build({ context: ctx, root: other, sourceDateEpoch: 1700000000 });
      expect(b.digest).toBe(a.digest);
    } finally {
      await removeStore(other);
    }
  });
});
