/** Shared by the export-*.test.ts suites: the CLI, a feature-rich test image, and tree listings. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { exec, freshStore, makeContext, removeStore, repo } from './helpers.ts';

export const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');

/** Run the CLI against store `root`; resolves with its exit code and output (never rejects). */
export async function runCli(
  root: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('node', [vbuild, ...args], {
      env: { ...process.env, VLAB_ROOT: root, ...env },
      maxBuffer: 64 << 20,
    });
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** A tool on PATH (or at an absolute path), or the reason it cannot be used. */
export function missingTool(...tools: string[]): string | undefined {
  for (const t of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
    } catch {
      return `${t} is not installed (see scripts/setup.sh)`;
    }
  }
  return undefined;
}

/** Skip reason logged once, so a skipped suite is never a silent pass. */
export function skipReason(why: string | undefined, what: string): boolean {
  if (why) console.warn(`SKIP ${what}: ${why}`);
  return why !== undefined;
}

/**
 * A Dockerfile over busybox whose layers hold what flattening must get right: a whiteout, an
 * opaque dir (a lower dir removed and made again), hard links (in one layer, and one to a lower
 * file), a hard-linked file replaced later (the link breaks), modes, owners, a device, a fifo,
 * symlinks, user xattrs (from ADD of a tar), and the file the run checks print.
 */
export async function featureContext(): Promise<string> {
  const ctx = await makeContext({
    Dockerfile: [
      'FROM busybox',
      'ADD x.tar /x/',
      'RUN mkdir -p /d/sub /keep && echo old > /d/sub/f && echo gone > /keep/gone && echo stay > /keep/stay \\',
      ' && echo a > /h1 && ln /h1 /h2 && echo b > /b1 && ln /b1 /b2',
      'RUN rm /keep/gone && rm -rf /d && mkdir -p /d/new && echo new > /d/new/f \\',
      ' && ln /h1 /h3 && echo b2 > /b1.new && mv /b1.new /b1 \\',
      ' && chown 12:34 /keep/stay && chmod 4750 /keep/stay && ln -s ../keep/stay /d/link \\',
      ' && mknod /dev-null c 1 3 && mkfifo /fifo && chmod 1777 /d',
      'RUN echo "written by the Dockerfile" > /file',
      'CMD ["cat", "/file"]',
      '',
    ].join('\n'),
  });
  const src = path.join(ctx, 'xsrc');
  await fsp.mkdir(path.join(src, 'dir'), { recursive: true });
  await fsp.writeFile(path.join(src, 'dir', 'attr'), 'with xattrs');
  execFileSync('setfattr', ['-n', 'user.vlab', '-v', 'flat', path.join(src, 'dir', 'attr')]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'yes', path.join(src, 'dir')]);
  execFileSync('tar', ['--xattrs', '--xattrs-include=user.*', '-C', src, '-cf', path.join(ctx, 'x.tar'), '.']);
  await fsp.rm(src, { recursive: true });
  return ctx;
}

/** user.* xattrs of every path under `dir`, from getfattr (Node has no xattr API). */
function userXattrs(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  let text = '';
  try {
    text = execFileSync('getfattr', ['-R', '-P', '-d', '-m', '^user\\.', '-e', 'hex', '--absolute-names', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch (e) {
    text = (e as { stdout?: string }).stdout ?? '';
  }
  for (const block of text.split('\n\n')) {
    const lines = block.trim().split('\n');
    if (!lines[0]?.startsWith('# file: ')) continue;
    const p = path.relative(dir, lines[0].slice(8));
    out.set(p, lines.slice(1).sort().join(','));
  }
  return out;
}

const TYPE = (st: fs.Stats) =>
  st.isFile()
    ? 'f'
    : st.isDirectory()
      ? 'd'
      : st.isSymbolicLink()
        ? 'l'
        : st.isCharacterDevice()
          ? 'c'
          : st.isBlockDevice()
            ? 'b'
            : st.isFIFO()
              ? 'p'
              : 's';

/**
 * One line per path under `dir` (the root itself left out): path, type, mode, uid, gid, size,
 * device numbers, link target, the first path of its hard-link group, user xattrs. Sorted.
 */
export function treeListing(dir: string): string[] {
  const xattrs = userXattrs(dir);
  const groups = new Map<string, string>();
  const lines: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, r));
      const t = TYPE(st);
      const key = `${st.dev}:${st.ino}`;
      if (t !== 'd' && st.nlink > 1 && !groups.has(key)) groups.set(key, r);
      const link = t === 'l' ? fs.readlinkSync(path.join(dir, r)) : '';
      const dev = t === 'c' || t === 'b' ? `${st.rdev}` : '';
      const group = t !== 'd' && st.nlink > 1 ? groups.get(key) : '';
      lines.push(
        [
          r,
          t,
          (st.mode & 0o7777).toString(8),
          st.uid,
          st.gid,
          t === 'f' ? st.size : '',
          dev,
          link,
          group,
          xattrs.get(r) ?? '',
        ].join(' '),
      );
      if (t === 'd') walk(r);
    }
  };
  walk('');
  return lines.sort();
}

export async function tempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Where an export suite works: its store, its output dir and (when it builds one) the image's context. */
export interface ExportSuite {
  root: string;
  out: string;
  ctx: string;
}

/**
 * The setup every export suite shares, as beforeAll/afterAll (none when `skip`): a fresh store, a
 * temp output dir, and, given `image`, its context built as `image.tag` (the build's stderr on
 * failure). All removed after the suite. The fields are set when the suite's tests run.
 */
export function exportSuite(
  skip: boolean,
  prefix: string,
  image?: { tag: string; context: () => Promise<string>; build?: string[]; env?: Record<string, string> },
  timeout = 60_000,
): ExportSuite {
  const s: ExportSuite = { root: '', out: '', ctx: '' };
  beforeAll(async () => {
    if (skip) return;
    s.root = await freshStore();
    s.out = await tempDir(prefix);
    if (!image) return;
    s.ctx = await image.context();
    const b = await runCli(s.root, ['build', ...(image.build ?? ['-q']), '-t', image.tag, s.ctx], image.env);
    if (b.code !== 0) throw new Error(`build failed: ${b.stderr}`);
  }, timeout);
  afterAll(async () => {
    if (skip) return;
    await removeStore(s.root);
    await exec('rm', ['-rf', s.out, ...(s.ctx ? [s.ctx] : [])]);
  });
  return s;
}
