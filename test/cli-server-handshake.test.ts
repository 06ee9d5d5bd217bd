/**
 * The native client's handshake with a server slot that does not answer (SIGSTOPped, or wedged):
 * before its go-ahead ("G") the client waits a bounded time for the slot's first answer and then
 * tries the next slot, and a signal ends it; the slot, once continued, never runs the abandoned
 * command (the client's stdout is the marker: a command run twice would list the images twice).
 * The client's stdio fds only cross with "G", so a pipe reader of a client that gave up on a
 * stopped slot sees end of file when the client exits. Plus a fake server on the socket for the
 * paths that end in a direct run ("R", a close before any answer): a signal there is not lost.
 * And a go-ahead the server cannot take (its fds past its RLIMIT_NOFILE): answered "N", not run.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStore, removeStore } from './helpers.ts';
import {
  alive,
  baseEnv,
  BIN,
  built,
  install,
  served,
  serverFile,
  serverPid,
  srvDir,
  uninstall,
  until,
  vb,
  warm,
} from './cli-server-harness.ts';

/** The client's bound on a slot's first answer in these tests (VLAB_SERVER_ANSWER_MS). */
const BOUND = 400;
const SLOTS = [0, 1, 2, 3];
let store: string;
let fakeDir = '';
const servedAll = () => SLOTS.reduce((n, k) => n + served(srvDir, k), 0);
const listings = (s: string) => (s.match(/^busybox:latest /gm) ?? []).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const prlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    console.warn('cli-server-handshake: no prlimit (util-linux): the RLIMIT_NOFILE go-ahead test is skipped');
    return false;
  }
})();

interface Exit {
  code: number | null;
  signal: string | null;
  out: string;
  ms: number;
}

/** The client with stdout and stderr in a file (O_APPEND), awaited to its exit (not its pipes' end). */
async function toExit(
  args: string[],
  o: { kill?: NodeJS.Signals; at?: number; env?: NodeJS.ProcessEnv; dir?: string; guardMs?: number } = {},
): Promise<Exit> {
  const file = path.join(os.tmpdir(), `vlab-hs-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = fs.openSync(file, 'a+');
  try {
    const env = { ...baseEnv, VLAB_SERVER_DIR: o.dir ?? srvDir, VLAB_NO_SERVER: '', ...o.env };
    const t0 = Date.now();
    const child = spawn(BIN, args, { env, stdio: ['ignore', fd, fd] });
    if (o.kill) setTimeout(() => child.kill(o.kill), o.at ?? 300);
    // a client that hangs fails its test, bounded: killed (SIGKILL, not a signal it is sent otherwise)
    const guard = setTimeout(() => child.kill('SIGKILL'), o.guardMs ?? 8000);
    const [code, signal] = await new Promise<[number | null, string | null]>((r) =>
      child.on('exit', (c, s) => r([c, s])),
    );
    clearTimeout(guard);
    const ms = Date.now() - t0;
    return { code, signal, ms, out: fs.readFileSync(file, 'utf8') };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}
const images = (o: Parameters<typeof toExit>[1] = {}) =>
  toExit(['images', '--root', store], { ...o, env: { VLAB_SERVER_ANSWER_MS: String(BOUND), ...o.env } });

/** Slot k's server up and answering (a client that finds slots 0..k-1 stopped starts it). */
async function slotUp(k: number): Promise<number | undefined> {
  for (let i = 0; i < 3 && !alive(serverPid(srvDir, k)); i++) {
    const stopped = SLOTS.slice(0, k).map((j) => serverPid(srvDir, j)!);
    stopped.forEach((p) => process.kill(p, 'SIGSTOP'));
    try {
      await images({ guardMs: 4000 });
    } finally {
      stopped.forEach((p) => process.kill(p, 'SIGCONT'));
    }
    await until(`slot ${k}`, () => alive(serverPid(srvDir, k)), 3000).catch(() => undefined);
  }
  const ok = await until(`slot ${k}'s socket`, () => !!serverFile(srvDir, '.sock', k), 3000).then(
    () => true,
    () => false,
  );
  if (!ok) console.warn(`slot ${k} did not come up (a client waiting on a stopped slot 0 never tried it)`);
  return ok ? serverPid(srvDir, k) : undefined;
}

/** With the slots' servers stopped for the body, continued after it however it ends. */
async function stopped<T>(pids: number[], body: () => Promise<T>): Promise<T> {
  pids.forEach((p) => process.kill(p, 'SIGSTOP'));
  try {
    return await body();
  } finally {
    pids.forEach((p) => process.kill(p, 'SIGCONT'));
  }
}

describe.skipIf(!built)('vbuild client: the go-ahead handshake with a slot that does not answer', () => {
  let pids: number[] = [];
  beforeAll(async () => {
    await install();
    store = await freshStore();
    pids = [await warm()];
    for (const k of [1, 2, 3]) {
      const p = await slotUp(k);
      if (!p) break;
      pids.push(p);
    }
  }, 60_000);
  afterAll(async () => {
    for (const p of pids) if (alive(p)) process.kill(p, 'SIGCONT');
    await uninstall();
    if (store) await removeStore(store);
    if (fakeDir) await fsp.rm(fakeDir, { recursive: true, force: true });
  });

  it('a stopped slot 0: the next slot serves within the bound, and continued, slot 0 does not run it', async () => {
    const mine = served(srvDir, 0);
    const all = servedAll();
    const r = await stopped([pids[0]!], () => images());
    expect(r.code, r.out).toBe(0);
    expect(listings(r.out)).toBe(1);
    expect(r.ms).toBeLessThan(BOUND + 2500);
    await sleep(300); // continued: it reads the abandoned request, and finds no go-ahead
    expect(served(srvDir, 0), 'the continued slot 0 ran the abandoned command').toBe(mine);
    expect(servedAll()).toBe(all + 1);
    expect(alive(pids[0])).toBe(true);
  }, 15_000);

  it('continued right at the edge of the bound, a command still runs exactly once (swept 16 times)', async () => {
    const all = servedAll();
    for (let i = 0; i < 16; i++) {
      const pid = pids[0]!;
      const before = servedAll();
      process.kill(pid, 'SIGSTOP');
      const cont = setTimeout(() => process.kill(pid, 'SIGCONT'), BOUND + (i - 8) * 6);
      const r = await images().finally(() => {
        clearTimeout(cont);
        process.kill(pid, 'SIGCONT');
      });
      expect(r.code, r.out).toBe(0);
      expect(listings(r.out), `round ${i}: the command's output`).toBe(1);
      await sleep(150); // slot 0 continued: it took the command in time, or finds no go-ahead
      expect(servedAll() - before, `round ${i}: run in two slots`).toBeLessThanOrEqual(1);
    }
    await sleep(300);
    expect(servedAll() - all).toBeLessThanOrEqual(16);
  }, 40_000);

  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s to a client waiting on a stopped slot 0 ends it by that signal',
    async (sig) => {
      const r = await stopped([pids[0]!], () => images({ kill: sig, at: 150, env: { VLAB_SERVER_ANSWER_MS: '5000' } }));
      expect(r.signal).toBe(sig);
      expect(r.ms).toBeLessThan(2500); // well before the bound
    },
    15_000,
  );

  it('a pipe reader of the client sees end of file when it exits, though slot 0 is stopped', async () => {
    const t0 = Date.now();
    const r = await stopped([pids[0]!], () =>
      Promise.race([
        vb(['images', '--root', store], { fast: true, env: { VLAB_SERVER_ANSWER_MS: String(BOUND) } }),
        sleep(BOUND + 5000).then(() => undefined),
      ]),
    );
    expect(r, 'the pipes did not close while slot 0 was stopped').toBeDefined();
    expect(r!.code, r!.stderr).toBe(0);
    expect(listings(r!.stdout)).toBe(1);
    expect(Date.now() - t0).toBeLessThan(BOUND + 5000);
  }, 15_000);

  it('every slot stopped: the command runs direct, once, and no continued slot runs it', async () => {
    const all = servedAll();
    const r = await stopped(pids, () => images());
    expect(r.code, r.out).toBe(0);
    expect(listings(r.out)).toBe(1);
    await sleep(400);
    expect(servedAll(), 'a continued slot ran the abandoned command').toBe(all);
  }, 20_000);

  it('a burst of 8 clients on 4 slots, slot 0 stopped and continued in the middle: each runs once', async () => {
    const all = servedAll();
    const pid = pids[0]!;
    process.kill(pid, 'SIGSTOP');
    const cont = setTimeout(() => process.kill(pid, 'SIGCONT'), BOUND - 30);
    const rs = await Promise.all([...Array(8)].map(() => images())).finally(() => {
      clearTimeout(cont);
      process.kill(pid, 'SIGCONT');
    });
    for (const r of rs) {
      expect(r.code, r.out).toBe(0);
      expect(listings(r.out)).toBe(1);
    }
    await sleep(400);
    expect(servedAll() - all).toBeLessThanOrEqual(8);
  }, 30_000);

  it.skipIf(!prlimit)(
    'a go-ahead slot 0 cannot take (its fds hit RLIMIT_NOFILE): told "N", the client runs elsewhere, once, and slot 0 lives on',
    async () => {
      const pid = pids[0]!;
      const mine = served(srvDir, 0);
      const restore = squeezeFds(pid);
      let r: Exit;
      try {
        r = await images();
      } finally {
        restore();
      }
      expect(r.code, r.out).toBe(0);
      expect(listings(r.out)).toBe(1);
      expect(served(srvDir, 0), 'slot 0 ran it').toBe(mine);
      expect(fs.readFileSync(serverFile(srvDir, '.log')!, 'utf8')).toMatch(/go-ahead .*not run/);
      const again = await images();
      expect(listings(again.out), again.out).toBe(1);
      expect(alive(pid)).toBe(true);
    },
    15_000,
  );

  it('is never asked: its socket name differs, so an upgrade does not run every command direct until it idles out', async () => {
    // a server of the previous protocol for this install (named by FNV-1a of the install's path
    // alone, as before "vlab2") could not parse our request and closed without an answer: the
    // client then ran direct, every time, until that server's idle exit
    const pkg = fs.realpathSync(path.resolve(BIN, '../..')); // bin/vbuild is a script that runs native/bin's client
    let h = 2166136261;
    for (const b of Buffer.from(pkg)) h = Math.imul(h ^ b, 16777619) >>> 0;
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-hs-old-'));
    let asked = 0;
    const old = net.createServer((c) => {
      asked++;
      c.destroy();
    });
    await new Promise<void>((r) => old.listen(path.join(dir, `${h.toString(16).padStart(8, '0')}.sock`), r));
    try {
      for (let i = 0; i < 2; i++) expect((await toExit(['images', '--root', store], { dir })).code).toBe(0);
      expect(asked).toBe(0);
    } finally {
      await new Promise((r) => old.close(r));
      await stopServers(dir);
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }, 20_000);

  it.each([
    ['"R" (another bundle), while the client waits for the old server to let go', 'R\n'],
    ['no answer, then a close', ''],
  ])(
    'SIGINT after %s ends the client by SIGINT, not in a direct run',
    async (_what, answer) => {
      fakeDir ||= await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-hs-fake-'));
      const srv = await fakeSlot(path.join(fakeDir, path.basename(serverFile(srvDir, '.sock')!)), answer, 1500);
      try {
        const r = await toExit(['images', '--root', store], { dir: fakeDir, kill: 'SIGINT', at: 300 });
        expect(r.signal, `exit ${r.code}: ${r.out}`).toBe('SIGINT');
      } finally {
        await new Promise((r) => srv.close(r));
        await stopServers(fakeDir); // the one the "R" path starts
      }
    },
    15_000,
  );
});

/**
 * Lowers `pid`'s RLIMIT_NOFILE (soft) to leave it one free descriptor: the accept of the next
 * client's socket takes it, so the three fds of that client's go-ahead cannot be received
 * (MSG_CTRUNC). Returns the undo.
 */
function squeezeFds(pid: number): () => void {
  const line = /^Max open files\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))!;
  const [soft, hard] = [line[1]!, line[2]!];
  const open = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
  let limit = 0;
  for (let free = 0; free < 1; limit++) if (!open.has(limit)) free++;
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${hard}`]);
  return () => execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
}

/** A socket at slot 0's path that answers as told (or not at all) and closes after `holdMs`. */
async function fakeSlot(sock: string, answer: string, holdMs: number): Promise<net.Server> {
  const srv = net.createServer((c) => {
    c.on('error', () => undefined);
    c.once('data', () => answer && c.write(answer));
    setTimeout(() => c.destroy(), holdMs);
  });
  await new Promise<void>((r) => srv.listen(sock, r));
  return srv;
}

async function stopServers(dir: string): Promise<void> {
  await sleep(200);
  const ps = SLOTS.map((k) => serverPid(dir, k)).filter(alive);
  ps.forEach((p) => process.kill(p!, 'SIGTERM'));
  await until('the servers to exit', () => !ps.some(alive), 5000).catch(() => undefined);
}
