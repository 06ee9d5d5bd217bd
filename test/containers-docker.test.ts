/**
 * Docker as the oracle: Debian's dockerd (test/docker-daemon.ts: its own data root and socket,
 * no iptables, no bridge) runs the same images (`vbuild save` → `docker load`); exit codes,
 * volumes, what a commit records (config, history, the layer's files) and how a paused container
 * shows and stops are compared with the vbuild CLI's. Skipped, with the reason, where dockerd
 * cannot run.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, containers, run } from '@vlab/image';
import { freshStore, removeStore } from './helpers.ts';
import { cli, type CliResult } from './containers-helpers.ts';
import { dockerdMissing, startDockerd, type Dockerd } from './docker-daemon.ts';
import { committedImage } from './containers-commit-helpers.ts';

let root: string;
let tmp: string;
let daemon: Dockerd | undefined;
let skip = dockerdMissing() ?? '';

/** The docker client with the daemon's exit code (never rejects), as `cli` gives ours. */
const docker = async (...args: string[]): Promise<CliResult> => {
  try {
    return { code: 0, ...(await daemon!.docker(args)) };
  } catch (e) {
    const x = e as { code: unknown; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
};
const vbuild = (...args: string[]) => cli(root, args);
type Tool = typeof docker;

beforeAll(async () => {
  root = await freshStore();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vd-'));
  if (!skip) daemon = await startDockerd().catch((e: Error) => ((skip = e.message), undefined));
  if (skip) {
    console.warn(`containers-docker: skipped, docker is not the oracle here: ${skip}`);
    return;
  }
  await build({
    root,
    context: tmp,
    dockerfile: {
      text: [
        'FROM busybox',
        'ENV A=1 B=two',
        'WORKDIR /work',
        'USER nobody',
        'ENTRYPOINT ["sh", "-c"]',
        'CMD ["echo hi"]',
      ].join('\n'),
    },
    tags: ['cfg:latest'],
  });
  for (const img of ['busybox', 'cfg']) {
    const saved = await vbuild('save', '-o', `${tmp}/${img}.tar`, img);
    expect(saved.code, saved.stderr).toBe(0);
    expect((await docker('load', '-i', `${tmp}/${img}.tar`)).code).toBe(0);
  }
}, 120_000);
afterAll(async () => {
  await daemon?.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  for (const c of await containers.list({ all: true, root }).catch(() => []))
    await containers.remove(c.config.id, { force: true, volumes: true, root }).catch(() => undefined);
  await removeStore(root);
}, 60_000);

describe('containers against docker', () => {
  it('exit codes of a failing, a missing and a non-executable command are docker run’s', async (ctx) => {
    if (skip) return ctx.skip();
    for (const cmd of [['sh', '-c', 'exit 3'], ['nonexistent'], ['/etc/passwd'], ['sh', '-c', 'kill -9 $$']]) {
      const theirs = await docker('run', '--rm', '--network', 'none', 'busybox:latest', ...cmd);
      const ours = await run({ root, image: 'busybox', cmd, autoRemove: true });
      expect(ours.exitCode, cmd.join(' ')).toBe(theirs.code);
    }
  });

  it('a named volume keeps its data after rm, as in docker', async (ctx) => {
    if (skip) return ctx.skip();
    const seq = async (r: (cmd: string[]) => Promise<string>) => {
      await r(['sh', '-c', 'echo kept > /v/f']);
      return r(['cat', '/v/f']);
    };
    const theirs = await seq(
      async (cmd) => (await docker('run', '--rm', '--network', 'none', '-v', 'dv:/v', 'busybox:latest', ...cmd)).stdout,
    );
    const ours = await seq(async (cmd) => {
      let s = '';
      await run({ root, image: 'busybox', cmd, volumes: ['dv:/v'], autoRemove: true, onOutput: (_, c) => (s += c) });
      return s;
    });
    expect(ours).toBe(theirs);
    expect(ours).toBe('kept\n');
  });

  // Each case: `run` flags and command, then `commit` flags; docker's and ours are saved as docker
  // archives and compared: the config, the last history entry, the layer count, the new layer's files.
  const cases: [string, string[], string[]][] = [
    [
      'touch, rm, rm -rf and mkdir again (whiteouts, an opaque dir), -m and -c CMD/ENV/WORKDIR',
      [
        'busybox',
        'sh',
        '-c',
        'touch /new; rm /bin/ls; mkdir -p /d/e; echo x > /d/e/f; rm -rf /home; echo y > /etc/passwd; rm -rf /root; mkdir /root; touch /root/x',
      ],
      ['-m', 'a message', '-c', 'CMD ["sh"]', '-c', 'ENV X=1', '-c', 'WORKDIR w'],
    ],
    ['nothing changed: the image config inherited, an empty_layer entry', ['cfg'], []],
    [
      'run flags (-e, -w, -u, --entrypoint) then -c USER/ENTRYPOINT/CMD (shell form)/ENV',
      ['-e', 'Z=3', '-e', 'A=9', '-w', '/tmp', '-u', 'root', '--entrypoint', '/bin/echo', 'cfg', 'a', 'b'],
      ['-c', 'USER 1:2', '-c', 'ENTRYPOINT ["x"]', '-c', 'CMD echo hi', '-c', 'ENV B=3 C=4', '-c', 'LABEL l=v'],
    ],
  ];
  it.for(cases)('commit: %s, as docker commit', async ([, runArgs, commitArgs], ctx) => {
    if (skip) return ctx.skip();
    const name = `cm${cases.findIndex((c) => c[1] === runArgs)}`;
    const commitWith = async (tool: Tool, save: string[]) => {
      const r = await tool('run', '--name', name, '--network', 'none', ...runArgs);
      expect(r.code, r.stderr).toBe(0);
      const c = await tool('commit', ...commitArgs, name, `${name}:out`);
      expect(c.code, c.stderr).toBe(0);
      const archive = path.join(tmp, `${name}-${tool === docker ? 'docker' : 'vbuild'}.tar`);
      expect((await tool('save', ...save, '-o', archive, `${name}:out`)).code).toBe(0);
      await tool('rm', name);
      return committedImage(archive);
    };
    const theirs = await commitWith(docker, []);
    const ours = await commitWith(vbuild, ['--format', 'docker']);
    // dockerd orders the run's own -e variables differently from run to run (seen both ways on one
    // daemon): their set, their place before the image's variables and the image's order are compared
    const runNames = new Set(runArgs.flatMap((a, i) => (runArgs[i - 1] === '-e' ? [a.split('=')[0]!] : [])));
    const envShape = (config: any) => {
      const env: string[] = config?.Env ?? [];
      const k = env.findIndex((e) => !runNames.has(e.split('=')[0]!));
      const head = env.slice(0, k < 0 ? env.length : k);
      return { ...config, Env: [...head.sort(), ...env.slice(head.length)] };
    };
    expect(envShape(ours.config)).toEqual(envShape(theirs.config));
    expect(ours.history).toEqual(theirs.history);
    expect(ours.layers).toBe(theirs.layers);
    expect(ours.files).toEqual(theirs.files);
  });

  it('commit of a running container: paused while read, the runtime’s mountpoints left out, as docker', async (ctx) => {
    if (skip) return ctx.skip();
    const commitRunning = async (tool: Tool, save: string[]) => {
      const script = 'mkdir /run1 && touch /run1/f && echo ok && exec sleep 100';
      expect((await tool('run', '-d', '--name', 'cmr', '--network', 'none', 'busybox', 'sh', '-c', script)).code).toBe(
        0,
      );
      for (let i = 0; i < 100 && !(await tool('logs', 'cmr')).stdout.includes('ok'); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect((await tool('commit', 'cmr', 'cmr:out')).code).toBe(0);
      const state = (JSON.parse((await tool('inspect', 'cmr')).stdout) as { State: { Paused: boolean } }[])[0]!.State;
      const archive = path.join(tmp, `cmr-${tool === docker ? 'docker' : 'vbuild'}.tar`);
      expect((await tool('save', ...save, '-o', archive, 'cmr:out')).code).toBe(0);
      await tool('rm', '-f', 'cmr');
      return { ...(await committedImage(archive)), paused: state.Paused };
    };
    const theirs = await commitRunning(docker, []);
    const ours = await commitRunning(vbuild, ['--format', 'docker']);
    expect(ours.files).toEqual(theirs.files);
    expect(ours.history).toEqual(theirs.history);
    expect(ours.paused).toBe(false); // thawed after the commit
  });
});

describe('a paused container against docker', () => {
  /** ps's row and inspect's State of a paused `sleep`, then rm (refused), kill -s USR1, stop, rm -f. */
  const pausedLife = async (tool: Tool, psJson: string[]) => {
    // set up through the API on our side: the CLI is what is compared, and each of its starts costs
    const start = async (name: string) => {
      if (tool === docker) {
        expect((await tool('run', '-d', '--name', name, '--network', 'none', 'busybox', 'sleep', '100')).code).toBe(0);
        expect((await tool('pause', name)).code).toBe(0);
      } else {
        await run({ root, image: 'busybox', name, detach: true, cmd: ['sleep', '100'] });
        await containers.pause(name, { root });
      }
    };
    await start('pz1');
    const row = (await tool('ps', ...psJson)).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { Names: string; State: string; Status: string })
      .find((r) => r.Names === 'pz1');
    const inspect = async (name: string) =>
      (JSON.parse((await tool('inspect', name)).stdout) as { State: Record<string, unknown> }[])[0]!.State;
    const { Status, Running, Paused } = await inspect('pz1');
    const rm = await tool('rm', 'pz1');
    const usr1 = await tool('kill', '-s', 'USR1', 'pz1'); // ignored by sleep as pid 1; docker thaws it
    const afterKill = await inspect('pz1');
    expect((await tool('pause', 'pz1')).code).toBe(0);
    const stop = await tool('stop', '-t', '1', 'pz1'); // TERM is ignored by pid 1: SIGKILL after 1 s
    const stopped = await inspect('pz1');
    await start('pz2');
    const rmf = await tool('rm', '-f', 'pz2');
    const gone = await tool('inspect', 'pz2');
    await tool('rm', 'pz1');
    return {
      ps: { State: row?.State, Status: /^Up .* \(Paused\)$/.test(row?.Status ?? '') },
      inspect: { Status, Running, Paused },
      rm: { code: rm.code, paused: /paused/i.test(rm.stderr) },
      kill: { code: usr1.code, Status: afterKill.Status, Paused: afterKill.Paused },
      stop: { code: stop.code, Status: stopped.Status, ExitCode: stopped.ExitCode, Paused: stopped.Paused },
      rmf: rmf.code,
      goneAfterRmf: gone.code !== 0,
    };
  };

  it('ps, inspect, rm, kill, stop and rm -f of a paused container are docker’s', async (ctx) => {
    if (skip) return ctx.skip();
    const theirs = await pausedLife(docker, ['--format', '{{json .}}']);
    const ours = await pausedLife(vbuild, ['--format', 'json']);
    expect(theirs.inspect).toEqual({ Status: 'paused', Running: true, Paused: true });
    expect(ours).toEqual(theirs);
  });
});
