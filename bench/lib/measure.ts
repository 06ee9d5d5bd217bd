/**
 * Measurement primitives: run a command and record wall time, peak RSS and output; read and reset
 * a long-lived process's peak RSS (VmHWM via /proc/PID/clear_refs); disk usage of a directory.
 */
import { spawn, execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Sample {
  /** Wall seconds. */
  wall: number;
  /** Peak RSS of the builder in bytes (process tree's largest process, or the daemon's). */
  rss?: number;
  /** Bytes the store grew by. */
  storeBytes?: number;
  /** Free-form notes (e.g. "steps rebuilt 1/2"). */
  note?: string;
}

export interface RunResult {
  code: number;
  wall: number;
  maxRss: number;
  stdout: string;
  stderr: string;
}

export interface RunOpts {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Feed this to stdin. */
  input?: string;
  timeoutMs?: number;
  /** When given, every output line (stdout and stderr) is pushed with its arrival time (seconds, performance.now). */
  lines?: { t: number; line: string }[];
}

let seq = 0;
/** Runs argv under /usr/bin/time (for ru_maxrss of the largest process in the tree). */
export async function timed(argv: string[], opts: RunOpts = {}): Promise<RunResult> {
  const tfile = path.join(os.tmpdir(), `vlab-bench-time-${process.pid}-${seq++}`);
  const useTime = await exists('/usr/bin/time');
  const full = useTime ? ['/usr/bin/time', '-f', '%M', '-o', tfile, ...argv] : argv;
  const t0 = performance.now();
  const r = await spawnCollect(full, opts);
  const wall = (performance.now() - t0) / 1000;
  let maxRss = 0;
  if (useTime) {
    const txt = await fs.readFile(tfile, 'utf8').catch(() => '');
    const kb = Number(txt.trim().split('\n').pop());
    if (Number.isFinite(kb)) maxRss = kb * 1024;
    await fs.rm(tfile, { force: true });
  }
  return { ...r, wall, maxRss };
}

export function spawnCollect(
  argv: string[],
  opts: RunOpts = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const cap = (s: string, d: Buffer) => (s.length > 200_000 ? s : s + d.toString());
    const partial = { out: '', err: '' };
    const stamp = (k: 'out' | 'err', d: Buffer) => {
      if (!opts.lines) return;
      const t = performance.now() / 1000;
      const parts = (partial[k] + d.toString()).split('\n');
      partial[k] = parts.pop()!;
      for (const line of parts) opts.lines.push({ t, line });
    };
    child.stdout!.on('data', (d: Buffer) => ((stdout = cap(stdout, d)), stamp('out', d)));
    child.stderr!.on('data', (d: Buffer) => ((stderr = cap(stderr, d)), stamp('err', d)));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, sig) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
  });
}

/** Runs argv and throws with its stderr tail if it fails. */
export async function sh(argv: string[], opts: RunOpts = {}): Promise<string> {
  const r = await spawnCollect(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.slice(0, 3).join(' ')} … exited ${r.code}: ${tail(r.stderr || r.stdout)}`);
  return r.stdout;
}

export function tail(s: string, n = 300): string {
  const t = s.trim().split('\n').slice(-4).join(' | ');
  return t.length > n ? `…${t.slice(-n)}` : t;
}

/** Resets the peak RSS (VmHWM) of long-lived processes, e.g. a daemon, before a build. */
export async function resetHwm(pids: number[]): Promise<void> {
  for (const pid of pids) await fs.writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined);
}

/** Peak RSS (VmHWM) in bytes, the largest over the pids. */
export async function readHwm(pids: number[]): Promise<number> {
  let max = 0;
  for (const pid of pids) {
    const s = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const m = /VmHWM:\s+(\d+) kB/.exec(s);
    if (m) max = Math.max(max, Number(m[1]) * 1024);
  }
  return max;
}

/** Allocated bytes under dir (du, hard links once), 0 when missing. */
export function duBytes(...dirs: string[]): number {
  const present = dirs.filter((d) => {
    try {
      execFileSync('test', ['-e', d]);
      return true;
    } catch {
      return false;
    }
  });
  if (!present.length) return 0;
  try {
    const out = execFileSync('du', ['-s', '-c', '--block-size=1', '-x', ...present], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return Number(/(\d+)\s+total/.exec(out)?.[1] ?? 0);
  } catch (e) {
    const out = (e as { stdout?: string }).stdout ?? '';
    return Number(/(\d+)\s+total/.exec(out)?.[1] ?? 0);
  }
}

export async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Before a cold build: every builder and every case starts from the same page cache. By default
 * the context is read once (untimed: `tar` of it into a pipe) so that its files are in the page
 * cache, as they are for copy-small, whose context the floors (`tar|sha256sum small`, `cp -a
 * small`) read just before; without it the first cold build of a context that is on disk only (a
 * fresh machine, a context generated in an earlier session, an earlier drop) reads every file
 * from the disk, one at a time, and later runs do not: copy-huge's first cold build took 19-22 s
 * against 5.6 s for its next ones. With BENCH_DROP_CACHES=1 the clean page cache (the context's
 * files, inodes and dentries) is dropped instead, so every cold build reads from the disk alike.
 * Then the reset's own writes (a store or data root removed and made again) are written back, so
 * that no builder's first fsync or syncfs pays for them.
 */
export async function settleBeforeCold(context?: string): Promise<void> {
  const drop = process.env.BENCH_DROP_CACHES === '1';
  if (context && !drop) await warmContext(context);
  await spawnCollect(['sync']);
  if (!drop) return;
  await fs.writeFile('/proc/sys/vm/drop_caches', '3').catch(() => undefined);
}

/** Reads every file under `dir` into the page cache (tar into a pipe: with /dev/null as its output, GNU tar reads no data). */
export async function warmContext(dir: string): Promise<void> {
  const r = await spawnCollect(['bash', '-o', 'pipefail', '-c', 'tar cf - -C "$1" . | cat > /dev/null', 'warm', dir]);
  if (r.code !== 0) throw new Error(`warming ${dir} failed: ${tail(r.stderr)}`);
}
