/**
 * The warm vbuild server (native/vbuild-client.c + src/cli/server.ts) against the direct path
 * (`VLAB_NO_SERVER=1`: bin/vbuild.js in a fresh node): the same commands through both give the
 * same stdout, stderr, exit codes and images. Plus the socket's guards, the spare slots, the
 * idle exit and the restart on a new bundle. Each fast-path command is checked to have run in
 * the server (its log gains a line), so a silent fallback cannot make the comparison vacuous.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCgroupLayout } from '../packages/core/src/exec/cgroups.ts';
import { freshStore, makeContext, removeStore } from './helpers.ts';
import {
  holdSlot,
  alive,
  BIN,
  baseEnv as base,
  both,
  built,
  inServer,
  install,
  pkg,
  served,
  serverFile,
  serverPid,
  srvDir,
  uninstall,
  until,
  vb,
  warm,
  type Out,
} from './cli-server-harness.ts';

const hasScript = fs.existsSync('/usr/bin/script');
if (!hasScript) console.warn('cli-server: no script(1) (util-linux): the terminal case is skipped');

/** Runs the rest as uid 65534 that can still reach a 0700 dir of root's (keeps CAP_DAC_OVERRIDE). */
const AS_OTHER_UID = [
  'setpriv',
  '--reuid=65534',
  '--regid=65534',
  '--clear-groups',
  '--inh-caps=+dac_override',
  '--ambient-caps=+dac_override',
];

let store: string;
let ctx: string;
const timings = (s: string) => s.replace(/\b\d+\.\d+s\b/g, 'T');

describe.skipIf(!built)('vbuild through the warm server = vbuild direct', () => {
  beforeAll(async () => {
    await install();
    store = await freshStore();
    ctx = await makeContext({ Dockerfile: 'FROM busybox:latest\nCOPY f /f\nRUN cat /f > /g\n', f: 'data\n' });
    await warm();
  });
  afterAll(async () => {
    await uninstall();
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
    const [cmd, ...args] = [...AS_OTHER_UID, 'node', '-e', probe, sock];
    const out = execFileSync(cmd!, args, { env: base, encoding: 'utf8' });
    expect(out.trim()).toBe('""');
    await until('the refusal in the log', () =>
      fs.readFileSync(serverFile(srvDir, '.log')!, 'utf8').includes('refused a client of uid 65534'),
    );
  });

  // A listener at the slot's socket that is not our server: as another uid (SO_PEERCRED), or ours
  // but never accepting with its backlog full (a blocking connect() would wait for ever). It holds
  // the slot's lock as a server does. The client must run the command direct, sending it nothing.
  const FOREIGN = `
import fcntl, socket, sys
sock, lock, got, mode = sys.argv[1:]
held = open(lock, 'w'); fcntl.flock(held, fcntl.LOCK_EX)
s = socket.socket(socket.AF_UNIX); s.bind(sock); s.listen(0 if mode == 'full' else 8)
fill = []
while mode == 'full':
    c = socket.socket(socket.AF_UNIX); c.setblocking(False)
    try: c.connect(sock); fill.append(c)
    except BlockingIOError: break
print('ready', flush=True)
if mode == 'full': sys.stdin.read()
else:
    c, _ = s.accept(); c.settimeout(5); data = b''
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            data += d
    except OSError: pass
    open(got, 'wb').write(data)
`;
  for (const mode of ['other-uid', 'full'] as const) {
    it(`a listener that is not our server (${mode === 'full' ? 'its backlog full' : 'another uid'}): the command runs direct, bounded`, async () => {
      const name = path.basename(serverFile(srvDir, '.sock')!, '.sock');
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-srv-foreign-'));
      await fsp.chmod(dir, 0o700);
      const got = path.join(dir, 'got');
      const argv = [
        ...(mode === 'full' ? [] : AS_OTHER_UID),
        'python3',
        '-c',
        FOREIGN,
        path.join(dir, `${name}.sock`),
        path.join(dir, `${name}.lock`),
        got,
        mode,
      ];
      const listener = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
      try {
        await new Promise<void>((resolve, reject) => {
          listener.stdout.once('data', () => resolve());
          listener.once('exit', (c) => reject(new Error(`the listener exited (${c})`)));
        });
        const env = { VLAB_ROOT: store, VLAB_SERVER_SLOTS: '1', VLAB_SERVER_ANSWER_MS: '500' };
        const t0 = Date.now();
        const fast = await vb(['images'], { fast: true, dir, env, signalOn: { ms: 20_000, signal: 'SIGKILL' } });
        const took = Date.now() - t0;
        const direct = await vb(['images'], { fast: false, dir, env });
        expect(fast).toEqual(direct);
        expect(took).toBeLessThan(4_000); // the 500 ms bound once, plus a direct run's start-up
        if (mode === 'other-uid') {
          await until('the listener saw the client go', () => fs.existsSync(got));
          expect(fs.readFileSync(got, 'utf8')).toBe(''); // no request, no environment
        }
      } finally {
        listener.kill('SIGKILL');
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('a second command while one runs goes to a spare slot (started by the first that finds none)', async () => {
    const n = served();
    // holds the first slot until the checks are done, then is interrupted
    const slot0 = await holdSlot(store);
    const images = async (env: NodeJS.ProcessEnv = {}) => {
      const r = await vb(['images', '--root', store], { fast: true, env });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('same:1');
    };
    const spares = [1, 2, 3];
    const spareServed = () => spares.reduce((n, k) => n + served(srvDir, k), 0);
    const diag = (): string =>
      fs
        .readdirSync(srvDir)
        .filter((f) => f.endsWith('.log'))
        .map((f) => `${f}:\n${fs.readFileSync(path.join(srvDir, f), 'utf8').slice(-800)}`)
        .join('\n');
    try {
      // no spare yet: the client starts one and runs there once it listens (a node start-up:
      // seconds in a loaded full run; past VLAB_SERVER_START_MS it runs direct)
      const before = spareServed();
      for (let i = 0; i < 15 && spareServed() === before; i++) await images();
      expect(spareServed(), diag()).toBe(before + 1);
      const log = spares.map((k) => serverFile(srvDir, '.log', k)).find((f) => f);
      expect(fs.readFileSync(log!, 'utf8')).toContain('idle exit after 180 s');
      // one slot only: never a spare
      await images({ VLAB_SERVER_SLOTS: '1' });
      expect(spareServed(), diag()).toBe(before + 1);
    } finally {
      expect((await slot0.release()).stderr).toContain('[E_RUN_ABORTED]');
    }
    expect(served(), diag()).toBe(n + 1); // the build only
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

  it("a server keeps none of its first caller's fds: a flock(1) around that command is free when it ends", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-srv-fds-'));
    const lockFile = path.join(dir, 'caller.lock');
    try {
      // flock(1) holds its lock on an fd its command inherits; this first command starts the server
      const r = await vb([lockFile, BIN, '--version'], { fast: true, dir, program: 'flock' });
      expect(r.stdout).toMatch(/^vbuild version/);
      await until('the server', () => alive(serverPid(dir)));
      const pid = serverPid(dir)!;
      const open = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return ''; // closed meanwhile
        }
      });
      expect(open).not.toContain(lockFile);
      expect(spawnSync('flock', ['-n', lockFile, 'true']).status).toBe(0);
    } finally {
      const pid = serverPid(dir);
      if (alive(pid)) process.kill(pid!, 'SIGTERM');
      await until('the server to exit', () => !alive(pid), 5000).catch(() => undefined);
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  // Containers: the server runs them too (not with -t). Exit codes, output, signals, stdin and
  // the client's env and cwd as direct; a killed client leaves the container as a killed CLI does.
  const same = (o: { direct: Out; fast: Out }) => {
    expect(o.fast).toEqual(o.direct);
    return o.fast;
  };
  const sh = (script: string, ...flags: string[]) => [
    'run',
    '--rm',
    '--root',
    store,
    ...flags,
    'busybox',
    'sh',
    '-c',
    script,
  ];

  it('run --rm: exit codes 0, 3, 127, 126, 125; -e NAME from the env, --env-file from the cwd; stdin', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-runenv-'));
    fs.writeFileSync(path.join(dir, 'env.list'), 'FROM_FILE=file-value\n');
    // no -i: the container's stdin is /dev/null, whatever the client's is
    const script = 'echo "$FROM_ENV $FROM_FILE"; cat; echo err >&2; exit 3';
    const opts = { cwd: dir, env: { FROM_ENV: 'env-value' }, input: 'unread\n' };
    const r = same(await both(sh(script, '-e', 'FROM_ENV', '--env-file', './env.list'), opts));
    expect(r).toMatchObject({ code: 3, stdout: 'env-value file-value\n', stderr: 'err\n' });
    // the container holds the client's stdio and nothing of the server's (its log, /dev/null)
    const fds = same(await both(['run', '--rm', '--root', store, 'busybox', 'ls', '/proc/self/fd']));
    expect(fds.stdout).toBe('0\n1\n2\n3\n');
    // a relative bind source is refused both ways (docker 20.10's rule), not resolved elsewhere
    const rel = same(await both(sh('true', '-v', './d:/d'), { cwd: dir }));
    expect(rel).toMatchObject({ code: 125, stderr: expect.stringContaining('[E_VOLUME_PATH]') });
    await fsp.rm(dir, { recursive: true });
    // -i: the container reads the client's very stdin
    const cat = same(await both(['run', '--rm', '-i', '--root', store, 'busybox', 'cat'], { input: 'piped\n' }));
    expect(cat).toMatchObject({ code: 0, stdout: 'piped\n' });
    expect(same(await both(['run', '--rm', '--root', store, 'busybox', 'nosuch'])).code).toBe(127);
    expect(same(await both(['run', '--rm', '--root', store, 'busybox', '/etc/passwd'])).code).toBe(126);
    expect(same(await both(['run', '--rm', '--root', store, 'nosuch-image'])).code).toBe(125);
  });

  it('SIGINT and SIGTERM to a foreground run reach the container (sig-proxy), with its exit code', async () => {
    const script = 'trap "echo got-int; exit 7" INT; trap "echo got-term; exit 8" TERM; echo ready; sleep 20 & wait';
    for (const [signal, code, word] of [
      ['SIGINT', 7, 'int'],
      ['SIGTERM', 8, 'term'],
    ] as const) {
      const r = same(await both(sh(script), { signalOn: { stdout: /ready/, signal } }));
      expect(r).toMatchObject({ code, stdout: `ready\ngot-${word}\n` });
    }
  });

  it('run -d, ps, logs, exec, stop, wait, start and start -a: as direct', async () => {
    const at = ['--root', store];
    const script = 'echo out; echo err >&2; trap "exit 9" TERM; sleep 30 & wait';
    const d = await both(['run', '-d', ...at, 'busybox', 'sh', '-c', script]);
    const ids = [d.direct, d.fast].map((o) => o.stdout.trim());
    for (const o of [d.direct, d.fast]) expect(o).toMatchObject({ code: 0, stdout: /^[0-9a-f]{64}\n$/, stderr: '' });
    const ps = same(await both(['ps', '-q', '--no-trunc', ...at]));
    for (const id of ids) expect(ps.stdout).toContain(id);
    const [a, b] = ids.map((id) => id.slice(0, 12)) as [string, string];
    expect(same(await both(['logs', ...at, b]))).toMatchObject({ code: 0, stdout: 'out\n', stderr: 'err\n' });
    const ex = same(await both(['exec', '-e', 'X=x1', ...at, b, 'sh', '-c', 'echo $X; exit 4']));
    expect(ex).toMatchObject({ code: 4, stdout: 'x1\n' });
    // SIGINT kills the client of an exec (no sig-proxy, as docker exec); the server lives on
    const pid = serverPid();
    const int = await both(['exec', ...at, b, 'sh', '-c', 'echo ready; sleep 3'], {
      signalOn: { stdout: /ready/, signal: 'SIGINT' },
    });
    expect(same(int)).toMatchObject({ code: null, signal: 'SIGINT', stdout: 'ready\n' });
    // and of a wait: it prints nothing once its client is dead
    const w = same(await both(['wait', ...at, b], { signalOn: { ms: 1000, signal: 'SIGINT' } }));
    expect(w).toMatchObject({ code: null, signal: 'SIGINT', stdout: '', stderr: '' });
    expect(serverPid()).toBe(pid);
    expect(alive(pid)).toBe(true);
    // the same verb on the direct run's container and on the fast one's: the same output but the name
    const pair = async (verb: string[], want: Partial<Out>) => {
      const direct = await vb([...verb, ...at, a], { fast: false });
      const fast = await inServer([...verb, ...at, b]);
      expect({ ...fast, stdout: fast.stdout.replaceAll(b, a) }).toEqual(direct);
      expect(direct).toMatchObject(want);
    };
    await pair(['stop'], { code: 0, stdout: `${a}\n` });
    await pair(['wait'], { code: 0, stdout: '9\n' });
    await pair(['start'], { code: 0, stdout: `${a}\n` });
    // wait on a running one, while a stop from another client (the server is busy: direct) ends it
    const waiting = inServer(['wait', ...at, b]);
    await new Promise((r) => setTimeout(r, 200));
    expect(await vb(['stop', ...at, b], { fast: true })).toMatchObject({ code: 0 });
    expect(await waiting).toMatchObject({ code: 0, stdout: '9\n' });
    await vb(['rm', '-f', ...at, a, b], { fast: true });
    await vb(['run', '--name', 'srv-again', ...at, 'busybox', 'sh', '-c', 'echo again; exit 6'], { fast: true });
    expect(same(await both(['start', '-a', ...at, 'srv-again']))).toMatchObject({ code: 6, stdout: 'again\n' });
    await vb(['rm', ...at, 'srv-again'], { fast: true });
  });

  it('a client killed with SIGKILL leaves its foreground container running, as a killed direct CLI does', async () => {
    const at = ['--root', store];
    const script = 'echo start; sleep 1; echo end; exit 5';
    const n = served();
    const killed = await Promise.all(
      (['direct', 'fast'] as const).map((way) =>
        vb(['run', '--name', `kill-${way}`, ...at, 'busybox', 'sh', '-c', script], {
          fast: way === 'fast',
          signalOn: { stdout: /start/, signal: 'SIGKILL' },
        }),
      ),
    );
    for (const k of killed) expect(k).toMatchObject({ signal: 'SIGKILL', stdout: 'start\n' });
    await until("the killed client's run to end in the server", () => served() === n + 1);
    for (const way of ['direct', 'fast']) {
      // not killed with its client: the monitor ran it to its end (all of it in the log, its
      // own exit code; a killed one would show 137/143 and no "end")
      expect(await vb(['wait', ...at, `kill-${way}`], { fast: true })).toMatchObject({ stdout: '5\n' });
      expect((await vb(['logs', ...at, `kill-${way}`], { fast: true })).stdout).toBe('start\nend\n');
    }
    await vb(['rm', ...at, 'kill-direct', 'kill-fast'], { fast: true });
  });
  it("a detached container's monitor: in its client's cgroup and a session of its own, as direct", async () => {
    // the clients start in a cgroup of their own (below ours: one hierarchy is enough), which the
    // server is not in: a monitor that inherited the server's would show the test's cgroup
    const layout = await detectCgroupLayout();
    const ctrl = layout.version === 'v2' ? undefined : layout.v1.pids ? 'pids' : Object.keys(layout.v1)[0]!;
    const mount = ctrl ? layout.v1[ctrl]! : layout.unified!;
    /** This hierarchy's line of a /proc/PID/cgroup: ID:CONTROLLERS:PATH. */
    const lineOf = (text: string) =>
      text.split('\n').find((l) => (ctrl ? l.split(':')[1]!.split(',').includes(ctrl) : l.startsWith('0::')));
    const mine = fs.readFileSync('/proc/self/cgroup', 'utf8');
    const own = lineOf(mine)!.split(':')[2]!;
    const rel = path.posix.join(own, `vlab-cli-test-${process.pid}`);
    const dir = path.join(mount, rel);
    fs.mkdirSync(dir);
    const at = ['--root', store];
    const ids: string[] = [];
    try {
      const args = ['run', '-d', ...at, 'busybox', 'sleep', '30'];
      const inCg = ['-c', 'echo $$ > "$1"; shift; exec "$@"', 'sh', path.join(dir, 'cgroup.procs'), BIN, ...args];
      const direct = await vb(inCg, { fast: false, program: '/bin/sh' });
      const fast = await inServer(inCg, { program: '/bin/sh' });
      const where = [direct, fast].map((o) => {
        expect(o).toMatchObject({ code: 0, stderr: '' });
        const id = o.stdout.trim();
        ids.push(id);
        const state = JSON.parse(fs.readFileSync(path.join(store, 'containers', id, 'state.json'), 'utf8'));
        const pid = state.monitorPid as number;
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const sid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
        const cg = lineOf(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'))!.split(':')[2];
        return { cgroup: cg, ownSession: sid === pid };
      });
      expect(where).toEqual([
        { cgroup: rel, ownSession: true },
        { cgroup: rel, ownSession: true },
      ]);
    } finally {
      if (ids.length) await vb(['rm', '-f', ...at, ...ids], { fast: true });
      await until(
        'the monitors to leave the cgroup',
        () => !fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim(),
      );
      fs.rmdirSync(dir);
    }
  });
  it.each(['push', 'pull'])(
    'a client killed mid-%s: it stops at once (no transfer for nobody), the server lives on',
    async (verb) => {
      // a "registry" that takes connections and never answers: the push waits on it
      const held = new Set<net.Socket>();
      const silent = net.createServer((c) => {
        held.add(c);
        c.resume(); // reads (so it sees the client's close), never answers
        c.on('close', () => held.delete(c));
      });
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      const port = (silent.address() as net.AddressInfo).port;
      try {
        const pid = serverPid();
        const n = served();
        const remote = `127.0.0.1:${port}/x/bb:1`;
        const args = [
          verb,
          '--root',
          store,
          '--tls-verify=false',
          ...(verb === 'push' ? ['busybox', remote] : [remote]),
        ];
        const killed = await vb(args, { fast: true, signalOn: { ms: 1500, signal: 'SIGKILL' } });
        expect(killed).toMatchObject({ signal: 'SIGKILL' });
        // without its caller the transfer is aborted: its end is logged well before any 30 s timeout
        await until(`the ${verb} to end in the server`, () => served() === n + 1, 5000);
        expect(fs.readFileSync(serverFile(srvDir, '.log')!, 'utf8')).toMatch(
          new RegExp(` ${verb}: exit \\d+ in [\\d.]+ ms\\n$`),
        );
        await until(`the ${verb}'s connections to close`, () => held.size === 0, 5000);
        expect(serverPid()).toBe(pid);
        expect(alive(pid)).toBe(true);
        expect((await inServer(['--version'])).code).toBe(0);
      } finally {
        for (const c of held) c.destroy();
        silent.close();
      }
    },
  );
});
