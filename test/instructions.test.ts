/**
 * End-to-end builds of small Dockerfiles, one per instruction and flag, each checked with real
 * clients: `skopeo inspect` for the config, `umoci unpack` for the file tree.
 */
import fsp from 'node:fs/promises';
import http from 'node:http';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildOptions } from '@vlab/image';
import { exec, freshStore, makeContext, removeStore, skopeoInspect, umociUnpack } from './helpers.ts';

let root: string;
let server: http.Server;
let baseUrl: string;
const served = 'served over http\n';

beforeAll(async () => {
  root = await freshStore();
  server = http.createServer((req, res) => {
    if (req.url === '/files/data.txt') {
      res.writeHead(200, { 'last-modified': new Date(1_600_000_000_000).toUTCString() });
      res.end(served);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  await removeStore(root);
});

let n = 0;
/** Build `dockerfile` with `files` as context, tag it, and return the config and unpacked rootfs. */
async function buildCase(dockerfile: string, files: Record<string, string> = {}, opts: Partial<BuildOptions> = {}) {
  const ctx = await makeContext({ Dockerfile: dockerfile, ...files });
  const tag = `case${++n}:latest`;
  try {
    const res = await build({ context: ctx, tags: [tag], root, ...opts });
    const cfg = (await skopeoInspect(root, tag)) as {
      config: Record<string, unknown>;
      author?: string;
      history: { created_by: string; empty_layer?: boolean }[];
    };
    const rootfs = await umociUnpack(root, tag);
    return { res, cfg, rootfs, read: (p: string) => fsp.readFile(path.join(rootfs, p), 'utf8'), ctx };
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

async function buildError(dockerfile: string, files: Record<string, string> = {}, opts: Partial<BuildOptions> = {}) {
  const ctx = await makeContext({ Dockerfile: dockerfile, ...files });
  try {
    await build({ context: ctx, root, ...opts });
  } catch (e) {
    return e as { code: string; message: string; location?: { line: number } };
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
  throw new Error('build succeeded but should have failed');
}

describe('RUN', () => {
  it('shell form, exec form and SHELL', async () => {
    const { read } = await buildCase(
      'FROM busybox\nRUN echo a > /a\nRUN ["/bin/sh", "-c", "echo b > /b"]\nSHELL ["/bin/sh", "-ec"]\nRUN echo "$0 $-" > /c\n',
    );
    expect(await read('a')).toBe('a\n');
    expect(await read('b')).toBe('b\n');
    expect(await read('c')).toMatch(/^\/bin\/sh .*e/);
  });

  it('heredocs: a script, a #! script and a heredoc redirected into a file', async () => {
    const df = [
      'FROM busybox',
      'RUN <<EOF',
      'echo one > /h1',
      'echo two >> /h1',
      'EOF',
      'RUN <<EOF',
      '#!/bin/sh -e',
      'echo shebang > /h2',
      'EOF',
      'RUN cat <<EOF > /h3',
      'text $HOME',
      'EOF',
      '',
    ].join('\n');
    const { read } = await buildCase(df);
    expect(await read('h1')).toBe('one\ntwo\n');
    expect(await read('h2')).toBe('shebang\n');
    expect(await read('h3')).toBe('text /root\n');
  });

  it('deleting a base file is a whiteout in the layer', async () => {
    const { rootfs } = await buildCase('FROM busybox\nRUN rm /etc/group && rm -r /home\n');
    await expect(fsp.stat(path.join(rootfs, 'etc/group'))).rejects.toThrow();
    await expect(fsp.stat(path.join(rootfs, 'home'))).rejects.toThrow();
    expect((await fsp.stat(path.join(rootfs, 'etc/passwd'))).isFile()).toBe(true);
  });

  it('USER runs as that uid and files it writes belong to it', async () => {
    const { rootfs, cfg, read } = await buildCase(
      'FROM busybox\nRUN mkdir /data && chown 1000:1000 /data\nUSER 1000:1000\nRUN id -u > /data/uid && touch /data/mine\n',
    );
    expect(await read('data/uid')).toBe('1000\n');
    expect((await fsp.stat(path.join(rootfs, 'data/mine'))).uid).toBe(1000);
    expect(cfg.config.User).toBe('1000:1000');
  });

  it('RUN --mount=type=cache persists across builds; tmpfs and secrets do not reach the layer', async () => {
    const secret = path.join(await makeContext({ s: 'top-secret' }), 's');
    const df =
      'FROM busybox\nRUN --mount=type=cache,target=/cache --mount=type=tmpfs,target=/scratch --mount=type=secret,id=tok,target=/run/tok sh -c "echo x >> /cache/log; wc -l < /cache/log > /count; cat /run/tok > /scratch/t; wc -c < /scratch/t > /secretlen"\n';
    const first = await buildCase(df, {}, { secrets: { tok: secret } });
    expect(await first.read('count')).toBe('1\n');
    expect(await first.read('secretlen')).toBe('10\n');
    await expect(fsp.stat(path.join(first.rootfs, 'cache/log'))).rejects.toThrow();
    await expect(fsp.stat(path.join(first.rootfs, 'run/tok'))).rejects.toThrow();
    const second = await buildCase(df, {}, { secrets: { tok: secret }, noCache: true });
    expect(await second.read('count')).toBe('2\n');
  });

  it('a failing RUN is E_RUN_FAILED with its Dockerfile line and the output tail', async () => {
    const e = await buildError('FROM busybox\n\nRUN echo boom-output && exit 3\n');
    expect(e.code).toBe('E_RUN_FAILED');
    expect(e.location?.line).toBe(3);
    expect(e.message).toContain('exit code 3');
    expect(e.message).toContain('boom-output');
  });
});

describe('COPY and ADD', () => {
  it('files, directories, globs and relative destinations', async () => {
    const { read, rootfs } = await buildCase(
      'FROM busybox\nWORKDIR /w\nCOPY a.txt b.txt ./\nCOPY dir /d\nCOPY *.md /docs/\nCOPY a.txt /renamed\n',
      {
        'a.txt': 'A',
        'b.txt': 'B',
        'dir/x/y.txt': 'Y',
        'one.md': '1',
        'two.md': '2',
      },
    );
    expect(await read('w/a.txt')).toBe('A');
    expect(await read('w/b.txt')).toBe('B');
    expect(await read('d/x/y.txt')).toBe('Y');
    expect((await fsp.readdir(path.join(rootfs, 'docs'))).sort()).toEqual(['one.md', 'two.md']);
    expect(await read('renamed')).toBe('A');
  });

  it('--chown and --chmod', async () => {
    const { rootfs } = await buildCase(
      'FROM busybox\nCOPY --chown=1000:1000 --chmod=640 f /f\nCOPY --chown=nobody f /g\n',
      { f: 'x' },
    );
    const st = await fsp.stat(path.join(rootfs, 'f'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    expect((await fsp.stat(path.join(rootfs, 'g'))).uid).toBe(65534);
  });

  it('--exclude and --parents', async () => {
    const { rootfs } = await buildCase(
      'FROM busybox\nCOPY --exclude=*.log src/ /app/\nCOPY --parents a/b/c.txt /p/\n',
      {
        'src/keep.txt': 'k',
        'src/drop.log': 'd',
        'a/b/c.txt': 'c',
      },
    );
    expect(await fsp.readdir(path.join(rootfs, 'app'))).toEqual(['keep.txt']);
    expect(await fsp.readFile(path.join(rootfs, 'p/a/b/c.txt'), 'utf8')).toBe('c');
  });

  it('COPY <<EOF writes a file from the Dockerfile', async () => {
    const { read } = await buildCase('FROM busybox\nARG WHO=world\nCOPY <<EOF /greet.txt\nhello ${WHO}\nEOF\n');
    expect(await read('greet.txt')).toBe('hello world\n');
  });

  it('.dockerignore excludes files; copying an excluded file fails clearly', async () => {
    const { rootfs } = await buildCase('FROM busybox\nCOPY . /ctx/\n', {
      '.dockerignore': 'secret*\n!secret-ok\n',
      'secret.key': 's',
      'secret-ok': 'ok',
      keep: 'k',
    });
    expect((await fsp.readdir(path.join(rootfs, 'ctx'))).sort()).toEqual([
      '.dockerignore',
      'Dockerfile',
      'keep',
      'secret-ok',
    ]);
    const e = await buildError('FROM busybox\nCOPY secret.key /\n', {
      '.dockerignore': 'secret*\n',
      'secret.key': 's',
    });
    expect(e.code).toBe('E_COPY_SOURCE');
  });

  it('sources outside the context are refused with E_CONTEXT_ESCAPE', async () => {
    expect((await buildError('FROM busybox\nCOPY ../etc/passwd /x\n')).code).toBe('E_CONTEXT_ESCAPE');
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nCOPY link /x\n' });
    await fsp.symlink('/etc/passwd', path.join(ctx, 'link'));
    await expect(build({ context: ctx, root })).rejects.toMatchObject({ code: 'E_CONTEXT_ESCAPE' });
    await fsp.rm(ctx, { recursive: true });
  });

  it('ADD extracts a local tar.gz archive', async () => {
    const src = await makeContext({ 'inner/file.txt': 'from archive' });
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nADD pkg.tar.gz /opt/\n' });
    await exec('tar', ['-czf', path.join(ctx, 'pkg.tar.gz'), '-C', src, 'inner']);
    await build({ context: ctx, root, tags: ['addtar:latest'] });
    const rootfs = await umociUnpack(root, 'addtar:latest');
    expect(await fsp.readFile(path.join(rootfs, 'opt/inner/file.txt'), 'utf8')).toBe('from archive');
  });

  it('ADD of a URL with --checksum; a wrong checksum is refused', async () => {
    const sum = `sha256:${createHash('sha256').update(served).digest('hex')}`;
    const { read } = await buildCase(`FROM busybox\nADD --checksum=${sum} ${baseUrl}/files/data.txt /dl/\n`);
    expect(await read('dl/data.txt')).toBe(served);
    const e = await buildError(
      `FROM busybox\nADD --checksum=sha256:${'0'.repeat(64)} ${baseUrl}/files/data.txt /dl/\n`,
    );
    expect(e.code).toBe('E_CHECKSUM_MISMATCH');
  });

  it('COPY --from an image and a stage; FROM scratch', async () => {
    const df =
      'FROM busybox AS tools\nRUN echo built > /artifact\nFROM scratch\nCOPY --from=tools /artifact /artifact\nCOPY --from=busybox /bin/busybox /busybox\n';
    const { rootfs, read } = await buildCase(df);
    expect(await read('artifact')).toBe('built\n');
    expect((await fsp.stat(path.join(rootfs, 'busybox'))).mode & 0o111).toBeTruthy();
    expect((await fsp.readdir(rootfs)).sort()).toEqual(['artifact', 'busybox']);
  });
});

describe('config instructions', () => {
  it('ENV, LABEL, EXPOSE, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, MAINTAINER, CMD', async () => {
    const df = [
      'FROM busybox',
      'MAINTAINER someone@example.com',
      'ENV A=1 B="two words"',
      'ENV C=$A-${B}',
      'LABEL org.example.x="y" version=1',
      'EXPOSE 80 53/udp',
      'VOLUME ["/data", "/logs"]',
      'WORKDIR /srv',
      'WORKDIR app',
      'STOPSIGNAL SIGTERM',
      'HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1',
      'CMD echo hi',
      '',
    ].join('\n');
    const { cfg, rootfs, res } = await buildCase(df);
    const c = cfg.config as Record<string, any>;
    expect(c.Env).toEqual(expect.arrayContaining(['A=1', 'B=two words', 'C=1-two words']));
    expect(c.Labels).toEqual({ 'org.example.x': 'y', version: '1' });
    expect(Object.keys(c.ExposedPorts).sort()).toEqual(['53/udp', '80/tcp']);
    expect(Object.keys(c.Volumes).sort()).toEqual(['/data', '/logs']);
    expect(c.WorkingDir).toBe('/srv/app');
    expect((await fsp.stat(path.join(rootfs, 'srv/app'))).isDirectory()).toBe(true);
    expect(c.StopSignal).toBe('SIGTERM');
    // skopeo's OCI config type has no Healthcheck (docker's extension): read it from the stored config.
    expect(res.config.config.Healthcheck).toMatchObject({
      Test: ['CMD-SHELL', 'wget -q localhost || exit 1'],
      Interval: 5e9,
      Retries: 2,
    });
    expect(c.Cmd).toEqual(['/bin/sh', '-c', 'echo hi']);
    expect(cfg.author).toBe('someone@example.com');
    expect(cfg.history.some((h) => h.created_by.startsWith('ENV') && h.empty_layer)).toBe(true);
  });

  it('ENTRYPOINT resets an inherited CMD, not one from the same stage', async () => {
    const { res } = await buildCase('FROM busybox AS a\nCMD ["x"]\nFROM a\nENTRYPOINT ["/bin/echo"]\n');
    expect(res.config.config.Cmd ?? null).toBeNull();
    const same = await buildCase('FROM busybox\nCMD ["x"]\nENTRYPOINT ["/bin/echo"]\n');
    expect(same.res.config.config.Cmd).toEqual(['x']);
  });

  it('ARG before FROM, --build-arg overrides, and ARG values reach RUN but not the config', async () => {
    const df = 'ARG BASE=busybox\nFROM ${BASE}\nARG V=default\nRUN echo $V > /v\n';
    const { read, cfg } = await buildCase(df, {}, { buildArgs: { V: 'override' } });
    expect(await read('v')).toBe('override\n');
    expect(JSON.stringify(cfg.config.Env)).not.toContain('V=override');
  });

  it('ONBUILD triggers run when the image is used as a base', async () => {
    await buildCase('FROM busybox\nONBUILD RUN echo triggered > /onbuild\n');
    const parentTag = `case${n}:latest`;
    const { read, cfg } = await buildCase(`FROM ${parentTag}\nRUN cat /onbuild > /seen\n`);
    expect(await read('seen')).toBe('triggered\n');
    expect(cfg.config.OnBuild ?? null).toBeNull();
  });
});

describe('stages', () => {
  it('--target builds only what the target needs', async () => {
    const df = 'FROM busybox AS broken\nRUN exit 1\nFROM busybox AS good\nRUN echo ok > /ok\nFROM broken\n';
    const { read } = await buildCase(df, {}, { target: 'good' });
    expect(await read('ok')).toBe('ok\n');
    const e = await buildError(df, {}, { target: 'nope' });
    expect(e.code).toBe('E_UNKNOWN_TARGET');
  });

  it('parse errors carry the line', async () => {
    const e = await buildError('FROM busybox\nRUNN echo\n');
    expect(e.code).toMatch(/^E_(PARSE|UNKNOWN_INSTRUCTION)$/);
    expect(e.location?.line).toBe(2);
  });
});

describe('abort', () => {
  it('an aborted build stops the RUN and leaves no mount, temp blob or snapshot behind', async () => {
    const ac = new AbortController();
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN sleep 30\n' });
    const p = build({
      context: ctx,
      root,
      signal: ac.signal,
      onEvent: (e) => e.type === 'step-miss' && setTimeout(() => ac.abort(), 500),
    });
    const started = Date.now();
    await expect(p).rejects.toMatchObject({ code: expect.stringMatching(/ABORT/) });
    expect(Date.now() - started).toBeLessThan(15_000);
    const mounts = await fsp.readFile('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(root);
    const blobs = await fsp.readdir(path.join(root, 'blobs/sha256'));
    expect(blobs.filter((b) => b.startsWith('.tmp'))).toEqual([]);
    await fsp.rm(ctx, { recursive: true });
  });
});
