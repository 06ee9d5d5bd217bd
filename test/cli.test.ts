import fsp from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILD_EVENT_VERSION } from '@vlab/image';
import {
  exec,
  freshStore,
  makeContext,
  removeStore,
  repo,
  skopeoInspect,
  snapshotRecords,
  umociUnpack,
} from './helpers.ts';

const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
let root: string;
let ctx: string;
let out: string;

/** Run the CLI; resolves with its exit code and output (never rejects). */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('node', [vbuild, ...args], { env: { ...process.env, VLAB_ROOT: root }, maxBuffer: 64 << 20 });
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

beforeAll(async () => {
  root = await freshStore();
  ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo cli > /cli.txt\nCMD ["cat", "/cli.txt"]\n' });
  out = await fsp.mkdtemp(path.join(root, 'out-'));
});
afterAll(async () => {
  await removeStore(root);
  await fsp.rm(ctx, { recursive: true, force: true });
});

describe('vbuild CLI', () => {
  it('--progress=json prints one event per line; plain shows CACHED on a rebuild', async () => {
    const first = await run(['build', '--progress=json', '-t', 'cli:one', ctx]);
    expect(first.code).toBe(0);
    const events = first.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; version: number });
    expect(events.every((e) => e.version === BUILD_EVENT_VERSION)).toBe(true);
    expect(events[0]!.type).toBe('build-start');
    expect(events.at(-1)!.type).toBe('build-done');
    expect(events.some((e) => e.type === 'step-miss')).toBe(true);
    const second = await run(['build', '--progress', 'plain', '-t', 'cli:one', ctx]);
    expect(second.stderr).toMatch(/#\d+ CACHED/);
  });

  it('a failing build exits 1 and points at the Dockerfile line', async () => {
    const bad = await makeContext({ Dockerfile: 'FROM busybox\n\nRUN false\n' });
    const r = await run(['build', '--progress=plain', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERROR: .*Dockerfile:3:1: .*exit code 1 \[E_RUN_FAILED\]/);
    const parse = await run(['build', await makeContext({ Dockerfile: 'FROM busybox\nCOPPY a b\n' })]);
    expect(parse.code).toBe(1);
    expect(parse.stderr).toMatch(/Dockerfile:2:\d+: .*COPY/);
    const flag = await run(['build', '--bogus', ctx]);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain('unknown flag: --bogus');
  });

  it('--output type=oci, docker, tar and local write what skopeo, tar and ls read', async () => {
    const r = await run([
      'build',
      '-q',
      '-t',
      'cli:out',
      '--output',
      `type=oci,dest=${out}/layout`,
      '--output',
      `type=docker,dest=${out}/docker.tar`,
      '--output',
      `type=tar,dest=${out}/rootfs.tar`,
      '--output',
      `type=local,dest=${out}/rootfs`,
      ctx,
    ]);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    const oci = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${out}/layout:out`])).stdout) as {
      config: { Cmd: string[] };
    };
    expect(oci.config.Cmd).toEqual(['cat', '/cli.txt']);
    const dock = JSON.parse(
      (await exec('skopeo', ['inspect', '--config', `docker-archive:${out}/docker.tar`])).stdout,
    ) as { config: { Cmd: string[] } };
    expect(dock.config.Cmd).toEqual(['cat', '/cli.txt']);
    // the flattened rootfs (names as docker export and BuildKit's tar exporter write them: no ./)
    expect((await exec('tar', ['-tf', `${out}/rootfs.tar`])).stdout.split('\n')).toContain('cli.txt');
    expect(await fsp.readFile(`${out}/rootfs/cli.txt`, 'utf8')).toBe('cli\n');
    expect(id).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it('images, tag, inspect, save, load and rmi', async () => {
    expect((await run(['tag', 'cli:one', 'cli:two'])).code).toBe(0);
    const images = await run(['images']);
    expect(images.stdout).toContain('cli:two');
    const inspect = JSON.parse((await run(['inspect', 'cli:two'])).stdout) as { config: { Cmd: string[] } };
    expect(inspect.config.Cmd).toEqual(['cat', '/cli.txt']);
    expect((await run(['save', '-o', `${out}/saved.tar`, 'cli:two'])).code).toBe(0);
    expect((await run(['rmi', 'cli:two'])).code).toBe(0);
    expect((await run(['inspect', 'cli:two'])).code).toBe(1);
    expect((await run(['load', '-i', `${out}/saved.tar`, 'cli:loaded'])).code).toBe(0);
    const rootfs = await umociUnpack(root, 'cli:loaded');
    expect(await fsp.readFile(path.join(rootfs, 'cli.txt'), 'utf8')).toBe('cli\n');
  });

  it('FROM an image another tool wrote: a skopeo docker-archive and an OCI layout dir, as --build-context', async () => {
    await exec('skopeo', ['copy', `oci:${root}:cli:one`, `docker-archive:${out}/from-skopeo.tar:x/y:z`]);
    await exec('skopeo', ['copy', `oci:${root}:cli:one`, `oci:${out}/skopeo-layout:v1`]);
    const c = await makeContext({
      Dockerfile: `FROM skopeo-tar AS a\nRUN cat /cli.txt > /a.txt\nFROM skopeo-layout\nCOPY --from=a /a.txt /b.txt\n`,
    });
    const contexts = [
      '--build-context',
      `skopeo-tar=docker-archive:${out}/from-skopeo.tar`,
      '--build-context',
      `skopeo-layout=oci-layout://${out}/skopeo-layout:v1`,
    ];
    expect((await run(['build', '-q', '-t', 'cli:ext', ...contexts, c])).code).toBe(0);
    const cfg = await skopeoInspect(root, 'cli:ext');
    expect((cfg as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids.length).toBe(3);
    const rootfs = await umociUnpack(root, 'cli:ext');
    expect(await fsp.readFile(path.join(rootfs, 'b.txt'), 'utf8')).toBe('cli\n');
  });

  it('vbuild import makes a base from a plain rootfs tarball', async () => {
    const dir = await makeContext({ 'etc/os-release': 'NAME=tiny\n' });
    await exec('tar', ['-C', dir, '-czf', `${out}/tiny.tgz`, '.']);
    expect((await run(['import', `${out}/tiny.tgz`, 'tiny:1'])).code).toBe(0);
    const rootfs = await umociUnpack(root, 'tiny:1');
    expect(await fsp.readFile(path.join(rootfs, 'etc/os-release'), 'utf8')).toBe('NAME=tiny\n');
  });
});

describe('a killed build', () => {
  it("SIGKILL mid-RUN: the next build cleans the dead build's mount and snapshot, and no half blob is left", async () => {
    const { spawn } = await import('node:child_process');
    const c = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo start && sleep 20\n' });
    const child = spawn('node', [vbuild, 'build', '--progress=plain', c], { env: { ...process.env, VLAB_ROOT: root } });
    await new Promise<void>((resolve) => {
      let out = '';
      child.stderr.on('data', (d) => {
        out += d;
        if (/#\d+ start\n/.test(out)) resolve(); // the RUN's own output: its container is running
      });
    });
    // the RUN's temp dir (hosts, resolv.conf, spec) carries the build's pid: no finally runs on SIGKILL
    const runDirs = async () => (await fsp.readdir(os.tmpdir())).filter((n) => n.startsWith(`vlab-exec-${child.pid}-`));
    expect(await runDirs()).toHaveLength(1);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const mounted = () =>
      fsp.readFile('/proc/self/mountinfo', 'utf8').then((m) => m.includes(`${root}/tmp/mnt-step-${child.pid}-`));
    expect(await mounted()).toBe(true); // the dead build's overlay is still mounted…
    const ok = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo after > /after\n' });
    expect((await run(['build', '-q', ok])).code).toBe(0);
    expect(await mounted()).toBe(false); // …until the next build recovers it
    expect(await runDirs()).toEqual([]); // and removes its temp dir
    const meta = JSON.stringify(await snapshotRecords(root));
    expect(meta).not.toContain(`step-${child.pid}-`);
    expect((await fsp.readdir(path.join(root, 'blobs/sha256'))).filter((n) => n.startsWith('.tmp'))).toEqual([]);
  });
});
