/**
 * exec, pause/unpause, top, diff, commit and cp through the API, on a detached busybox container
 * (the store's busybox image, made by examples/hello/make-base.sh).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ContainerService } from '../packages/core/src/containers/service.ts';
import {
  execContainer,
  isPaused,
  pauseContainer,
  topContainer,
  unpauseContainer,
} from '../packages/core/src/containers/process-ops.ts';
import { commitContainer, copyFrom, copyTo, diffContainer } from '../packages/core/src/containers/snapshot-ops.ts';
import { freshStore, removeStore } from './helpers.ts';
import { cli } from './containers-helpers.ts';

let root: string;
let svc: ContainerService;
let tmp: string;
let id: string;

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code,
  );

beforeAll(async () => {
  root = await freshStore();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-ctr-ops-'));
  svc = await ContainerService.open(root);
  const { container } = await svc.run({
    image: 'busybox',
    name: 'ops',
    cmd: ['sh', '-c', 'echo hi > /greeting; rm /etc/group; exec sleep 1000'],
  });
  id = container.config.id;
  for (let i = 0; i < 100; i++) {
    if (
      await fsp.access(`/proc/${(await svc.get(id)).state.pid}/root/greeting`).then(
        () => true,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 20));
  }
});
afterAll(async () => {
  await svc?.remove(id, { force: true }).catch(() => undefined);
  for (const c of (await svc?.list({ all: true })) ?? []) await svc.remove(c.config.id, { force: true });
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  if (root) await removeStore(root);
});

const exec = async (argv: string[], opts: Parameters<typeof execContainer>[3] = {}) => {
  let out = '';
  const r = await execContainer(svc, 'ops', argv, { ...opts, onOutput: (_s, b) => (out += b) });
  return { code: r.exitCode, out };
};

describe('containers: exec, pause, top (running)', () => {
  it("exec runs in the container: its files, pid namespace, env, workdir, user; the command's exit code", async () => {
    expect(await exec(['cat', '/greeting'])).toEqual({ code: 0, out: 'hi\n' });
    const ps = await exec(['sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "']);
    expect(ps.out).toBe('sleep 1000 ');
    const env = await exec(['sh', '-c', 'echo $FOO; pwd; id -u'], {
      env: ['FOO=bar'],
      workdir: '/tmp',
      user: 'nobody',
    });
    expect(env.out).toBe('bar\n/tmp\n65534\n');
    expect((await exec(['sh', '-c', 'exit 5'])).code).toBe(5);
    expect((await exec(['no-such-command'])).code).toBe(127);
    const tty = await exec(['sh', '-c', 'tty; stty size'], { tty: { rows: 20, cols: 70 } });
    expect(tty.out.replace(/\r/g, '')).toBe('/dev/pts/0\n20 70\n');
  });

  it('top lists its processes; pause freezes them (exec refused, pause twice refused), unpause thaws', async () => {
    const t = await topContainer(svc, 'ops');
    expect(t.titles).toEqual(['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
    expect(t.processes.map((p) => p[7])).toEqual(['sleep 1000']);
    expect(t.processes[0]![1]).toBe(String((await svc.get('ops')).state.pid));
    await pauseContainer(svc, 'ops');
    try {
      expect(await isPaused(await svc.get('ops'))).toBe(true);
      const status = await fsp.readFile(`/proc/${t.processes[0]![1]}/status`, 'utf8');
      expect(status).toMatch(/^State:\s+D/m); // frozen tasks sleep uninterruptibly in the freezer
      expect(await code(pauseContainer(svc, 'ops'))).toBe('E_CONTAINER_PAUSED');
      expect(await code(execContainer(svc, 'ops', ['true']))).toBe('E_CONTAINER_PAUSED');
    } finally {
      await unpauseContainer(svc, 'ops');
    }
    expect(await isPaused(await svc.get('ops'))).toBe(false);
    expect(await code(unpauseContainer(svc, 'ops'))).toBe('E_CONTAINER_NOT_PAUSED');
    expect((await exec(['true'])).code).toBe(0);
  });
});

describe('containers: diff, commit, cp', () => {
  it("diff lists the writable layer's A/C/D without the runtime's mountpoints", async () => {
    const d = (await diffContainer(svc, 'ops')).map((c) => `${c.kind} ${c.path}`);
    expect(d).toEqual(expect.arrayContaining(['A /greeting', 'D /etc/group']));
    expect(d.filter((l) => /\/(proc|sys|dev|etc\/hosts|etc\/hostname|etc\/resolv\.conf)$/.test(l))).toEqual([]);
    expect(d).toContain('C /etc'); // D /etc/group is below it
  });

  it('commit makes an image of the layer (history, -c config) that runs; a bad name is refused first', async () => {
    expect(await code(commitContainer(svc, 'ops', 'Bad Name!'))).toBe('E_BAD_REF');
    const img = await commitContainer(svc, 'ops', 'committed:v1', {
      message: 'greeting added',
      changes: ['CMD ["cat", "/greeting"]', 'ENV COMMITTED=1'],
    });
    expect(await isPaused(await svc.get('ops'))).toBe(false); // paused while read, thawed after
    const last = img.config.history[img.config.history.length - 1]!;
    expect(last).toMatchObject({
      comment: 'greeting added',
      created_by: 'sh -c echo hi > /greeting; rm /etc/group; exec sleep 1000',
    });
    expect(img.config.config.Cmd).toEqual(['cat', '/greeting']);
    expect(img.config.config.Env).toContain('COMMITTED=1');
    expect(img.manifest.layers.length).toBe(img.config.rootfs.diff_ids.length);
    let out = '';
    const r = await svc.run(
      { image: 'committed:v1', autoRemove: true },
      { attach: { onOutput: (_s, b) => (out += b) } },
    );
    expect([r.exitCode, out]).toEqual([0, 'hi\n']);
    let ls = '';
    await svc.run(
      {
        image: 'committed:v1',
        autoRemove: true,
        cmd: ['sh', '-c', 'ls /etc/group /proc/1 >/dev/null 2>&1; echo $?; ls -d /etc/hosts'],
      },
      { attach: { onOutput: (_s, b) => (ls += b) } },
    );
    expect(ls).toBe('1\n/etc/hosts\n'); // /etc/group deleted in the layer
  });

  it('cp both ways, in-root: a symlink to a host dir made in the container reaches nothing', async () => {
    const marker = path.join(tmp, 'marker');
    await fsp.mkdir(marker);
    await fsp.writeFile(path.join(marker, 'secret'), 'host secret');
    expect((await exec(['ln', '-s', marker, '/evil'])).code).toBe(0);
    await copyFrom(svc, 'ops', '/greeting', path.join(tmp, 'g'));
    expect(await fsp.readFile(path.join(tmp, 'g'), 'utf8')).toBe('hi\n');
    expect(await code(copyFrom(svc, 'ops', '/evil/secret', path.join(tmp, 's')))).toBe('E_CP_NOT_FOUND');
    await fsp.writeFile(path.join(tmp, 'in'), 'to the container');
    expect(await code(copyTo(svc, 'ops', path.join(tmp, 'in'), '/evil/in'))).toBe('E_CP_DEST');
    await copyTo(svc, 'ops', path.join(tmp, 'in'), '/tmp/');
    expect((await exec(['cat', '/tmp/in'])).out).toBe('to the container');
    expect(await fsp.readdir(marker)).toEqual(['secret']);
    expect(await fsp.readFile(path.join(marker, 'secret'), 'utf8')).toBe('host secret');
  });

  it('cp into a dir the running container swaps for a link to a host dir, in a loop: the host dir never gets it', async () => {
    const hostDir = path.join(tmp, 'swap-target');
    await fsp.mkdir(hostDir);
    await fsp.writeFile(path.join(hostDir, 'own'), 'host');
    await fsp.writeFile(path.join(tmp, 'racing'), 'to the container');
    await fsp.mkdir(path.join(tmp, 'racing-dir'));
    await fsp.writeFile(path.join(tmp, 'racing-dir', 'f'), 'f');
    // inside the container the link's target is nothing; through /proc/PID/root the host follows it to hostDir
    const loop = `while :; do mv /dir /dir.away && ln -s ${hostDir} /dir; rm -f /dir; mv /dir.away /dir; done`;
    const started = await exec(['sh', '-c', `mkdir -p /dir; (${loop}) >/dev/null 2>&1 & echo $! > /swapper.pid`]);
    expect(started.code).toBe(0);
    const outcomes = new Map<string, number>();
    try {
      const until = Date.now() + 2000;
      for (let n = 0; Date.now() < until || n < 20; n++) {
        const src = n % 2 ? path.join(tmp, 'racing-dir') : path.join(tmp, 'racing');
        const got = (await code(copyTo(svc, 'ops', src, '/dir/'))) ?? 'error';
        outcomes.set(got, (outcomes.get(got) ?? 0) + 1);
        expect(await fsp.readdir(hostDir)).toEqual(['own']);
      }
    } finally {
      await exec(['sh', '-c', 'kill $(cat /swapper.pid)']);
    }
    // refused while /dir was a link or away (E_CP_DEST, E_LAYER_UNSAFE; E_CONTEXT_CHANGED: a link replaced as it was resolved), else copied into the container's /dir
    expect(
      [...outcomes.keys()].filter((k) => !['ok', 'E_LAYER_UNSAFE', 'E_CP_DEST', 'E_CONTEXT_CHANGED'].includes(k)),
    ).toEqual([]);
    expect(outcomes.get('ok')).toBeGreaterThan(0);
    expect(await fsp.readFile(path.join(hostDir, 'own'), 'utf8')).toBe('host');
  });

  it('a stopped container: exec, pause, top refused (E_CONTAINER_NOT_RUNNING); diff and cp still work', async () => {
    await svc.stop('ops', { timeout: 1 });
    // one at a time: a call made before the previous is awaited rejects with no handler yet
    for (const call of [
      () => execContainer(svc, 'ops', ['true']),
      () => pauseContainer(svc, 'ops'),
      () => topContainer(svc, 'ops'),
    ])
      expect(await code(call())).toBe('E_CONTAINER_NOT_RUNNING');
    const d = (await diffContainer(svc, 'ops')).map((c) => `${c.kind} ${c.path}`);
    expect(d).toContain('A /greeting');
    // stop ended in SIGKILL (sleep as pid 1 ignores SIGTERM): the launcher died before removing
    // its mountpoints; the cleanup did it from the spec
    expect(d.filter((l) => /\/(etc\/host|etc\/resolv|proc$|sys$|dev$)/.test(l))).toEqual([]);
    await copyFrom(svc, 'ops', '/tmp/in', path.join(tmp, 'back'));
    expect(await fsp.readFile(path.join(tmp, 'back'), 'utf8')).toBe('to the container');
    await copyTo(svc, 'ops', path.join(tmp, 'back'), '/back');
    expect((await diffContainer(svc, 'ops')).map((c) => `${c.kind} ${c.path}`)).toContain('A /back');
  });
});

describe('containers: a paused container', () => {
  it('stop and rm -f end it (thawed after the signal, as docker does)', async () => {
    const { container } = await svc.run({ image: 'busybox', name: 'paused', cmd: ['sleep', '1000'] });
    await pauseContainer(svc, 'paused');
    const t0 = Date.now();
    await svc.stop('paused', { timeout: 1 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await svc.get('paused')).state.status).toBe('exited');
    await svc.start('paused');
    await pauseContainer(svc, 'paused');
    await svc.remove('paused', { force: true });
    expect(await code(svc.get(container.config.id))).not.toBe('ok');
  });
});

describe('containers: --network private, -p, port', () => {
  it.skipIf(!fs.existsSync('/usr/bin/pasta'))(
    'publishes a server in the container on 127.0.0.1; port lists it; -p on none is refused',
    async () => {
      const hostPort = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as net.AddressInfo).port;
          s.close(() => resolve(p));
        });
      });
      await svc.run({
        image: 'busybox',
        name: 'web',
        network: 'private',
        publish: [`127.0.0.1:${hostPort}:80`],
        cmd: ['sh', '-c', 'while :; do nc -l -p 80 -e echo hello; done'],
      });
      let got = '';
      for (let i = 0; i < 100 && !got; i++) {
        got = await new Promise<string>((resolve) => {
          let d = '';
          const c = net.connect(hostPort, '127.0.0.1');
          c.on('data', (b) => (d += b));
          c.on('close', () => resolve(d));
          c.on('error', () => resolve(''));
        });
        if (!got) await new Promise((r) => setTimeout(r, 50));
      }
      expect(got).toBe('hello\n');
      const p = await cli(root, ['port', 'web']);
      expect(p.stdout).toBe(`80/tcp -> 127.0.0.1:${hostPort}\n`);
      expect((await cli(root, ['port', 'web', '81'])).code).toBe(1);
      await svc.remove('web', { force: true });
      expect(await code(svc.run({ image: 'busybox', publish: ['1:2'], cmd: ['true'] }))).toBe('E_BAD_ARG');
    },
  );
});
