/**
 * Rootless RUN --mount=type=bind from a stage's tree: this process cannot mount, so the source is
 * not bound pinned here (bind-source.ts staged's fallback). The stage's `/d` is swapped for a
 * symlink to a host directory after the source was resolved and before the step mounts it: the
 * step must see the stage's directory, never the host's (testing/rootless-bind-script.ts, run as
 * nobody with setpriv, as rootless.test.ts does). A read-only directory is mounted by the shell
 * launcher from the path its fd's link shows and checked (builtin-mounts.ts pinnedSource): a link
 * to the host by that path fails the step before it runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { asNobodyScript, NOBODY, runCommand } from './testing/run-command.ts';

const script = fileURLToPath(new URL('./testing/rootless-bind-script.ts', import.meta.url));
const tools = ['/usr/bin/setpriv', '/usr/bin/unshare'];
const canSwitch = process.getuid?.() === 0 && tools.every((t) => existsSync(t));

const run = runCommand;

interface Step {
  exitCode?: number;
  error?: string;
  message?: string;
  stdout?: string;
  stderr?: string;
}

describe.skipIf(!canSwitch)('rootless RUN --mount=type=bind from a stage (as nobody)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  /** The script's outcomes, run once as nobody. */
  let got:
    | Promise<Record<'roDir' | 'rwDir' | 'roFile' | 'rwFile' | 'roGone' | 'ctxFile', Step> & { tmpLeft: string[] }>
    | undefined;
  let hostDir = '';
  let base = '';
  const outcomes = async () => (got ??= runScript());
  const runScript = async () => {
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-rootless-bind-'));
    dirs.push(base);
    await fs.chmod(base, 0o755);
    await fs.rename(await makeBusyboxRootfs(base), path.join(base, 'root'));
    await fs.mkdir(path.join(base, 'tmp'));
    await fs.mkdir(path.join(base, 'stage', 'd'), { recursive: true });
    await fs.writeFile(path.join(base, 'stage', 'd', 'inside'), 'stage file\n');
    await fs.writeFile(path.join(base, 'stage', 'f'), 'stage file\n');
    await fs.utimes(path.join(base, 'stage', 'f'), 1_000_000, 1_000_000); // kept by the copy the step sees
    await fs.chmod(path.join(base, 'stage', 'f'), 0o640); // kept too
    await run('chown', ['-R', `${NOBODY}:${NOBODY}`, base]);
    // the host dir: root's, readable by nobody, not writable
    hostDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-rootless-host-'));
    dirs.push(hostDir);
    await fs.chmod(hostDir, 0o755);
    await fs.writeFile(path.join(hostDir, 'host-secret'), 'host secret\n', { mode: 0o644 });
    const [cmd, ...args] = asNobodyScript(base, script, [base, hostDir]);
    const r = await run(cmd, args, path.dirname(script));
    const out = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code !== 0 || !out.startsWith('{')) throw new Error(`rootless bind script failed (${r.code}): ${r.stderr}`);
    return JSON.parse(out);
  };
  const readable = async () =>
    (await run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'test', '-r', script])).code ===
    0;

  it('a stage file, and a stage dir bound rw, swapped for a link to the host after the pin: the step sees the stage', async (ctx) => {
    if (!(await readable())) ctx.skip(); // nobody cannot read the checkout
    const r = await outcomes();
    const stage = { exitCode: 0, stdout: 'stage file\n', stderr: '' };
    const file = { ...stage, stdout: 'stage file\n640 1000000\n' }; // its mode and mtime kept
    expect(r.roFile).toEqual(file);
    expect(r.rwFile).toEqual(file);
    expect(r.rwDir).toEqual({ ...stage, stdout: 'inside\nstage file\n' });
    expect(await fs.readdir(hostDir)).toEqual(['host-secret']);
    expect(await fs.readdir(path.join(base, 'stage', 'd'))).toEqual(['inside']); // rw writes are thrown away
    expect(r.tmpLeft).toEqual([]);
  });

  it('a context file where this process cannot mount: the copy the step sees keeps its mode and mtime', async (ctx) => {
    if (!(await readable())) ctx.skip();
    expect((await outcomes()).ctxFile).toEqual({ exitCode: 0, stdout: 'stage file\n640 1000000\n', stderr: '' });
  });

  it('a read-only stage dir swapped the same way: the step sees the stage', async (ctx) => {
    if (!(await readable())) ctx.skip();
    expect((await outcomes()).roDir).toEqual({ exitCode: 0, stdout: 'inside\nstage file\n', stderr: '' });
  });

  it('a read-only stage dir gone after the pin, a link to the host by the name its fd shows: the step does not run', async (ctx) => {
    if (!(await readable())) ctx.skip();
    const { roGone } = await outcomes();
    expect(roGone).toEqual({
      exitCode: 125,
      stdout: '',
      stderr: `vlab: the bind source for ${path.join(base, 'root', 'mnt')} changed while the build ran: run the build again\n`,
    });
  });
});
