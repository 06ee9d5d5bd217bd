/**
 * Run by rootless-bind.test.ts as an unprivileged user: `RUN --mount=type=bind,source=/d` (and
 * `/f`) from a stage's tree `<base>/stage` (bind-source.ts bindSource: this process cannot mount, the rootless
 * fallback), then `<base>/stage/d` is swapped for a symlink to `<hostDir>` before the step runs
 * (createExecutor() in `<base>/root`, temp dirs in `<base>/tmp`), which lists the mount and
 * reads a file through it (`rw`: writes one too); and a read-only `/e` removed after the pin, with a
 * link to `<hostDir>` by the name its fd's link then shows; and `/f` of the same tree as a build
 * context (its copy keeps mode and mtime). Prints one JSON line; the test asserts.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createExecutor } from '../index.ts';
import { bindSource, type Undo } from '../../solve/ops/bind-source.ts';
import { BuildContext } from '../../context/context.ts';
import { FileHashCache } from '../../context/hash-cache.ts';

const [base, hostDir] = process.argv.slice(2) as [string, string];
const rootfs = path.join(base, 'root');
const tmpDir = path.join(base, 'tmp');
const stage = path.join(base, 'stage');
const ex = await createExecutor({ tmpDir });

/** The swap after the pin: `/d` (a directory) or `/f` (a file) moved away, a link to hostDir (or its host-secret) in its place. */
const swapAway = async (name: string) => {
  await fs.rename(path.join(stage, name), path.join(stage, `${name}.away`));
  await fs.symlink(name === 'd' ? hostDir : path.join(hostDir, 'host-secret'), path.join(stage, name));
};
/**
 * The swap for the launcher's check: the pinned (empty) dir `/e` removed, so its fd's link shows
 * `<stage>/e (deleted)`, and a link to hostDir made by that name.
 */
const swapGone = async (name: string) => {
  await fs.rmdir(path.join(stage, name));
  await fs.symlink(hostDir, path.join(stage, `${name} (deleted)`));
};

/** A step binding stage `/<name>` on /mnt, swapped after the pin and before the mount. */
const step = async (name: 'd' | 'f' | 'e', rw: boolean, swap = swapAway, context?: BuildContext) => {
  const undo: Undo = [];
  try {
    const where = context ? 'context' : 'stage';
    const source = await bindSource({ root: stage, source: `/${name}`, rw, where, scratch: tmpDir, undo, context });
    await swap(name);
    let stdout = '';
    let stderr = '';
    const r = await ex.run(
      {
        rootfs,
        argv: [
          '/bin/sh',
          '-c',
          name === 'f'
            ? 'cat /mnt; stat -c "%a %Y" /mnt'
            : `ls /mnt; cat /mnt/*; ${rw ? 'echo x > /mnt/new; ' : ''}true`,
        ],
        env: [],
        cwd: '/',
        mounts: [{ type: 'bind', source, target: '/mnt', readonly: !rw }],
      },
      { onOutput: (s, c) => (s === 'stdout' ? (stdout += c) : (stderr += c)) },
    );
    return { exitCode: r.exitCode, stdout, stderr };
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { error: err.code ?? 'unknown', message: err.message };
  } finally {
    for (const u of undo.reverse()) await u();
    await fs.unlink(path.join(stage, name)).catch(() => undefined);
    await fs.unlink(path.join(stage, `${name} (deleted)`)).catch(() => undefined);
    await fs.rename(path.join(stage, `${name}.away`), path.join(stage, name)).catch(() => undefined);
  }
};

const roDir = await step('d', false);
const rwDir = await step('d', true);
const roFile = await step('f', false);
const rwFile = await step('f', true);
await fs.mkdir(path.join(stage, 'e'));
const roGone = await step('e', false, swapGone);
// the stage dir as a build context: a context file copied (this process cannot mount it), not swapped
const ctxFile = await step('f', false, async () => undefined, await BuildContext.open(stage, new FileHashCache()));
console.log(JSON.stringify({ roDir, rwDir, roFile, rwFile, roGone, ctxFile, tmpLeft: await fs.readdir(tmpDir) }));
