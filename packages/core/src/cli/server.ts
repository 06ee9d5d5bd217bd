/**
 * The warm vbuild server (the Bazel/Gradle pattern): native/vbuild-client.c starts it on demand
 * and hands it commands, so a command skips Node's start-up and the bundle's load (and finds the
 * file-hash caches warm). One command at a time, in this process, each with its own argv, cwd,
 * umask, environment (process.env is replaced, then restored) and stdio (the client's own fds:
 * server-stdio.ts). A second client while one runs is told "busy" and tries the next slot's server
 * (BASE-1, BASE-2, …: the client starts the one that is missing), so concurrent commands each get a
 * warm process; past the last slot it runs the command itself. A slot's process is started with
 * VLAB_SERVER_SPARE=1 and exits sooner when idle (SPARE_IDLE_S): it only serves bursts. A request
 * is answered "A", and run only once the client's go-ahead ("G", with its stdio) has been read: the
 * one commit point, so a client that gave up on a stopped server never has its command run twice.
 * A go-ahead we cannot take (its fds past our RLIMIT_NOFILE, a cut control message) is answered
 * "N" (not run): the client, committed and waiting, tries the next slot or runs it itself.
 *
 * It listens on BASE.sock (BASE = DIR/HASH: DIR is the client's 0700 directory, HASH names the
 * install; the socket is 0600) and serves only its own uid (SO_PEERCRED); BASE.pid, BASE.log. It exits after VLAB_SERVER_IDLE seconds (default 600)
 * without a command, and when a client comes from another bundle (the key is the bundle file's
 * identity: rebuilt or upgraded, a fresh server loads the new code). BASE.lock, held by
 * the client that started it, is inherited and held until this process exits.
 */
import fs from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { beginCaller } from './client.ts';
import { runMain } from './commands.ts';
import { loadFdPass } from './server-native.ts';
import { callerCgroups } from './server-peer.ts';
import { RequestStdio } from './server-stdio.ts';

interface Request {
  key: string;
  cwd: string;
  umask: number;
  argv: string[];
  env: Record<string, string>;
}

/** A spare slot's idle exit (seconds): its memory is not held for the 10 minutes of the first. */
const SPARE_IDLE_S = 180;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Sig = (typeof SIGNALS)[number];
const SIGNUM: Record<Sig, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** The bundle's identity, as the client computes it (dev:ino:size:mtime). */
export function bundleKey(file: string): string {
  const st = fs.statSync(file, { bigint: true });
  const ns = st.mtimeNs % 1_000_000_000n;
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs / 1_000_000_000n}.${String(ns).padStart(9, '0')}`;
}

/** The request's first word (vbuild-client.c's PROTOCOL): a client of another answers "R". vlab3: "N". */
const PROTOCOL = 'vlab3';

function parseRequest(buf: Buffer): Request | undefined {
  const w = buf.toString('utf8').split('\0');
  if (w[w.length - 1] === '') w.pop();
  const argc = Number(w[4]);
  if (w[0] !== PROTOCOL || !Number.isInteger(argc) || argc < 0 || w.length < 5 + argc) return undefined;
  const env: Record<string, string> = {};
  for (const kv of w.slice(5 + argc)) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { key: w[1]!, cwd: w[2]!, umask: parseInt(w[3]!, 8), argv: w.slice(5, 5 + argc), env };
}

/** The request env's name for the client's /proc/PID/cgroup (read by containers/monitor.ts). */
const CALLER_CGROUPS = 'VLAB_CALLER_CGROUPS';

function setEnv(env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
  Object.assign(process.env, env);
}

/** Bounds on a client's request, and on its go-ahead after our "A" (it sends it at once). */
const REQUEST_MS = 2000;
const GO_MS = 2000;

/** Idle time after a command before the server collects its garbage. */
const GC_IDLE_MS = 400;
/** A heap past this after a command is collected right away (copy-small leaves ~50 MB). */
const GC_NOW_HEAP = 128 << 20;

export async function serve(base: string, lockFd: number): Promise<void> {
  const fdp = loadFdPass();
  if (!fdp) throw new Error('vlab-fdpass.node is not built (scripts/build-native.sh)');
  if (lockFd >= 0) fdp.cloexec(lockFd); // held by us, not by the helpers we spawn
  const bundle = fileURLToPath(import.meta.url);
  const key = bundleKey(bundle);
  // Our stderr is BASE.log; fd 2 becomes each client's stderr while its command runs.
  const log = fdp.dup(2);
  const say = (m: string) => fs.writeSync(log, `${new Date().toISOString()} ${m}\n`);
  const stdio = new RequestStdio(fdp);
  const idleS = Number(process.env.VLAB_SERVER_IDLE ?? 600);
  const idleMs = (process.env.VLAB_SERVER_SPARE === '1' ? Math.min(idleS, SPARE_IDLE_S) : idleS) * 1000;
  const sockPath = `${base}.sock`;
  let busy = false;
  let timer: NodeJS.Timeout | undefined;
  let gcTimer: NodeJS.Timeout | undefined;

  const server = net.createServer({ pauseOnConnect: true }, (sock) => {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    const uid = fd < 0 ? -1 : fdp.peerUid(fd);
    if (uid !== process.getuid!()) {
      say(`refused a client of uid ${uid}`);
      return void sock.destroy();
    }
    // Replies before the command runs go straight to the fd: a socket paused on connect (so that
    // Node reads none of the request) does not flush an end().
    const reply = (m: string) => {
      fdp.writeAll(fd, Buffer.from(m));
      sock.destroy();
    };
    if (busy) {
      say('busy: the client tries the next slot');
      return reply('B\n');
    }
    // The client's cgroups, read now, while it waits for us (verified through a pidfd:
    // server-peer.ts): a container monitor the command starts joins them
    // (containers/monitor.ts), as a direct CLI's is born in them, not in ours.
    const cgroups = callerCgroups(fdp, fd);
    const payload = fdp.recvRequest(fd, REQUEST_MS);
    if (typeof payload === 'number') {
      say(`no request from a client (${payload})`);
      return void sock.destroy();
    }
    const req = parseRequest(payload);
    if (!req || req.key !== key) {
      reply('R\n');
      return stop();
    }
    // The one commit point: we run it only once we have read the client's go-ahead ("G", with its
    // stdio), and a client that sent it waits for us. A client that gave up on us before (we were
    // stopped, or stuck) closed instead: it runs elsewhere, and never here too.
    const fds = fdp.writeAll(fd, Buffer.from('A\n')) < 0 ? -1 : fdp.recvGo(fd, GO_MS);
    if (typeof fds === 'number') {
      // Not run, and never will be: said so, since a client that did send it waits for us (one
      // that left does not read it). Our fds gone or its message cut: -EMFILE, -EBADMSG.
      say(`no go-ahead taken from a client (${fds}): not run, it goes elsewhere`);
      return reply('N\n');
    }
    busy = true;
    clearTimeout(timer);
    clearTimeout(gcTimer);
    delete req.env[CALLER_CGROUPS];
    if (cgroups) req.env[CALLER_CGROUPS] = cgroups;
    const t0 = performance.now();
    void runRequest(stdio, req, fds, sock).then((code) => {
      // logged before the reply: whoever sees the client's end finds the line (the tests count them)
      say(`${req.argv[0] ?? ''}: exit ${code} in ${(performance.now() - t0).toFixed(1)} ms`);
      busy = false;
      if (!sock.writableEnded) sock.end(`X ${code}\n`); // else it was told "K signal"
      armIdle();
      armGc();
    });
  });

  // A command's garbage goes once we are idle (the client starts us with --expose-gc), instead of
  // being carried into the next command's peak. Not right after each command: the command after a
  // full GC is slower (a cached 20,000-file COPY: 60-80 ms more CPU than its ~110 ms; bench/README),
  // so the commands of a burst (a script; the bench's cold then cached build) go without one.
  // A command that left a big heap (a 200,000-file COPY: ~300 MB) is collected at once: the next
  // command's peak would start from it, and a GC costs it little beside its own work.
  function armGc(): void {
    clearTimeout(gcTimer);
    if (process.memoryUsage().heapTotal > GC_NOW_HEAP) setImmediate(() => globalThis.gc?.());
    else gcTimer = setTimeout(() => globalThis.gc?.(), GC_IDLE_MS);
  }

  function armIdle(): void {
    timer = setTimeout(stop, idleMs);
  }
  let ino = 0n;
  function stop(): void {
    server.close();
    say('exiting');
    process.exit(0);
  }
  // However we exit (idle, new bundle, a forwarded signal that kills): the socket and the pid
  // file go, if they are still ours.
  process.on('exit', () => {
    try {
      if (fs.readFileSync(`${base}.pid`, 'utf8') === `${process.pid}\n`) fs.rmSync(`${base}.pid`);
      // server.close() unlinks it; not after a forwarded signal's exit
      if (fs.statSync(sockPath, { bigint: true }).ino === ino) fs.rmSync(sockPath);
    } catch {
      /* gone already */
    }
  });

  fs.rmSync(sockPath, { force: true }); // a crashed server's: the lock says none runs
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sockPath, () => resolve());
  });
  fs.chmodSync(sockPath, 0o600);
  ino = fs.statSync(sockPath, { bigint: true }).ino;
  fs.writeFileSync(`${base}.pid`, `${process.pid}\n`);
  say(`listening on ${sockPath} (pid ${process.pid}, idle exit after ${idleMs / 1000} s)`);
  process.on('SIGTERM', stop);
  armIdle();
}

/** One command, as the client would have run it; its exit code (replied "X code"), or it replied "K signal". */
async function runRequest(stdio: RequestStdio, req: Request, fds: number[], sock: net.Socket): Promise<number> {
  const saved = {
    env: { ...process.env } as Record<string, string>,
    argv: process.argv,
    umask: process.umask(),
    listeners: Object.fromEntries(SIGNALS.map((s) => [s, process.rawListeners(s)])),
  };
  const added = (s: Sig) => process.rawListeners(s).filter((l) => !saved.listeners[s]!.includes(l));
  // The command's own handlers only (not this server's SIGTERM: stop).
  const deliver = (s: Sig) => added(s).forEach((l) => (l as (s: Sig) => void).call(process, s));
  let running = true;
  // The client is gone (killed): a command that knows what its own death would have done does
  // that (client.ts: a foreground container is let go to its monitor); any other is stopped as
  // by its SIGTERM.
  const caller = beginCaller();
  // A forwarded signal goes to the command's own handlers (a build aborts, run's sig-proxy). With
  // none, the direct process would die of it: the client does ("K"), and the command does what
  // that death would have done (as above); one that cannot, dies with this process.
  const onSignal = (sig: Sig) => {
    if (!running) return;
    if (added(sig).length) return deliver(sig);
    if (caller.taken()) {
      sock.end(`K ${SIGNUM[sig]}\n`);
      stdio.mute();
      return caller.gone();
    }
    sock.end(`K ${SIGNUM[sig]}\n`, () => process.exit(128 + SIGNUM[sig]));
  };
  let pending = '';
  sock.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const m = /^S (\d+)$/.exec(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      const sig = SIGNALS.find((s) => SIGNUM[s] === Number(m?.[1]));
      if (sig) onSignal(sig);
    }
  });
  sock.on('close', () => {
    if (!running) return;
    stdio.mute();
    if (caller.taken()) caller.gone();
    else deliver('SIGTERM');
  });
  sock.on('error', () => {});
  sock.resume();
  let code = 70;
  try {
    stdio.begin(fds);
    setEnv(req.env);
    process.chdir(req.cwd);
    process.umask(req.umask);
    process.argv = [saved.argv[0]!, saved.argv[1]!, ...req.argv];
    code = await runMain(req.argv);
  } catch (e) {
    process.stderr.write(`ERROR: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  } finally {
    running = false;
    caller.end();
    stdio.end();
    setEnv(saved.env);
    process.argv = saved.argv;
    process.umask(saved.umask);
    process.chdir('/');
    for (const s of SIGNALS) for (const l of added(s)) process.removeListener(s, l as () => void);
  }
  return code;
}
