import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse, type RunInstruction } from '@vlab/dockerfile';
import { isMounted, mountAll, unmountAll } from '@vlab/overlay';
import { withRunMounts, type MountSources } from './run.ts';

let dir: string;
let ctx: string;
let scratch: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-runmount-'));
  ctx = path.join(dir, 'ctx');
  scratch = path.join(dir, 'scratch');
  await fsp.mkdir(path.join(ctx, 'd'), { recursive: true });
  await fsp.writeFile(path.join(ctx, 'd', 'f'), 'original');
  await fsp.mkdir(scratch);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function runOf(line: string): RunInstruction {
  return parse(`FROM scratch\n${line}\n`).stages[0]!.instructions[0] as RunInstruction;
}
const sources = (over: Partial<MountSources> = {}): MountSources => ({
  cacheRoot: path.join(dir, 'cache'),
  contextDir: ctx,
  scratchDir: scratch,
  ...over,
});

describe('bind mount sources resolve inside their root', () => {
  it('from=<stage>: a symlink in the stage root cannot point the mount at the host', async () => {
    const stage = path.join(dir, 'stage');
    const outside = path.join(dir, 'outside');
    await fsp.mkdir(path.join(stage, 'data'), { recursive: true });
    await fsp.mkdir(outside);
    await fsp.symlink(outside, path.join(stage, 'link'));
    await fsp.symlink('/data', path.join(stage, 'inlink'));
    const from = sources({ stageRoot: (n: string) => (n === 'build' ? stage : undefined) });
    // The source is bound pinned under the scratch dir: it shows the stage's /data itself.
    const id = async (p: string) => fsp.stat(p).then((st) => `${st.dev}:${st.ino}`);
    const sourceOf = (line: string) => withRunMounts(runOf(line), from, async (mounts) => id(mounts[0]!.source!));
    expect(await sourceOf('RUN --mount=type=bind,from=build,source=inlink,target=/m true')).toBe(
      await id(path.join(stage, 'data')),
    );
    await expect(sourceOf('RUN --mount=type=bind,from=build,source=link,target=/m true')).rejects.toMatchObject({
      code: 'E_RUN_MOUNT',
      message: expect.stringContaining('"build"'),
    });
    await fsp.symlink('loop', path.join(stage, 'loop'));
    await expect(sourceOf('RUN --mount=type=bind,from=build,source=loop/x,target=/m true')).rejects.toMatchObject({
      code: 'E_SYMLINK_LOOP',
    });
  });
});

describe('rw binds are throwaway views', () => {
  async function writeThrough(from: MountSources): Promise<{ viewMounted: boolean }> {
    return withRunMounts(runOf('RUN --mount=type=bind,source=d,target=/m,rw true'), from, async ([m]) => {
      expect(m!.readonly).toBe(false);
      await fsp.writeFile(path.join(m!.source!, 'f'), 'changed');
      await fsp.writeFile(path.join(m!.source!, 'new'), 'new');
      expect(await fsp.readFile(path.join(m!.source!, 'f'), 'utf8')).toBe('changed');
      return { viewMounted: isMounted(m!.source!) };
    });
  }

  it('an overlay in the scratch dir: the source is untouched, nothing is left afterwards', async () => {
    const { viewMounted } = await writeThrough(sources());
    expect(viewMounted).toBe(true);
    expect(await fsp.readFile(path.join(ctx, 'd', 'f'), 'utf8')).toBe('original');
    expect(await fsp.readdir(path.join(ctx, 'd'))).toEqual(['f']);
    expect(await fsp.readdir(scratch)).toEqual([]);
    expect(await fsp.readFile('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
  });

  it('a copy where overlay cannot be mounted (an upper on overlayfs)', async () => {
    const [l, u, w, m] = ['l', 'u', 'w', 'm'].map((n) => path.join(dir, n));
    for (const d of [l, u, w]) await fsp.mkdir(d);
    await mountAll(
      [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${l}`, `upperdir=${u}`, `workdir=${w}`] }],
      m,
    );
    try {
      const { viewMounted } = await writeThrough(sources({ scratchDir: m }));
      expect(viewMounted).toBe(false);
      expect(await fsp.readFile(path.join(ctx, 'd', 'f'), 'utf8')).toBe('original');
      expect(await fsp.readdir(path.join(ctx, 'd'))).toEqual(['f']);
      expect(await fsp.readdir(m)).toEqual([]);
    } finally {
      await unmountAll(m);
    }
  });

  it('views are released when the step fails and when a later mount is refused', async () => {
    const two = runOf('RUN --mount=type=bind,source=d,target=/a,rw --mount=type=bind,source=missing,target=/b true');
    await expect(withRunMounts(two, sources(), async () => 'ran')).rejects.toMatchObject({ code: 'E_RUN_MOUNT' });
    const one = runOf('RUN --mount=type=bind,source=d,target=/a,rw true');
    await expect(withRunMounts(one, sources(), async () => Promise.reject(new Error('step failed')))).rejects.toThrow(
      'step failed',
    );
    expect(await fsp.readdir(scratch)).toEqual([]);
    expect(await fsp.readFile('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
  });
});
