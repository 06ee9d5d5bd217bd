/**
 * The warm vbuild server (native/vbuild-client.c + src/cli/server.ts) against the direct path
 * (`VLAB_NO_SERVER=1`: bin/vbuild.js in a fresh node): the same commands through both give the
 * same stdout, stderr, exit codes and images. Plus the socket's guards, the busy fallback, the
 * idle exit and the restart on a new bundle. Each fast-path command is checked to have run in
 * the server (its log gains a line), so a silent fallback cannot make the comparison vacuous.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStore, makeContext, removeStore, repo } from './helpers.ts';

const core = path.join(repo, 'packages/core');
/** A private install (installed-package layout: bin/, dist/, native/bin/), see beforeAll. */
let pkg: string;
let BIN: string;
const built = ['native/bin/vbuild-client', 'native/bin/vlab-fdpass.node'].every((f) =>
  fs.existsSync(path.join(core, f)),
);
if (!built) console.warn('cli-server: the native client is not built (scripts/build-native.sh): skipped');
const hasScript = fs.existsSync('/usr/bin/script');
if (!hasScript) console.warn('cli-server: no script(1) (util-linux): the terminal case is skipped');

interface Out {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}
interface Opts {
  fast: boolean;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Sends SIGINT once stderr matches. */
  interruptOn?: RegExp;
  dir?: string;
  /** Runs this with args instead of vbuild (which it then starts itself). */
  program?: string;
  onStderr?: (all: string) => void;
}

let store: string;
let srvDir: string;
let ctx: string;
const base: NodeJS.ProcessEnv = { ...process.env, SOURCE_DATE_EPOCH: '0' };
delete base.NODE_OPTIONS; // the client runs direct when NODE_OPTIONS is set (it acts on node)

function vb(args: string[], o: Opts): Promise<Out> {
  const env = { ...base, VLAB_SERVER_DIR: o.dir ?? srvDir, VLAB_NO_SERVER: o.fast ? '' : '1', ...o.env };
  const child = spawn(o.program ?? BIN, args, { env, cwd: o.cwd ?? repo });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    o.onStderr?.(stderr);
    if (o.interruptOn?.test(stderr)) {
      o.interruptOn = undefined;
      setTimeout(() => child.kill('SIGINT'), 300);
    }
  });
  child.stdin.end(o.input ?? '');
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** The server's log and pid: which commands it ran. */
const serverFile = (dir: string, ext: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .map((f) => path.join(dir, f))[0];
const served = (dir = srvDir) => {
  const log = serverFile(dir, '.log');
  return log ? (fs.readFileSync(log, 'utf8').match(/: exit \d+ in /g) ?? []).length : 0;
};
const serverPid = (dir = srvDir) => {
  const f = serverFile(dir, '.pid');
  return f && fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) : undefined;
};
const alive = (pid: number | undefined) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
/** A running server for dir (the first command starts it and runs direct). */
async function warm(dir = srvDir, env: NodeJS.ProcessEnv = {}): Promise<number> {
  await vb(['--version'], { fast: true, dir, env });
  await until('the server', () => alive(serverPid(dir)));
  return serverPid(dir)!;
}

/** Both ways, the fast one checked to have run in the server. */
async function both(args: string[], o: Omit<Opts, 'fast'> = {}): Promise<{ direct: Out; fast: Out }> {
  const direct = await vb(args, { ...o, fast: false });
  let n = served();
  let fast = await vb(args, { ...o, fast: true });
  if (served() !== n + 1) {
    // Seen in 1 of 5 fresh-clone CI runs at load, cause not found yet: the command ran direct (the
    // same output, by design). Said loudly with the server's log, and tried once more on a live
    // server: the fast path must still be the one compared.
    const log = serverFile(srvDir, '.log');
    console.warn(
      `${args.join(' ')} ran direct; server log:\n${log ? fs.readFileSync(log, 'utf8').slice(-2000) : '(none)'}`,
    );
    await warm();
    n = served();
    fast = await vb(args, { ...o, fast: true });
  }
  expect(served(), `${args.join(' ')} ran in the server`).toBe(n + 1);
  return { direct, fast };
}
const timings = (s: string) => s.replace(/\b\d+\.\d+s\b/g, 'T');

describe.skipIf(!built)('vbuild through the warm server = vbuild direct', () => {
  beforeAll(async () => {
    // The server runs the bundle. A private copy, laid out as the npm package installs it: other
    // tests rebuild packages/core/dist meanwhile (package.test.ts), which would restart a server
    // on the shared one in the middle of a comparison.
    execFileSync('node', [path.join(core, 'scripts/bundle.mjs')]);
    srvDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-srv-'));
    pkg = path.join(srvDir, 'pkg');
    for (const f of ['bin/vbuild', 'bin/vbuild.js', 'dist/vbuild.mjs', 'native/bin'])
      fs.cpSync(path.join(core, f), path.join(pkg, f), { recursive: true });
    fs.cpSync(path.join(repo, 'packages/overlay/native/bin/vlab-sys'), path.join(pkg, 'native/bin/vlab-sys'));
    BIN = path.join(pkg, 'bin/vbuild');
    store = await freshStore();
    ctx = await makeContext({ Dockerfile: 'FROM busybox:latest\nCOPY f /f\nRUN cat /f > /g\n', f: 'data\n' });
    await warm();
  });
  afterAll(async () => {
    for (const d of [srvDir].filter(Boolean)) {
      const pid = serverPid(d);
      if (alive(pid)) process.kill(pid!, 'SIGTERM');
      await until('the server to exit', () => !alive(pid), 5000).catch(() => undefined);
      await fsp.rm(d, { recursive: true, force: true });
    }
    if (store) await removeStore(store);
    if (ctx) await fsp.rm(ctx, { recursive: true, force: true });
  });

  it('a build: same output, exit code and image', async () => {
    const args = ['build', '--no-cache', '--progress', 'plain', '-t', 'same:1', '--root', store, ctx];
    const { direct, fast } = await both(args);
    expect(direct.code).toBe(0);
    expect(fast.code).toBe(0);
    expect(fast.stdout).toBe(direct.stdout);
    expect(timings(fast.stderr)).toBe(timings(direct.stderr));
    expect(fast.stderr).toMatch(/writing image sha256:[0-9a-f]{64}/);
  });

  it('a failing build: same error, snippet, error code and exit code', async () => {
    const bad = await makeContext({ Dockerfile: 'FROM busybox:latest\nRUN echo out; echo err >&2; exit 3\n' });
    const { direct, fast } = await both(['build', '--progress', 'plain', '--root', store, bad]);
    await fsp.rm(bad, { recursive: true });
    expect(direct.code).toBe(1);
    expect(fast.code).toBe(1);
    expect(timings(fast.stderr)).toBe(timings(direct.stderr));
    expect(fast.stderr).toContain('[E_RUN_FAILED]');
    const unknown = await both(['frobnicate']);
    expect([unknown.fast.code, unknown.fast.stderr]).toEqual([unknown.direct.code, unknown.direct.stderr]);
    expect(unknown.fast.stderr).toContain('[E_BAD_ARG]');
  });

  it('-f - from stdin, --progress=json: the same events and digest', async () => {
    const input = 'FROM busybox:latest\nRUN echo from-stdin > /s\n';
    const args = ['build', '--no-cache', '-f', '-', '--progress=json', '-t', 'stdin:1', '--root', store, ctx];
    const { direct, fast } = await both(args, { input });
    const events = (o: Out) =>
      o.stderr
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    const shape = (o: Out) => events(o).map((e) => [e.type, e.name ?? e.digest ?? e.line ?? '']);
    expect(fast.code).toBe(0);
    expect(shape(fast)).toEqual(shape(direct));
    expect(events(fast).at(-1).digest).toMatch(/^sha256:/);
  });

  it('SIGINT mid-RUN aborts the build with the same exit code and error', async () => {
    const slow = await makeContext({ Dockerfile: 'FROM busybox:latest\nRUN sleep 20\n' });
    const args = ['build', '--no-cache', '--progress', 'plain', '--root', store, slow];
    const { direct, fast } = await both(args, { interruptOn: /cache miss/ });
    await fsp.rm(slow, { recursive: true });
    expect(direct.code).toBe(1);
    expect([fast.code, fast.signal]).toEqual([direct.code, direct.signal]);
    expect(timings(fast.stderr)).toBe(timings(direct.stderr));
    expect(fast.stderr).toContain('[E_RUN_ABORTED]');
  });

  it.skipIf(!hasScript)('on a terminal: --progress auto draws the tty progress both ways', async () => {
    // script(1) gives the command a pty for stdin/stdout/stderr; the client passes that very tty.
    const cmd = `${BIN} build --progress auto --root ${store} ${ctx}`;
    const { direct, fast } = await both(['-qec', cmd, '/dev/null'], { program: 'script' });
    for (const o of [direct, fast]) {
      expect(o.code).toBe(0);
      expect(o.stdout).toContain('\x1b['); // cursor movement: the tty renderer, not plain lines
      expect(o.stdout).not.toMatch(/^#1 CACHED/m);
    }
  });

  it('images and inspect; environment and cwd are each command own', async () => {
    const other = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-empty-'));
    for (const root of [store, other, store]) {
      const { direct, fast } = await both(['images'], { env: { VLAB_ROOT: root } });
      expect(fast).toEqual(direct);
      expect(fast.stdout.includes('same:1')).toBe(root === store);
    }
    await fsp.rm(other, { recursive: true });
    const inspect = await both(['inspect', 'same:1'], { env: { VLAB_ROOT: store } });
    expect(inspect.fast).toEqual(inspect.direct);
    // A relative context resolves against the command's cwd; the option comes from its env.
    const rel = await both(['build', '--progress', 'plain', '.'], { cwd: ctx, env: { VLAB_ROOT: store } });
    expect(rel.fast.code).toBe(0);
    expect(timings(rel.fast.stderr)).toBe(timings(rel.direct.stderr));
  });

  it('the socket: a 0700 dir, a 0600 socket, and only our uid is served', async () => {
    expect(fs.statSync(srvDir).mode & 0o777).toBe(0o700);
    const sock = serverFile(srvDir, '.sock')!;
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    // Another uid that can still reach the socket (keeps CAP_DAC_OVERRIDE): refused by SO_PEERCRED.
    const probe = `const s=require('net').connect(process.argv[1]);let d='';s.on('data',x=>d+=x);s.on('close',()=>console.log(JSON.stringify(d)))`;
    const out = execFileSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--inh-caps=+dac_override',
        '--ambient-caps=+dac_override',
      ].concat(['node', '-e', probe, sock]),
      { env: base, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('""');
    await until('the refusal in the log', () =>
      fs.readFileSync(serverFile(srvDir, '.log')!, 'utf8').includes('refused a client of uid 65534'),
    );
  });

  it('a second command while one runs is told busy and runs direct', async () => {
    const slow = await makeContext({ Dockerfile: 'FROM busybox:latest\nRUN sleep 1.5\n' });
    const n = served();
    let running = false;
    const first = vb(['build', '--no-cache', '--progress', 'plain', '--root', store, slow], {
      fast: true,
      onStderr: (e) => (running ||= e.includes('cache miss')),
    });
    await until('the first command to run', () => running);
    const second = await vb(['images', '--root', store], { fast: true });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('same:1');
    expect((await first).code).toBe(0);
    expect(served()).toBe(n + 1); // the build only: `images` ran direct
    await fsp.rm(slow, { recursive: true });
  });

  it('a new bundle restarts the server; an idle server exits', async () => {
    const old = serverPid()!;
    const bundle = path.join(pkg, 'dist/vbuild.mjs');
    const t = new Date(Date.now() + 1000);
    fs.utimesSync(bundle, t, t); // the server's key is the bundle's identity
    const r = await vb(['--version'], { fast: true });
    expect(r.stdout).toMatch(/^vbuild version/);
    await until('the old server to exit', () => !alive(old));
    const fresh = await warm();
    expect(fresh).not.toBe(old);

    const idleDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-srv-idle-'));
    const pid = await warm(idleDir, { VLAB_SERVER_IDLE: '1' });
    await until('the idle server to exit', () => !alive(pid), 5000);
    expect(fs.readdirSync(idleDir).filter((f) => f.endsWith('.sock') || f.endsWith('.pid'))).toEqual([]);
    await fsp.rm(idleDir, { recursive: true });
  });
});
