import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootId, initPid, observedState, procStart } from './liveness.ts';
import { initialState } from './records.ts';
import type { ContainerState } from './types.ts';

let dir: string;
let exitFile: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-liveness-'));
  exitFile = path.join(dir, 'exit.json');
});
afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

const running = (): ContainerState => ({
  ...initialState(),
  status: 'running',
  monitorPid: process.pid, // alive: only exit.json can end it
  monitorStart: procStart(process.pid),
  bootId: bootId(),
});
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
}
const exit = (body: object) => fsp.writeFile(exitFile, JSON.stringify(body));

describe('observedState', () => {
  it('a created record: unchanged without exit.json, ended by one (its starter died before writing it)', async () => {
    await fsp.rm(exitFile, { force: true });
    expect(await observedState(initialState(), exitFile)).toBeUndefined();
    await exit({ exitCode: 5, signal: null, finishedAt: '2026-12-02T00:00:00.000000000Z' });
    expect(await observedState(initialState(), exitFile)).toMatchObject({
      status: 'exited',
      exitCode: 5,
      finishedAt: '2026-12-02T00:00:00.000000000Z',
      error: undefined,
    });
  });
  it("a running record with a live monitor: ended by exit.json, with the monitor's reason when it never ran", async () => {
    await fsp.rm(exitFile, { force: true });
    expect(await observedState(running(), exitFile)).toBeUndefined();
    await exit({ exitCode: 125, signal: null, finishedAt: 'x', error: 'not started: gone' });
    expect(await observedState(running(), exitFile)).toMatchObject({
      status: 'exited',
      exitCode: 125,
      error: 'not started: gone',
    });
  });
  it('exited and removing records are never changed', async () => {
    await exit({ exitCode: 1, signal: null, finishedAt: 'x' });
    for (const status of ['exited', 'removing'] as const)
      expect(await observedState({ ...initialState(), status }, exitFile)).toBeUndefined();
  });
});

describe('initPid', () => {
  it("a running record without pid 1: found in its pid file once written, never a dead pid's", async () => {
    const pidFile = path.join(dir, 'init.pid');
    const rec = { ...running(), pidFile };
    expect(await initPid(rec)).toBeUndefined();
    const child = spawn('sleep', ['30'], { stdio: 'ignore' }); // below the monitor (this process)
    try {
      await until(() => procStart(child.pid!) !== undefined);
      await fsp.writeFile(pidFile, String(child.pid));
      expect(await initPid(rec)).toEqual({ pid: child.pid, pidStart: procStart(child.pid!) });
      expect(await initPid({ ...rec, pid: 7 })).toBeUndefined(); // recorded already
    } finally {
      child.kill('SIGKILL');
    }
    await fsp.writeFile(pidFile, '4194304'); // past pid_max: no such process
    expect(await initPid(rec)).toBeUndefined();
  });
  it("never a pid that is not the container's: started before its monitor, or neither in its cgroup nor below its monitor", async () => {
    const pidFile = path.join(dir, 'init.pid');
    const rec = { ...running(), pidFile, cgroup: 'vlab-none/ctr-x' };
    await fsp.writeFile(pidFile, '1'); // the host's init: older than the monitor
    expect(await initPid(rec)).toBeUndefined();
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await until(() => procStart(child.pid!) !== undefined);
      await fsp.writeFile(pidFile, String(child.pid));
      // below the monitor (this process): its pid 1
      expect(await initPid(rec)).toMatchObject({ pid: child.pid });
      // a monitor that is not its parent, the pid not in the cgroup: an unrelated process
      const other = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        await until(() => procStart(other.pid!) !== undefined);
        expect(await initPid({ ...rec, monitorPid: other.pid, monitorStart: 0 })).toBeUndefined();
      } finally {
        other.kill('SIGKILL');
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
});
