/** Volumes, binds, tmpfs, env files and logs of containers, on a busybox image built here. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, containers, run, volumes, VlabError } from '@vlab/image';
import { freshStore, removeStore } from './helpers.ts';
import { cli } from './containers-helpers.ts';

let root: string;
let host: string;
const at = () => ({ root });

async function sh(script: string, o: Partial<Parameters<typeof run>[0]> = {}, image = 'busybox') {
  let stdout = '';
  const r = await run({
    ...at(),
    image,
    cmd: ['sh', '-c', script],
    onOutput: (s, c) => (stdout += s === 'stdout' ? c.toString() : ''),
    ...o,
  });
  return { ...r, stdout };
}

async function code(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'no error',
    (e: unknown) => (e instanceof VlabError ? e.code : Promise.reject(e)),
  );
}

beforeAll(async () => {
  root = await freshStore();
  host = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-vol-host-'));
  await build({
    root,
    context: os.tmpdir(),
    dockerfile: {
      text: 'FROM busybox\nRUN mkdir /data && echo seed > /data/seed && chown 65534 /data && ln -s /etc /evil\nVOLUME /data\n',
    },
    tags: ['vol:latest'],
  });
});
afterAll(async () => {
  for (const c of await containers.list({ all: true, root }).catch(() => []))
    await containers.remove(c.config.id, { force: true, volumes: true, root }).catch(() => undefined);
  await removeStore(root);
  await fsp.rm(host, { recursive: true, force: true });
});

describe('container volumes', () => {
  it('image VOLUME: an anonymous volume filled from the image; rm -v removes it', async () => {
    const r = await sh('cat /data/seed; stat -c %u /data; echo more > /data/new', {}, 'vol');
    expect(r.stdout).toBe('seed\n65534\n');
    const c = await containers.inspect(r.id, at());
    const m = c.config.mounts.find((x) => x.target === '/data')!;
    expect(m).toMatchObject({ type: 'volume', anonymous: true });
    const v = await volumes.inspect(m.source!, at());
    expect(await fsp.readFile(path.join(v.mountpoint, 'new'), 'utf8')).toBe('more\n');
    await containers.remove(r.id, { ...at(), volumes: true });
    expect((await volumes.list(at())).map((x) => x.name)).not.toContain(m.source);
  });

  it('a named volume survives rm (the upper layer does not); it is in use while a container has it', async () => {
    const a = await sh('echo kept > /d/f; echo gone > /upper', { volumes: ['named1:/d'] });
    expect(a.exitCode).toBe(0);
    expect(await code(volumes.remove('named1', at()))).toBe('E_VOLUME_IN_USE');
    await containers.remove(a.id, { ...at(), volumes: true });
    const b = await sh('cat /d/f; cat /upper 2>/dev/null || echo no-upper', { volumes: ['named1:/d'] });
    expect(b.stdout).toBe('kept\nno-upper\n');
    await containers.remove(b.id, at());
    // a named volume on an image VOLUME path is filled from the image while it is empty
    const c = await sh('ls /data', { volumes: ['named2:/data'] }, 'vol');
    expect(c.stdout).toBe('seed\n');
    await containers.remove(c.id, at());
    expect((await volumes.prune(at())).sort()).toEqual(['named1', 'named2']);
  });

  it('binds (rw and ro), --mount, --tmpfs; a volume path through an image symlink stays in the container', async () => {
    await fsp.writeFile(path.join(host, 'in'), 'from-host\n');
    const rw = await sh('cat /h/in; echo back > /h/out', { volumes: [`${host}:/h`] });
    expect(rw.stdout).toBe('from-host\n');
    expect(await fsp.readFile(path.join(host, 'out'), 'utf8')).toBe('back\n');
    const ro = await sh('echo x > /h/out2', { mounts: [`type=bind,source=${host},target=/h,readonly`] });
    expect(ro.exitCode).not.toBe(0);
    const t = await sh('grep -E " /(t|t2) " /proc/mounts | cut -d" " -f2,3', {
      mounts: ['type=tmpfs,target=/t,tmpfs-size=1m'],
      tmpfs: ['/t2:size=2m'],
    });
    expect(t.stdout).toBe('/t tmpfs\n/t2 tmpfs\n');
    // /evil -> /etc in the image: the volume is mounted (and filled) at the container's /etc
    const evil = await sh('grep -c nobody /evil/passwd', { volumes: ['evil:/evil'] }, 'vol');
    expect(evil.stdout).toBe('1\n');
    expect(
      await code(
        run({ ...at(), image: 'busybox', cmd: ['true'], mounts: [`type=bind,source=${host}/missing,target=/m`] }),
      ),
    ).toBe('E_VOLUME_PATH');
  });

  it('-e, --env-file, -w, --cpus and logs through the CLI', async () => {
    const envFile = path.join(host, 'env');
    await fsp.writeFile(envFile, '# comment\nFROM_FILE=1\nOVER=file\n');
    const r = await cli(root, [
      'run',
      '--name',
      'envs',
      '--env-file',
      envFile,
      '-e',
      'OVER=flag',
      '-w',
      '/tmp',
      '--cpus',
      '0.5',
      'busybox',
      'sh',
      '-c',
      'echo $FROM_FILE $OVER $(pwd); echo e >&2',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('1 flag /tmp\n');
    const c = await containers.inspect('envs', at());
    expect(c.config.limits).toMatchObject({ cpuQuota: 50_000, cpuPeriod: 100_000 });
    const logs = await cli(root, ['logs', '--tail', '1', 'envs']);
    expect([logs.stdout, logs.stderr]).toEqual(['', 'e\n']);
    const vol = await cli(root, ['volume', 'create', 'clivol']);
    expect(vol.stdout).toBe('clivol\n');
    const ls = await cli(root, ['volume', 'ls']);
    expect(ls.stdout.split('\n')[0]).toMatch(/^DRIVER\s+VOLUME NAME$/);
    expect(ls.stdout).toMatch(/^local\s+clivol$/m);
  });

  it('logs -f follows a running container to its end', async () => {
    const d = await run({ ...at(), image: 'busybox', detach: true, cmd: ['sh', '-c', 'echo a; sleep 1; echo b'] });
    const f = await cli(root, ['logs', '-f', d.id]);
    expect(f.stdout).toBe('a\nb\n');
    expect((await containers.inspect(d.id, at())).state.status).toBe('exited');
  });

  it('the log is capped: past max-size it rotates, and logs reads both parts', async () => {
    const r = await sh('i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done', { logMaxSize: 4096 });
    expect(r.exitCode).toBe(0);
    const dir = path.join(root, 'containers', r.id);
    const size = (await fsp.stat(path.join(dir, 'log.jsonl'))).size;
    expect(size).toBeLessThanOrEqual(4096);
    const logs = await containers.logs(r.id, at());
    expect(logs.at(-1)!.log).toBe('line299\n');
    expect(logs.length).toBeLessThan(300); // the oldest part is gone
  });
});
