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
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cgroup, detectCgroupLayout } from '../packages/core/src/exec/cgroups.ts';
import { cgroupParentOf } from '../packages/core/src/store/paths.ts';
import { freshStore, removeStore, repo } from './helpers.ts';
import { cli, procState, stateOf, type CliResult } from './containers-helpers.ts';
import { until } from './cli-server-harness.ts';
import { procStart } from '../packages/core/src/containers/liveness.ts';

let root: string;

beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  for (const name of ['held-state', 'held-go', 'held-spawn', 'held-first', 'held-fail', 'held-race'])
    await cli(root, ['rm', '-f', name]).catch(() => undefined);
  await removeStore(root);
});

const runArgs = (name: string) => [
  'run',
  '--name',
  name,
  'busybox',
  'sh',
  '-c',
  'echo start; until [ -e /go ]; do sleep 0.05; done; echo end; exit 5',
];

/**
 * Once `child` is stopped at `point` (debug/stop-at.ts): its message seen, then the stop itself in
 * /proc. The message comes first, so a SIGCONT sent between the two is lost and the child then
 * stays stopped for good (CI: a test waited on such a `vbuild start` until vitest's 60 s; here 2
 * of 10 looped runs at load 10 on 2 cores). Bounded, and a child that ends first fails it.
 */
async function untilStopped(
  child: ChildProcess,
  point: string,
  done: Promise<{ code: number; stderr: string }>,
): Promise<void> {
  let err = '';
  let said!: () => void;
  const saidIt = new Promise<void>((r) => (said = r));
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    if (err.includes(`vbuild testing: stopped at ${point}\n`)) said();
  });
  const ended = done.then((r) => {
    throw new Error(`it ended (${r.code}) before it stopped at ${point}: ${r.stderr}`);
  });
  await Promise.race([saidIt, ended]);
  await Promise.race([
    until(`it to stop at ${point}`, () => ['T', 't'].includes(procState(child.pid!) ?? 'gone')),
    ended,
  ]);
}

/** `vbuild ARGS` stopped at `point` (the CLI stopped itself there: SIGCONT or SIGKILL it). */
async function stoppedAt(point: string, args: string[]): Promise<{ child: ChildProcess; done: Promise<CliResult> }> {
  let child!: ChildProcess;
  const done = cli(root, args, (c) => (child = c), { VLAB_TESTING_STOP_AT: point });
  await untilStopped(child, point, done);
  return { child, done };
}

const idOf = (name: string) => fsp.readFile(path.join(root, 'containers', '.names', name), 'utf8');

/** `vbuild ARGS` (by default a run of NAME: a container that ends, exit 5, once /go exists) stopped at `point`, SIGKILLed once `ready`. */
async function killedAt(
  point: string,
  name: string,
  ready: (id: string) => boolean,
  args = runArgs(name),
): Promise<string> {
  const { child, done } = await stoppedAt(point, args);
  const id = await idOf(name);
  await until(`${name} to be ready to kill`, () => ready(id));
  child.kill('SIGKILL');
  expect((await done).code).toBe(128);
  return id;
}

const logOf = (id: string) => fs.readFileSync(path.join(root, 'containers', id, 'log.jsonl'), 'utf8');
/** How many mounts are stacked on its rootfs. */
const mounts = (id: string) =>
  fs.readFileSync('/proc/self/mountinfo', 'utf8').split(` ${path.join(root, 'containers', id, 'rootfs')} `).length - 1;
const mounted = (id: string) => mounts(id) > 0;
/** The executor's run dirs (vlab-exec-*) left in its state dir. */
const runDirs = (id: string) =>
  fs.readdirSync(path.join(root, 'containers', id)).filter((n) => n.startsWith('vlab-exec-'));
const stateFile = (id: string) => path.join(root, 'containers', id, 'state.json');

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
  expect(runDirs(id)).toEqual([]);
}

describe('the stop-at hook', () => {
  it('a SIGCONT sent once the stop is seen resumes it, however late the stop comes after its message', async () => {
    // the real hook, its stop 300 ms after its message: as a CLI preempted right between the two
    const code = `import { stopAt } from ${JSON.stringify(path.join(repo, 'packages/core/src/debug/stop-at.ts'))};
const kill = process.kill.bind(process);
process.kill = (pid, sig) => { for (const t = Date.now() + 300; Date.now() < t; ); return kill(pid, sig); };
stopAt('late');
process.stdout.write('resumed');`;
    const child = spawn('node', ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: repo,
      env: { ...process.env, VLAB_TESTING_STOP_AT: 'late' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const done = new Promise<{ code: number; stderr: string }>((r) =>
      child.on('close', (c) => r({ code: c ?? 128, stderr: err })),
    );
    try {
      await untilStopped(child, 'late', done);
      child.kill('SIGCONT');
      await until('it to resume and end', () => out === 'resumed' && child.exitCode === 0, 5_000);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

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

  it('a first start killed after it spawned the monitor, before the running record: the monitor frees the run dir too', async () => {
    const id = await killedAt('start-spawned', 'held-first', () => true);
    await cleanedByItsMonitor(id);
    const wait = await cli(root, ['wait', 'held-first']);
    expect(wait, wait.stderr).toMatchObject({ code: 0, stdout: '125\n' });
    expect((await cli(root, ['rm', 'held-first'])).code).toBe(0);
  });

  it('a stopped one started again, killed after it spawned the monitor, before the running record: 125, mount, cgroup and run dir freed, the next start mounts once, rm -f frees it', async () => {
    const first = await cli(root, ['run', '--name', 'held-spawn', 'busybox', 'true']);
    expect(first, first.stderr).toMatchObject({ code: 0 });
    const id = await killedAt('start-spawned', 'held-spawn', () => true, ['start', 'held-spawn']);
    await cleanedByItsMonitor(id);
    const wait = await cli(root, ['wait', 'held-spawn']);
    expect(wait, wait.stderr).toMatchObject({ code: 0, stdout: '125\n' });
    const again = await stoppedAt('start-state', ['start', 'held-spawn']);
    expect(mounts(id)).toBe(1); // no second overlay on the same upper dir
    again.child.kill('SIGCONT');
    expect((await again.done).code).toBe(0);
    expect((await cli(root, ['rm', '-f', 'held-spawn'])).code).toBe(0);
    expect(mounted(id)).toBe(false);
    expect(fs.readdirSync(path.join(root, 'containers')).filter((n) => n.startsWith('.rm-'))).toEqual([]);
  });

  it('a failure after the go (its record unwritable): the monitor is killed, nothing freed under the container, the record says running until its end is seen', async () => {
    const { child, done } = await stoppedAt('start-state', runArgs('held-fail'));
    const id = await idOf('held-fail');
    const saved = fs.readFileSync(stateFile(id), 'utf8');
    const monitor = (JSON.parse(saved) as { monitorPid: number }).monitorPid;
    fs.rmSync(stateFile(id));
    fs.mkdirSync(path.join(stateFile(id), 'x'), { recursive: true }); // every write of the record fails
    child.kill('SIGCONT');
    const r = await done;
    expect(r.code, r.stderr).not.toBe(0);
    expect(mounted(id)).toBe(true); // not unmounted under a container that may still run
    await until('its monitor to be gone', () => procStart(monitor) === undefined);
    fs.rmSync(stateFile(id), { recursive: true });
    fs.writeFileSync(stateFile(id), saved); // as a record it could not write leaves it: running
    const wait = await cli(root, ['wait', 'held-fail']);
    expect(wait, wait.stderr).toMatchObject({ code: 0, stdout: '-1\n' });
    expect((await cli(root, ['rm', 'held-fail'])).code).toBe(0);
    expect(mounted(id)).toBe(false);
    expect(await cgroupDirs(id)).toEqual([]);
  });

  it('a refresh that read running without pid 1 writes nothing over the end recorded meanwhile', async () => {
    const id = await killedAt('start-state', 'held-race', (i) => logOf(i).includes('"start\\n"'));
    const inspect = await stoppedAt('refresh-write', ['inspect', 'held-race']);
    fs.writeFileSync(path.join(root, 'containers', id, 'rootfs', 'go'), ''); // it ends now
    await cleanedByItsMonitor(id);
    inspect.child.kill('SIGCONT');
    expect((await inspect.done).code).toBe(0);
    expect(await stateOf(root, id)).toMatchObject({ status: 'exited', exitCode: 5, cleaned: true });
  });
});
