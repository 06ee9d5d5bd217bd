/**
 * Docker's CLI as people type it (issue 11): verbs and --help, build flags, stdin, lint, error
 * snippets, the tty view. Each case runs the real CLI on a real store; the tty view is read through
 * a real pty: tmux runs the build in a detached session (a server on its own socket) and the test
 * reads the screen as a user sees it.
 */
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, freshStore, makeContext, removeStore, repo, skopeoInspect } from './helpers.ts';

const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
let root: string;
let scratch: string;

/** Run the CLI with optional stdin and cwd; resolves with its exit code and output. */
function run(
  args: string[],
  opts: { stdin?: Buffer | string; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [vbuild, ...args], {
      cwd: opts.cwd ?? scratch,
      env: { ...process.env, VLAB_ROOT: root },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined); // a command that does not read stdin
    child.stdin.end(opts.stdin ?? '');
  });
}

/** A one-entry ustar archive, written by hand so the name can be hostile. */
function tarOf(name: string, body: string): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, 'utf8');
  put(name, 0, 100);
  put('0000644\0', 100, 8);
  put('0000000\0', 108, 8);
  put('0000000\0', 116, 8);
  put(`${Buffer.byteLength(body).toString(8).padStart(11, '0')}\0`, 124, 12);
  put('00000000000\0', 136, 12);
  h.fill(' ', 148, 156);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const data = Buffer.alloc(Math.ceil(Buffer.byteLength(body) / 512) * 512);
  data.write(body);
  return Buffer.concat([h, data, Buffer.alloc(1024)]);
}

/** tmux's server socket lives in this file's scratch dir, so nothing is left in /tmp/tmux-UID. */
const tmux = (...args: string[]) => exec('tmux', ['-S', path.join(scratch, 'tmux.sock'), ...args]);
/** The screen with colour escapes (`-e`); tmux emits an SGR only where the colour changes. */
const screen = async () => (await tmux('capture-pane', '-p', '-e', '-t', 'build')).stdout;
// SGR escapes are what the test reads, so the patterns name ESC on purpose.
/* eslint-disable no-control-regex */
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** The foreground colour in force at each line's first character: '34' blue, '31' red, '' default. */
function lineColours(s: string): { text: string; fg: string }[] {
  let fg = '';
  const track = (sgr: string) => {
    for (const [, codes] of sgr.matchAll(/\x1b\[([0-9;]*)m/g))
      for (const c of codes!.split(';')) fg = ['', '0', '39'].includes(c) ? '' : /^3\d$/.test(c) ? c : fg;
  };
  return s.split('\n').map((line) => {
    const lead = /^(?:\x1b\[[0-9;]*m)*/.exec(line)![0];
    track(lead);
    const res = { text: plain(line), fg };
    track(line.slice(lead.length));
    return res;
  });
}

async function waitFor(pred: (s: string) => boolean, ms = 15_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await screen();
    if (pred(plain(s))) return s;
    if (Date.now() > end) throw new Error(`screen never matched:\n${plain(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  root = await freshStore();
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-cli-docker-'));
});
afterAll(async () => {
  await tmux('kill-server').catch(() => undefined); // our own server (its socket is ours) only
  await removeStore(root);
  await fsp.rm(scratch, { recursive: true, force: true });
});

describe('verbs', () => {
  it('an unknown verb is an error listing the verbs; a word that is a path still builds', async () => {
    const r = await run(['ps2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("'ps2' is not a vbuild command");
    expect(r.stderr).toMatch(/Commands: build, check, .*images/);
    await fsp.mkdir(path.join(scratch, 'ctxdir'));
    await fsp.writeFile(path.join(scratch, 'ctxdir/Dockerfile'), 'FROM busybox\nLABEL a=b\n');
    // --check: dispatched to build, without the cost of a build
    expect((await run(['ctxdir', '--check'])).stderr).toBe('Check complete, no warnings found.\n'); // an existing directory
    expect((await run(['./ctxdir', '--check'])).code).toBe(0); // a path with ./
  });

  it('vbuild --version prints the package version; verbs have --help (each verb: flags.test.ts)', async () => {
    const pkg = JSON.parse(await fsp.readFile(path.join(repo, 'packages/core/package.json'), 'utf8')) as {
      version: string;
    };
    const v = await run(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toBe(`vbuild version ${pkg.version}\n`);
    const h = await run(['build', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage:  vbuild build ');
    expect(h.stdout).toContain('--metadata-file FILE');
  });
});

describe('build flags', () => {
  it('--label (repeatable, --k=v and --k v), --iidfile and --metadata-file as buildx writes it', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nLABEL from=dockerfile over=old\n' });
    const iid = path.join(scratch, 'iid');
    const meta = path.join(scratch, 'meta.json');
    const r = await run([
      'build',
      '-q',
      '-tlab:1',
      '--tag=lab:2',
      '--label=over=new',
      '--label',
      'k2=v2',
      '--label',
      'bare',
      '--iidfile',
      iid,
      `--metadata-file=${meta}`,
      ctx,
    ]);
    expect(r.stderr).toBe('');
    const id = r.stdout.trim();
    expect(await fsp.readFile(iid, 'utf8')).toBe(id); // no newline, as docker
    const cfg = (await skopeoInspect(root, 'lab:2')) as { config: { Labels: Record<string, string> } };
    expect(cfg.config.Labels).toEqual({ from: 'dockerfile', over: 'new', k2: 'v2', bare: '' });
    const index = JSON.parse(await fsp.readFile(path.join(root, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const manifest = index.manifests.find(
      (m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'lab:2',
    )!.digest;
    expect(JSON.parse(await fsp.readFile(meta, 'utf8'))).toEqual({
      'containerimage.config.digest': id,
      'containerimage.digest': manifest,
      'image.name': 'lab:1,lab:2',
    });
  });

  it('--add-host, --ulimit nofile, --shm-size and the host --platform reach the RUN; another platform is E_UNSUPPORTED', async () => {
    const ctx = await makeContext({
      Dockerfile:
        'FROM busybox\nRUN grep db /etc/hosts > /hosts; ulimit -n > /nofile; df -k /dev/shm | tail -1 > /shm\n',
    });
    const dest = path.join(scratch, 'run-out');
    const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch as 'x64'] ?? process.arch;
    const r = await run([
      'build',
      '-q',
      '--add-host',
      'db:10.1.2.3',
      '--add-host=cache=::1',
      '--ulimit',
      'nofile=4096:4096',
      '--shm-size',
      '8m',
      '--platform',
      `linux/${arch}`,
      '-o',
      `type=local,dest=${dest}`,
      ctx,
    ]);
    expect(r.stderr).toBe('');
    expect(await fsp.readFile(path.join(dest, 'hosts'), 'utf8')).toContain('10.1.2.3\tdb');
    expect(await fsp.readFile(path.join(dest, 'nofile'), 'utf8')).toBe('4096\n');
    expect((await fsp.readFile(path.join(dest, 'shm'), 'utf8')).split(/\s+/)[1]).toBe('8192'); // 1K-blocks
    const plat = await run(['build', '--platform', 'linux/s390x', ctx]);
    expect(plat.code).toBe(1);
    expect(plat.stderr).toMatch(
      /--platform linux\/s390x: only the host platform linux\/\w+ can be built .*\[E_UNSUPPORTED\]/,
    );
  });

  it('-f - reads the Dockerfile from stdin; - reads a context tar; a hostile tar on stdin writes nothing outside', async () => {
    const ctx = await makeContext({ 'hello.txt': 'from the context\n' });
    const dest = path.join(scratch, 'stdin-out');
    const df = await run(['build', '-q', '-f', '-', '-o', `type=local,dest=${dest}`, ctx], {
      stdin: 'FROM busybox\nCOPY hello.txt /h\n',
    });
    expect(df.stderr).toBe('');
    expect(await fsp.readFile(path.join(dest, 'h'), 'utf8')).toBe('from the context\n');
    await fsp.writeFile(path.join(ctx, 'inner.df'), 'FROM busybox\nCOPY hello.txt /from-tar\n');
    const { stdout: tar } = await new Promise<{ stdout: Buffer }>((resolve, reject) => {
      const c = spawn('tar', ['-C', ctx, '-czf', '-', '.']);
      const parts: Buffer[] = [];
      c.stdout.on('data', (d: Buffer) => parts.push(d));
      c.on('error', reject);
      c.on('close', () => resolve({ stdout: Buffer.concat(parts) }));
    });
    const dest2 = path.join(scratch, 'stdin-tar-out');
    const t = await run(['build', '-q', '-f', 'inner.df', '-o', `type=local,dest=${dest2}`, '-'], { stdin: tar }); // -f: inside the tar, as docker
    expect(t.stderr).toBe('');
    expect(await fsp.readFile(path.join(dest2, 'from-tar'), 'utf8')).toBe('from the context\n');
    const marker = path.join(os.tmpdir(), 'vlab-stdin-escape-marker');
    await fsp.rm(marker, { force: true });
    const evil = await run(['build', '-'], { stdin: tarOf('../../../../../../../..' + marker, 'escaped') });
    expect(evil.code).toBe(1);
    expect(evil.stderr).toContain('[E_LAYER_UNSAFE]');
    await expect(fsp.stat(marker)).rejects.toThrow(/ENOENT/);
    expect((await fsp.readdir(os.tmpdir())).filter((n) => n.startsWith('vlab-stream-ctx-'))).toEqual([]);
    expect((await run(['build', '-f', '-', '-'])).stderr).toContain(
      'cannot read both the context and the Dockerfile from stdin',
    );
  });
});

describe('lint and errors', () => {
  it('vbuild check and build --check print check() warnings with the snippet and exit 1', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox as base\nARG USED\nRUN echo $USED\n' });
    const c = await run(['check', ctx]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('Check complete, 1 warning has been found!');
    expect(c.stderr).toContain('WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/');
    expect(c.stderr).toContain('   1 | >>> FROM busybox as base');
    const b = await run(['build', '--check', '-t', 'not:built', ctx]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('FromAsCasing');
    expect(await fsp.readFile(path.join(root, 'index.json'), 'utf8')).not.toContain('not:built'); // --check does not build
  });

  it('a build warns about build args no ARG consumed, as BuildKit', async () => {
    const ctx = await makeContext({
      Dockerfile: 'ARG GLOBAL\nFROM busybox\nARG USED\nRUN echo $USED\nFROM busybox AS unused\nARG ZED\n',
    });
    const u = await run([
      'build',
      '--progress=plain',
      '--target',
      '0',
      '--build-arg',
      'USED=1',
      '--build-arg',
      'ZED=2',
      '--build-arg',
      'OTHER=3',
      '--build-arg',
      'GLOBAL=4',
      '--build-arg',
      'HTTP_PROXY=x',
      ctx,
    ]);
    expect(u.code).toBe(0);
    expect(u.stderr).toContain('One or more build-args [OTHER ZED] were not consumed');
  });

  it('an error quotes the Dockerfile line with a caret, under the name given with -f; FROM of an unknown image is located', async () => {
    const ctx = await makeContext({
      'sub/my.df': 'FROM busybox\n# a comment\n  RUN false\nLABEL after=1\n',
      'from.df': 'ARG V=1\nFROM nosuch:$V\n',
    });
    const r = await run(['build', '--progress=plain', '-f', 'sub/my.df', '.'], { cwd: ctx });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      [
        'sub/my.df:3',
        '--------------------',
        '   1 |     FROM busybox',
        '   2 |     # a comment',
        '   3 | >>>   RUN false',
        '     |       ^',
        '   4 |     LABEL after=1',
        '--------------------',
        'ERROR: sub/my.df:3:3: ',
      ].join('\n'),
    );
    const f = await run(['build', '-f', 'from.df', '.'], { cwd: ctx });
    expect(f.stderr).toContain('   2 | >>> FROM nosuch:$V');
    expect(f.stderr).toMatch(/ERROR: from\.df:2:1: image "nosuch:1" is not in the local store.*\[E_IMAGE_NOT_FOUND\]/);
  });
});

describe('tty progress in a real pty', () => {
  it("header with the step counter and total time, a ticking timer, running vs finished look, a short step's output shown", async () => {
    const ctx = await makeContext({
      Dockerfile: 'FROM busybox\nRUN echo short-output-marker\nRUN sleep 1.5 && echo long-step-done\n',
    });
    const cmd = `env VLAB_ROOT=${root} node ${vbuild} build --progress=tty ${ctx}; sleep 30`;
    await tmux('new-session', '-d', '-s', 'build', '-x', '120', '-y', '30', cmd);
    const running = /RUN sleep 1\.5 && echo long-step-done\s+(\d+\.\d)s/;
    const first = await waitFor((s) => running.test(s) && Number(running.exec(s)![1]) >= 0.1);
    await new Promise((r) => setTimeout(r, 500));
    const second = await screen();
    // the header: [+] Building <total>s (<finished>/<seen>)
    expect(plain(first)).toMatch(/^\[\+\] Building \d+\.\ds \(1\/2\)\n/);
    // the running step's timer ticks with no event in between (the RUN prints nothing for 1.5 s)
    const t1 = Number(running.exec(plain(first))![1]);
    const t2 = Number(running.exec(plain(second))![1]);
    expect(t2).toBeGreaterThan(t1);
    // the finished step's output is still on screen while the next one runs
    expect(plain(first)).toContain(' => => # short-output-marker');
    // a finished step is blue, the running one is in the default colour
    const lines = lineColours(first);
    expect(lines.find((l) => l.text.includes('RUN echo short-output-marker'))!.fg).toBe('34');
    expect(lines.find((l) => l.text.includes('RUN sleep 1.5'))!.fg).toBe('');
    const last = plain(await waitFor((s) => s.includes('FINISHED')));
    expect(last).toMatch(/^\[\+\] Building \d+\.\ds \(2\/2\) FINISHED\n/);
    expect(last).toMatch(/=> writing image sha256:[0-9a-f]{64} done/);
  });
});
