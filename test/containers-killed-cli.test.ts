/**
 * A foreground `vbuild run` (direct, not through the warm server) SIGKILLed while it starts its
 * container: at a point fixed by the VLAB_TESTING_STOP_AT hook (the CLI stops itself there and the
 * test kills it), never a sleep race. As with docker, whose daemon outlives a killed client: the
 * record tells the truth (running, then the real exit code for wait and ps -a) and the mount and
 * cgroup go when the container ends, by its monitor alone.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cgroup, detectCgroupLayout } from '../packages/core/src/exec/cgroups.ts';
import { cgroupParentOf } from '../packages/core/src/store/paths.ts';
import { freshStore, removeStore } from './helpers.ts';
import { cli, stateOf, type CliResult } from './containers-helpers.ts';
import { until } from './cli-server-harness.ts';

let root: string;

beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  for (const name of ['held-state', 'held-go']) await cli(root, ['rm', '-f', name]).catch(() => undefined);
  await removeStore(root);
});

/** `vbuild run --name NAME …` (a container that ends, exit 5, once /go exists) stopped at `point`, SIGKILLed once `ready`. */
async function killedAt(point: string, name: string, ready: (id: string) => boolean): Promise<string> {
  let child!: ChildProcess;
  let reached!: () => void;
  const stopped = new Promise<void>((r) => (reached = r));
  const done = cli(
    root,
    [
      'run',
      '--name',
      name,
      'busybox',
      'sh',
      '-c',
      'echo start; until [ -e /go ]; do sleep 0.05; done; echo end; exit 5',
    ],
    (c) => {
      child = c;
      let err = '';
      c.stderr!.on('data', (b: Buffer) => {
        err += b.toString();
        if (err.includes(`vbuild testing: stopped at ${point}\n`)) reached();
      });
    },
    { VLAB_TESTING_STOP_AT: point },
  );
  await Promise.race([
    stopped,
    done.then((r: CliResult) => {
      throw new Error(`the run ended (${r.code}) before it stopped at ${point}: ${r.stderr}`);
    }),
  ]);
  const id = await fsp.readFile(path.join(root, 'containers', '.names', name), 'utf8');
  await until(`${name} to be ready to kill`, () => ready(id));
  child.kill('SIGKILL');
  expect((await done).code).toBe(128);
  return id;
}

const logOf = (id: string) => fs.readFileSync(path.join(root, 'containers', id, 'log.jsonl'), 'utf8');
const mounted = (id: string) =>
  fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${path.join(root, 'containers', id, 'rootfs')} `);

/** Every hierarchy's dir of the container's cgroup that still exists. */
async function cgroupDirs(id: string): Promise<string[]> {
  const cg = Cgroup.at(await detectCgroupLayout(), `${cgroupParentOf(root)}/ctr-${id}`);
  return Object.values(cg.dirs).filter((d) => fs.existsSync(d));
}

async function cleanedByItsMonitor(id: string): Promise<void> {
  await until('the monitor to clean up', () => {
    const s = JSON.parse(fs.readFileSync(path.join(root, 'containers', id, 'state.json'), 'utf8')) as {
      cleaned?: boolean;
    };
    return s.cleaned === true;
  });
  expect(mounted(id)).toBe(false);
  expect(await cgroupDirs(id)).toEqual([]);
}

describe('a direct foreground run killed while it starts', () => {
  it('after the container ran, before the CLI recorded its pid: running (pid 1 found), then wait/ps -a give the real exit code, the monitor frees mount and cgroup', async () => {
    const id = await killedAt('start-state', 'held-state', (i) => logOf(i).includes('"start\\n"'));
    // the record says running (with its monitor) while the container runs on
    expect(await stateOf(root, id)).toMatchObject({ status: 'running', pid: 0 });
    // its pid 1 is found all the same (the monitor's pid file): stop, kill and exec can reach it
    const inspect = JSON.parse((await cli(root, ['inspect', 'held-state'])).stdout) as [
      { State: { Running: boolean; Pid: number } },
    ];
    expect(inspect[0].State).toMatchObject({ Running: true, Pid: expect.any(Number) });
    expect(fs.readFileSync(`/proc/${inspect[0].State.Pid}/cmdline`, 'utf8')).toMatch(/^sh\0-c\0echo start/);
    fs.writeFileSync(path.join(root, 'containers', id, 'rootfs', 'go'), ''); // it ends now
    const wait = await cli(root, ['wait', 'held-state']);
    expect(wait, wait.stderr).toMatchObject({ code: 0, stdout: '5\n' });
    expect((await cli(root, ['logs', 'held-state'])).stdout).toBe('start\nend\n');
    const ps = await cli(root, ['ps', '-a', '--format', 'json']);
    expect(JSON.parse(ps.stdout)).toMatchObject({ Names: 'held-state', State: 'exited', Status: /^Exited \(5\) / });
    await cleanedByItsMonitor(id);
    expect((await cli(root, ['rm', 'held-state'])).code).toBe(0);
  });

  it('before the monitor had its go: nothing of the container ran, 125 with why, the monitor frees mount and cgroup', async () => {
    const id = await killedAt('start-go', 'held-go', () => true);
    await cleanedByItsMonitor(id);
    expect(logOf(id)).toBe('');
    const wait = await cli(root, ['wait', 'held-go']);
    expect(wait, wait.stderr).toMatchObject({ code: 0, stdout: '125\n' });
    const inspect = JSON.parse((await cli(root, ['inspect', 'held-go'])).stdout) as [{ State: { Error: string } }];
    expect(inspect[0].State.Error).toMatch(/not started: its caller .* was gone before the start/);
    expect((await cli(root, ['rm', 'held-go'])).code).toBe(0);
  });
});
