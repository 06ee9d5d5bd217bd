/**
 * Containers end to end on a busybox image built here: the CLI (`node bin/vbuild.js`) where the
 * process boundary matters (detached containers outliving it, concurrent names), the API elsewhere.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, containers, fsck, run, VlabError } from '@vlab/image';
import { freshStore, removeStore } from './helpers.ts';
import { cli, deadOrZombie, stateOf } from './containers-helpers.ts';

let root: string;
const at = () => ({ root });
const out = () => {
  const chunks: Record<string, string> = { stdout: '', stderr: '' };
  return { chunks, onOutput: (s: 'stdout' | 'stderr', c: Buffer) => (chunks[s] += c.toString()) };
};
async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof VlabError) return e.code;
    throw e;
  }
  return 'no error';
}

beforeAll(async () => {
  root = await freshStore();
  await build({
    root,
    context: os.tmpdir(),
    dockerfile: {
      text: [
        'FROM busybox',
        'ENV A=image B=image',
        'RUN mkdir -p /w && echo seed > /w/seed',
        'WORKDIR /w',
        'ENTRYPOINT ["/bin/echo", "ep"]',
        'CMD ["c1"]',
        'STOPSIGNAL SIGUSR1',
      ].join('\n'),
    },
    tags: ['cfg:latest'],
  });
});
afterAll(async () => {
  for (const c of await containers.list({ all: true, root }).catch(() => []))
    await containers.remove(c.config.id, { force: true, volumes: true, root }).catch(() => undefined);
  await removeStore(root);
});

describe('containers', () => {
  it('run -d, the CLI killed, ps from a new process shows it running; stop; ps -a shows the exit code', async () => {
    let id = '';
    const started = await cli(
      root,
      ['run', '-d', '--name', 'outlive', 'busybox', 'sh', '-c', 'trap "exit 3" TERM; while :; do sleep 0.1; done'],
      (child) => {
        child.stdout!.on('data', (c: Buffer) => {
          id += c.toString();
          if (id.includes('\n')) child.kill('SIGKILL'); // the CLI dies right after it printed the id
        });
      },
    );
    id = id.trim();
    expect(id, started.stderr).toMatch(/^[0-9a-f]{64}$/);
    const ps = await cli(root, ['ps']);
    const row = ps.stdout.split('\n').find((l) => l.includes('outlive'));
    expect(ps.stdout.split('\n')[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(row).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+busybox\\s+"sh -c trap .*Up `));
    const stop = await cli(root, ['stop', '-t', '5', 'outlive']);
    expect(stop.code, stop.stderr).toBe(0);
    const all = await cli(root, ['ps', '-a', '--format', 'json']);
    const line = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { Names: string; Status: string; State: string })
      .find((c) => c.Names === 'outlive');
    expect(line?.State).toBe('exited');
    expect(line?.Status).toMatch(/^Exited \(3\) /);
  });

  it('foreground run passes the exit code and output through; the log has both streams with times', async () => {
    const o = out();
    const r = await run({ ...at(), image: 'busybox', cmd: ['sh', '-c', 'echo out; echo err >&2; exit 42'], ...o });
    expect(r.exitCode).toBe(42);
    expect(o.chunks).toEqual({ stdout: 'out\n', stderr: 'err\n' });
    const logs = await containers.logs(r.id, at());
    expect(logs.map((l) => [l.stream, l.log])).toEqual([
      ['stdout', 'out\n'],
      ['stderr', 'err\n'],
    ]);
    expect(logs[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect((await containers.logs(r.id, { ...at(), tail: 1 })).map((l) => l.log)).toEqual(['err\n']);
    expect((await run({ ...at(), image: 'busybox', cmd: ['nonexistent-cmd'] })).exitCode).toBe(127);
    expect((await run({ ...at(), image: 'busybox', cmd: ['/etc/passwd'] })).exitCode).toBe(126);
    const cliRun = await cli(root, ['run', '--rm', 'busybox', 'sh', '-c', 'exit 9']);
    expect(cliRun.code).toBe(9);
    // sig-proxy: a SIGINT to the foreground CLI reaches the container, whose exit code it returns
    const script = 'trap "exit 7" INT; echo ready; while :; do sleep 0.1; done';
    const proxied = await cli(root, ['run', '--rm', 'busybox', 'sh', '-c', script], (child) =>
      child.stdout!.on('data', (c: Buffer) => c.toString().includes('ready') && child.kill('SIGINT')),
    );
    expect(proxied.code).toBe(7);
    const bad = await cli(root, ['run', 'no-such-image:1']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('E_IMAGE_NOT_FOUND');
  });

  it("the image's Entrypoint, Cmd, Env, WorkingDir and StopSignal apply as docker applies them", async () => {
    const echo = async (o: Partial<Parameters<typeof run>[0]>) => {
      const x = out();
      await run({ ...at(), image: 'cfg', ...x, ...o });
      return x.chunks.stdout.trim();
    };
    expect(await echo({})).toBe('ep c1');
    expect(await echo({ cmd: ['x', 'y'] })).toBe('ep x y');
    expect(await echo({ entrypoint: ['pwd'] })).toBe('/w');
    expect(await echo({ entrypoint: ['sh', '-c', 'echo $A $B $C $HOME $(id -u)'], env: ['B=cli', 'C=3'] })).toBe(
      'image cli 3 /root 0',
    );
    expect(await echo({ entrypoint: ['id', '-u'], user: 'nobody' })).toBe('65534');
    expect(await echo({ entrypoint: ['pwd'], workingDir: '/tmp' })).toBe('/tmp');
    expect(await echo({ entrypoint: ['hostname'], hostname: 'box1' })).toBe('box1');
    const rd = await run({ ...at(), image: 'busybox', cmd: ['touch', '/x'], readonlyRootfs: true });
    expect(rd.exitCode).toBe(1);
    const c = await containers.create({ ...at(), image: 'cfg' });
    expect(c.config.stopSignal).toBe('SIGUSR1');
    expect(c.config.hostname).toBe(c.config.id.slice(0, 12));
    expect(c.config.name).toMatch(/^[a-z]+_[a-z]+$/);
    await containers.remove(c.config.id, at());
  });

  it('start reuses the upper layer; kill, wait, restart, rename, rm, prune', async () => {
    const r = await run({
      ...at(),
      image: 'busybox',
      name: 'keep',
      cmd: ['sh', '-c', 'echo x >> /count; wc -l < /count'],
    });
    expect(r.exitCode).toBe(0);
    const o = out();
    await containers.start('keep', at()); // detached start
    expect(await containers.wait('keep', at())).toBe(0);
    const svc = await (await import('@vlab/image')).containerService(root);
    const again = await svc.start('keep', { attach: { onOutput: o.onOutput } });
    expect(again.exitCode).toBe(0);
    expect(o.chunks.stdout.trim()).toBe('3'); // three starts, one upper layer
    await containers.rename('keep', 'kept', at());
    expect(await code(containers.inspect('keep', at()))).toBe('E_CONTAINER_NOT_FOUND');

    const d = await run({ ...at(), image: 'busybox', detach: true, cmd: ['sleep', '60'] });
    expect(await code(containers.remove(d.id, at()))).toBe('E_CONTAINER_RUNNING');
    expect(await code(containers.kill(d.id, { ...at(), signal: 'SIGNOPE' }))).toBe('E_BAD_SIGNAL');
    await containers.kill(d.id, { ...at(), signal: 'KILL' });
    expect(await containers.wait(d.id, at())).toBe(137);
    expect(await code(containers.stop(d.id, at()))).toBe('E_CONTAINER_NOT_RUNNING');
    await containers.restart(d.id, at());
    expect((await containers.inspect(d.id, at())).state).toMatchObject({ status: 'running', restartCount: 0 });
    await containers.remove(d.id, { ...at(), force: true });
    expect(await code(containers.inspect(d.id, at()))).toBe('E_CONTAINER_NOT_FOUND');
    const pruned = await containers.prune(at());
    expect(pruned.length).toBeGreaterThan(0);
    expect((await containers.list({ ...at(), all: true })).filter((c) => c.state.status !== 'running')).toEqual([]);
  });

  it('the monitor SIGKILLed: exited with an unknown code, never running; a reboot is seen by the boot id', async () => {
    const d = await run({ ...at(), image: 'busybox', detach: true, cmd: ['sleep', '60'] });
    const st = await stateOf(root, d.id);
    process.kill(st.monitorPid as number, 'SIGKILL');
    // up to 10 s: on a loaded machine the kernel takes a while to end the tree
    for (let i = 0; i < 500 && !deadOrZombie(st.pid as number); i++) await new Promise((r) => setTimeout(r, 20));
    expect(deadOrZombie(st.pid as number)).toBe(true); // the tree died with its monitor
    const c = await containers.inspect(d.id, at());
    expect(c.state).toMatchObject({ status: 'exited', exitCode: -1 });
    expect(c.state.error).toMatch(/monitor died/);
    expect((await fsck(root)).problems.map((p) => p.kind)).toContain('container-not-cleaned');
    // a record saying "running" from another boot, with a live monitor pid (ours): not running
    await fsp.writeFile(
      path.join(root, 'containers', d.id, 'state.json'),
      JSON.stringify({ ...st, bootId: 'another-boot', monitorPid: process.pid }),
    );
    const after = await containers.inspect(d.id, at());
    expect(after.state).toMatchObject({ status: 'exited', exitCode: -1 });
    expect(after.state.error).toMatch(/rebooted/);
    await containers.remove(d.id, at());
    expect((await fsck(root)).problems).toEqual([]);
  });

  it('two CLIs run --name x at once: one wins, the other gets E_NAME_IN_USE', async () => {
    const [a, b] = await Promise.all([0, 1].map(() => cli(root, ['create', '--name', 'race', 'busybox', 'true'])));
    expect([a!.code, b!.code].sort()).toEqual([0, 125]);
    expect((a!.code ? a! : b!).stderr).toContain('E_NAME_IN_USE');
    await containers.remove('race', at());
  });

  it('limits reach the cgroup; bad input gets its code; rmi refuses a used image; fsck sees orphans', async () => {
    const d = await run({
      ...at(),
      image: 'busybox',
      detach: true,
      cmd: ['sleep', '60'],
      memory: '32m',
      pidsLimit: 50,
    });
    const st = await stateOf(root, d.id);
    const v2 = `/sys/fs/cgroup/${st.cgroup as string}`;
    const v1 = `/sys/fs/cgroup/memory/${st.cgroup as string}`;
    const mem = await fsp
      .readFile(`${v2}/memory.max`, 'utf8')
      .catch(() => fsp.readFile(`${v1}/memory.limit_in_bytes`, 'utf8'));
    expect(Number(mem)).toBe(32 << 20);
    await containers.remove(d.id, { ...at(), force: true });
    expect(await code(run({ ...at(), image: 'busybox', cmd: ['true'], memory: '1m' }))).toBe('E_BAD_ARG');
    expect(await code(run({ ...at(), image: 'nope:none', cmd: ['true'] }))).toBe('E_IMAGE_NOT_FOUND');
    expect(await code(run({ ...at(), image: 'busybox', cmd: ['true'], stopSignal: 'SIGBOGUS' }))).toBe('E_BAD_SIGNAL');
    for (const v of ['rel/path:/x', '/tmp:x', '/tmp:/a/../../etc', '/tmp:/'])
      expect(await code(run({ ...at(), image: 'busybox', cmd: ['true'], volumes: [v] })), v).toBe('E_VOLUME_PATH');
    const kept = await containers.create({ ...at(), image: 'busybox', cmd: ['true'], name: 'holder' });
    const rmi = await cli(root, ['rmi', 'busybox']);
    expect(rmi.code).toBe(1);
    expect(rmi.stderr).toContain('E_IMAGE_IN_USE');
    // a record removed behind vbuild's back leaves its snapshot: fsck finds it and --repair drops it
    await fsp.rm(path.join(root, 'containers', kept.config.id), { recursive: true });
    const report = await fsck(root);
    expect(report.problems.map((p) => `${p.kind} ${p.target}`)).toContain(
      `container-snapshot-orphan ${kept.config.snapshotKey}`,
    );
    expect((await fsck(root, { repair: true })).problems).toEqual([]);
  });
});
