/**
 * Run by rootless-bind.test.ts as an unprivileged user: `RUN --mount=type=bind,source=/d` (and
 * `/f`) from a stage's tree `<base>/stage` (bind-source.ts bindSource: this process cannot mount, the rootless
 * fallback), then `<base>/stage/d` is swapped for a symlink to `<hostDir>` before the step runs
 * (createExecutor() in `<base>/root`, temp dirs in `<base>/tmp`), which lists the mount and
 * reads a file through it (`rw`: writes one too). Prints one JSON line; the test asserts.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createExecutor } from '../index.ts';
import { bindSource, type Undo } from '../../solve/ops/bind-source.ts';

const [base, hostDir] = process.argv.slice(2) as [string, string];
const rootfs = path.join(base, 'root');
const tmpDir = path.join(base, 'tmp');
const stage = path.join(base, 'stage');
const ex = await createExecutor({ tmpDir });

/** A step binding stage `/d` (a directory) or `/f` (a file; swapped for a link to hostDir/host-secret) on /mnt. */
const step = async (name: 'd' | 'f', rw: boolean) => {
  const undo: Undo = [];
  try {
    const source = await bindSource({ root: stage, source: `/${name}`, rw, where: 'stage', scratch: tmpDir, undo });
    // the swap, after the pin and before the mount
    await fs.rename(path.join(stage, name), path.join(stage, `${name}.away`));
    await fs.symlink(name === 'd' ? hostDir : path.join(hostDir, 'host-secret'), path.join(stage, name));
    let stdout = '';
    let stderr = '';
    const r = await ex.run(
      {
        rootfs,
        argv: [
          '/bin/sh',
          '-c',
          name === 'f' ? 'cat /mnt; stat -c %Y /mnt' : `ls /mnt; cat /mnt/*; ${rw ? 'echo x > /mnt/new; ' : ''}true`,
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
    await fs.rename(path.join(stage, `${name}.away`), path.join(stage, name)).catch(() => undefined);
  }
};

const roDir = await step('d', false);
const rwDir = await step('d', true);
const roFile = await step('f', false);
const rwFile = await step('f', true);
console.log(JSON.stringify({ roDir, rwDir, roFile, rwFile, tmpLeft: await fs.readdir(tmpDir) }));
