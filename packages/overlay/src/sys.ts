/**
 * The few system calls Node lacks: through our vlab-sys helper's server when it is built
 * (native/vlab-sys.c), else by standard tools, one process per batch (never per file): xattrs via
 * `getfattr`/`setfattr` (Debian package `attr`); and whether we are the real root.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { nativeHelper } from './native.ts';
import { nameBytes, nameFromBytes } from './fsname.ts';
import { sysServer } from './sys-server.ts';

export interface RunResult {
  stdout: Buffer;
  stderr: string;
  code: number;
}

/** Run a command, optionally feeding stdin. Rejects with E_TOOL when it cannot start. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: Buffer | string; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => {
      if (err.length < 65536) err += d.toString();
    });
    p.on('error', (e) => reject(new VlabError('E_TOOL', `cannot run ${cmd}: ${e.message}`, { cause: e })));
    p.on('close', (code) => resolve({ stdout: Buffer.concat(out), stderr: err, code: code ?? 1 }));
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
  });
}

/** native/vlab-sys.c, from the sources (src/) or from the CLI bundle (packages/core/dist/). */
export function sysHelper(): string | undefined {
  return nativeHelper('vlab-sys', [
    new URL('../native/bin/vlab-sys', import.meta.url),
    new URL('../../overlay/native/bin/vlab-sys', import.meta.url),
  ]);
}

/** One vlab-sys operation: through the long-lived server, or one process if that one died. */
export async function sysOp(helper: string, args: string[], cwd?: string): Promise<RunResult> {
  try {
    return await sysServer(helper).call(cwd, args);
  } catch {
    return run(helper, args, { cwd });
  }
}

/**
 * syncfs(2) of the filesystem holding `file`: one call writes back everything dirty there, where
 * an fsync per file would cost a call per file a step wrote. Node has none: vlab-sys's, else
 * coreutils' `sync -f`.
 */
export async function syncFilesystem(file: string): Promise<void> {
  // Testing hook: `VLAB_TESTING_SYNCFS_FAIL=DIR` fails the next syncfs of a file under DIR, once
  // (as the kernel reports a writeback error once: the variable is cleared). Free when unset.
  const failUnder = process.env.VLAB_TESTING_SYNCFS_FAIL;
  if (failUnder && (file === failUnder || file.startsWith(failUnder + '/'))) {
    delete process.env.VLAB_TESTING_SYNCFS_FAIL;
    throw new VlabError('E_TOOL', `syncfs ${file} failed: Input/output error (VLAB_TESTING_SYNCFS_FAIL)`);
  }
  const helper = sysHelper();
  // A vlab-sys built before it knew `syncfs` answers with its usage (2): then coreutils. Not
  // after a failed syncfs: the kernel reports a writeback error once, so a second syncfs passes.
  let r = helper ? await sysOp(helper, ['syncfs', file]) : undefined;
  if (!r || r.code === 2) r = await run('sync', ['-f', file]);
  if (r.code !== 0) throw new VlabError('E_TOOL', `syncfs ${file} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
}

let realRoot: boolean | undefined;
/** Root in the initial user namespace (can mknod devices, set trusted.* xattrs). */
export function isRealRoot(): boolean {
  if (realRoot !== undefined) return realRoot;
  let map = '';
  try {
    map = readFileSync('/proc/self/uid_map', 'utf8');
  } catch {
    /* no procfs */
  }
  realRoot = process.getuid?.() === 0 && /^\s*0\s+0\s+4294967295\s*$/.test(map);
  return realRoot;
}

function unescape(s: string): string {
  // getfattr escapes names as \ooo octal and \\ — decode back to raw bytes, a name of them (fsname.ts)
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '\\') {
      bytes.push(92);
      i++;
    } else if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i], 'utf8'));
  }
  return nameFromBytes(Buffer.from(bytes));
}

function escape(p: string): string {
  // setfattr --restore decodes only octal escapes: a backslash must be written as \134 too.
  return [...nameBytes(p)]
    .map((c) =>
      c <= 32 || c >= 127 || c === 61 || c === 92 ? `\\${c.toString(8).padStart(3, '0')}` : String.fromCharCode(c),
    )
    .join('');
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
export function readXattrsTree(dir: string, match = '-'): Promise<XattrMap> {
  return readXattrsOf(dir, match, true);
}

/** The xattrs of `file` alone (not recursive, a symlink not followed), as readXattrsTree gives them. */
export function readXattrs(file: string, match = '-'): Promise<Map<string, Buffer>> {
  return readXattrsOf(file, match, false).then((m) => m.get(file) ?? new Map<string, Buffer>());
}

async function readXattrsOf(dir: string, match: string, recursive: boolean): Promise<XattrMap> {
  const helper = sysHelper();
  const r = helper
    ? await sysOp(helper, [recursive ? 'xattrs' : 'xattrs1', dir, match])
    : await run('getfattr', [
        ...(recursive ? ['-R'] : []),
        '-P',
        '-h',
        '-d',
        '-m',
        match,
        '-e',
        'base64',
        '--absolute-names',
        dir,
      ]);
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
  if (r.code !== 0)
    throw new VlabError('E_XATTR', `setfattr failed: ${r.stderr.trim()}`, { details: { count: items.length } });
}

/** What layer apply makes at the end, by paths relative to a root (see vlab-sys `nodes`). */
export type NodeItem =
  | {
      kind: 'node';
      path: string;
      type: 'char' | 'block' | 'fifo';
      mode: number;
      devmajor: number;
      devminor: number;
      uid: number;
      gid: number;
      mtime: number;
    }
  | { kind: 'link'; path: string; target: string }
  | { kind: 'xattr'; path: string; name: string; value: Buffer };

const IFMT = { char: 0o020000, block: 0o060000, fifo: 0o010000 };

/** glibc's makedev. */
function makedev(major: number, minor: number): bigint {
  const M = BigInt(major);
  const m = BigInt(minor);
  return ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn);
}

/**
 * Make `items` in order under `root` through the vlab-sys server: each parent is opened from the
 * root one component at a time with O_NOFOLLOW, so no symlink is ever followed. Owners are set
 * when `owners`. Returns false, having done nothing, when the helper is not built or its server
 * cannot run (the caller then uses tar and setfattr); E_LAYER_APPLY when an item fails.
 */
export async function makeNodesInRoot(root: string, owners: boolean, items: NodeItem[]): Promise<boolean> {
  const helper = sysHelper();
  if (!helper) return false;
  const hex = (s: string | Buffer) => (typeof s === 'string' ? nameBytes(s) : s).toString('hex'); // names as bytes
  const spec = items
    .map((it) => {
      if (it.kind === 'node')
        return `n ${hex(it.path)} ${IFMT[it.type] | (it.mode & 0o7777)} ${makedev(it.devmajor, it.devminor)} ${it.uid} ${it.gid} ${Math.floor(it.mtime)}`;
      if (it.kind === 'link') return `l ${hex(it.path)} ${hex(it.target)}`;
      return `x ${hex(it.path)} ${hex(it.name)} ${hex(it.value)}`;
    })
    .join('\n');
  let r: RunResult;
  try {
    r = await sysServer(helper).call(undefined, ['nodes', root, owners ? '1' : '0', spec]);
  } catch {
    return false; // no server: the caller's fallback does it all
  }
  if (r.code !== 0)
    throw new VlabError('E_LAYER_APPLY', `creating device nodes/whiteouts/xattrs failed: ${r.stderr.trim()}`, {
      details: { count: items.length },
    });
  return true;
}
