/**
 * The few system calls Node lacks: through our vlab-sys helper's server when it is built
 * (native/vlab-sys.c), else by standard tools, one process per batch (never per file): xattrs via
 * `getfattr`/`setfattr` (Debian package `attr`); and whether we are the real root.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { nativeHelper } from './native.ts';
import { sysServer } from './sys-server.ts';

export interface RunResult { stdout: Buffer; stderr: string; code: number }

/** Run a command, optionally feeding stdin. Rejects with E_TOOL when it cannot start. */
export function run(cmd: string, args: string[], opts: { input?: Buffer | string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => { if (err.length < 65536) err += d.toString(); });
    p.on('error', (e) => reject(new VlabError('E_TOOL', `cannot run ${cmd}: ${e.message}`, { cause: e })));
    p.on('close', (code) => resolve({ stdout: Buffer.concat(out), stderr: err, code: code ?? 1 }));
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
  });
}

/** native/vlab-sys.c, from the sources (src/) or from the CLI bundle (packages/core/dist/). */
export function sysHelper(): string | undefined {
  return nativeHelper('vlab-sys', [new URL('../native/bin/vlab-sys', import.meta.url), new URL('../../overlay/native/bin/vlab-sys', import.meta.url)]);
}

/** One vlab-sys operation: through the long-lived server, or one process if that one died. */
export async function sysOp(helper: string, args: string[], cwd?: string): Promise<RunResult> {
  try {
    return await sysServer(helper).call(cwd, args);
  } catch {
    return run(helper, args, { cwd });
  }
}

let realRoot: boolean | undefined;
/** Root in the initial user namespace (can mknod devices, set trusted.* xattrs). */
export function isRealRoot(): boolean {
  if (realRoot !== undefined) return realRoot;
  let map = '';
  try { map = readFileSync('/proc/self/uid_map', 'utf8'); } catch { /* no procfs */ }
  realRoot = process.getuid?.() === 0 && /^\s*0\s+0\s+4294967295\s*$/.test(map);
  return realRoot;
}

function unescape(s: string): string {
  // getfattr escapes names as \ooo octal and \\ — decode back to raw bytes, read as UTF-8
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '\\') { bytes.push(92); i++; }
    else if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) { bytes.push(parseInt(s.slice(i + 1, i + 4), 8)); i += 3; }
    else bytes.push(...Buffer.from(s[i], 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function escape(p: string): string {
  // setfattr --restore decodes only octal escapes: a backslash must be written as \134 too.
  return [...Buffer.from(p)].map((c) => (c <= 32 || c >= 127 || c === 61 || c === 92 ? `\\${c.toString(8).padStart(3, '0')}` : String.fromCharCode(c))).join('');
}

function decodeValue(v: string): Buffer {
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64');
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
  if (v.startsWith('"')) return Buffer.from(JSON.parse(v) as string);
  return Buffer.from(v);
}

export type XattrMap = Map<string, Map<string, Buffer>>; // absolute path -> name -> value

/**
 * All xattrs under `dir` (recursive, symlinks not followed), in one `getfattr` process.
 * `match` is getfattr's name regex (default: every namespace we may read).
 */
export async function readXattrsTree(dir: string, match = '-'): Promise<XattrMap> {
  const helper = sysHelper();
  const r = helper
    ? await sysOp(helper, ['xattrs', dir, match])
    : await run('getfattr', ['-R', '-P', '-h', '-d', '-m', match, '-e', 'base64', '--absolute-names', dir]);
  const out: XattrMap = new Map();
  if (r.code !== 0 && !r.stdout.length && r.stderr.trim()) {
    throw new VlabError('E_TOOL', `getfattr failed: ${r.stderr.trim()}`);
  }
  let cur: Map<string, Buffer> | undefined;
  for (const line of r.stdout.toString('utf8').split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = new Map();
      out.set(unescape(line.slice(8)), cur);
    } else if (cur && line && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      if (eq > 0) cur.set(line.slice(0, eq), decodeValue(line.slice(eq + 1)));
      else cur.set(line, Buffer.alloc(0));
    }
  }
  return out;
}

/** Set xattrs on many paths in one `setfattr --restore` process (symlinks not followed). */
export async function writeXattrs(items: { path: string; name: string; value: Buffer }[]): Promise<void> {
  if (!items.length) return;
  const byPath = new Map<string, string[]>();
  for (const it of items) {
    const lines = byPath.get(it.path) ?? [];
    lines.push(`${it.name}=0s${it.value.toString('base64')}`);
    byPath.set(it.path, lines);
  }
  let dump = '';
  for (const [p, lines] of byPath) dump += `# file: ${escape(p)}\n${lines.join('\n')}\n\n`;
  const r = await run('setfattr', ['-h', '--restore=-'], { input: dump });
  if (r.code !== 0) throw new VlabError('E_XATTR', `setfattr failed: ${r.stderr.trim()}`, { details: { count: items.length } });
}
