/**
 * Issue 11, "Differences found": each case has Docker's/BuildKit's result as the expected value.
 * Where buildah and BuildKit disagree, BuildKit wins and the case says why.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '@vlab/image';
import { parseOutput } from '../packages/core/src/export/export.ts';
import { exec, freshStore, makeContext, removeStore, skopeoInspect, umociUnpack } from './helpers.ts';

let root: string;
let scratch: string;
beforeAll(async () => {
  root = await freshStore();
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-exact-'));
});
afterAll(async () => {
  await removeStore(root);
  await fsp.rm(scratch, { recursive: true, force: true });
});

let n = 0;
async function built(
  dockerfile: string,
  files: Record<string, string> = {},
  opts: Partial<Parameters<typeof build>[0]> = {},
): Promise<string> {
  const ctx = await makeContext({ Dockerfile: dockerfile, ...files });
  const tag = `exact${++n}:latest`;
  try {
    await build({ context: ctx, root, tags: [tag], ...opts });
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
  return tag;
}

const statOf = async (p: string) => (await exec('stat', ['-c', '%u:%g %a %F', p])).stdout.trim();

/** The image manifest of a tag in the store (an OCI layout). */
async function manifestOf(tag: string): Promise<{ layers: { digest: string; size: number; mediaType: string }[] }> {
  return JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${root}:${tag}`])).stdout) as never;
}

describe('issue 11: results as Docker/BuildKit give them', () => {
  it('1. FROM scratch gets the default PATH in its config (BuildKit emptyImage)', async () => {
    const tag = await built('FROM scratch\nCOPY a.txt /\n', { 'a.txt': 'a' });
    const cfg = (await skopeoInspect(root, tag)) as { config: { Env?: string[] } };
    expect(cfg.config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('COPY --from a stage keeps the source owners unless --chown is given (BuildKit; context files become 0:0)', async () => {
    const tag = await built(
      'FROM busybox AS gen\nRUN mkdir /out && echo a > /out/a && ln -s a /out/b && chown -R 33:44 /out\n' +
        'FROM busybox\nCOPY --from=gen /out/ /srv/\nCOPY --from=gen --chown=5:5 /out/a /srv/a-owned\nCOPY a.txt /srv/ctx\n',
      { 'a.txt': 'a' },
    );
    const rootfs = await umociUnpack(root, tag);
    expect(await statOf(path.join(rootfs, 'srv/a'))).toMatch(/^33:44 /);
    expect((await exec('stat', ['-c', '%u:%g', path.join(rootfs, 'srv/b')])).stdout.trim()).toBe('33:44');
    expect(await statOf(path.join(rootfs, 'srv/a-owned'))).toMatch(/^5:5 /);
    expect(await statOf(path.join(rootfs, 'srv/ctx'))).toMatch(/^0:0 /);
  });

  it('2a. WORKDIR under a non-root USER creates the dirs owned by that user (BuildKit Mkdir WithUser)', async () => {
    // BuildKit's mkdir -p chowns every dir it creates, parents included.
    const tag = await built('FROM busybox\nUSER nobody\nWORKDIR /app/sub\nRUN touch x\n');
    const rootfs = await umociUnpack(root, tag);
    expect(await statOf(path.join(rootfs, 'app'))).toBe('65534:65534 755 directory');
    expect(await statOf(path.join(rootfs, 'app/sub'))).toBe('65534:65534 755 directory');
    expect(await statOf(path.join(rootfs, 'app/sub/x'))).toMatch(/^65534:65534 /);
    // a uid the image does not know: a file op's chown rule (gid = uid), not the process's (gid 0)
    const bare = await umociUnpack(root, await built('FROM busybox\nUSER 1000\nWORKDIR /u\n'));
    expect(await statOf(path.join(bare, 'u'))).toBe('1000:1000 755 directory');
  });

  it('2b. WORKDIR through a symlink whose target is missing creates the target, inside the rootfs', async () => {
    const tag = await built(
      'FROM busybox\nRUN ln -s /missing/deep /w && ln -s ../../.. /up\nWORKDIR /w\nRUN touch x\nWORKDIR /up/escaped\n',
    );
    const rootfs = await umociUnpack(root, tag);
    expect(await statOf(path.join(rootfs, 'missing/deep/x'))).toMatch(/^0:0 644 regular/);
    expect((await fsp.lstat(path.join(rootfs, 'w'))).isSymbolicLink()).toBe(true);
    // `..` through the link stops at the image's root: the dir lands in it, nowhere else.
    expect((await fsp.stat(path.join(rootfs, 'escaped'))).isDirectory()).toBe(true);
  });

  it('7. a secret mount honours mode=, uid=, gid= (default 0400 root:root) and the source file is untouched', async () => {
    const secret = path.join(scratch, 'secret.txt');
    await fsp.writeFile(secret, 's3cret', { mode: 0o644 });
    const before = await fsp.stat(secret);
    const tag = await built(
      [
        'FROM busybox',
        'RUN --mount=type=secret,id=tok stat -c "%a %u:%g" /run/secrets/tok > /default',
        'RUN --mount=type=secret,id=tok,mode=0440,uid=1000,gid=1001 stat -c "%a %u:%g" /run/secrets/tok > /custom',
        'USER 1000',
        'RUN --mount=type=secret,id=tok,uid=1000,target=/tmp/t cat /tmp/t > /tmp/read',
      ].join('\n'),
      {},
      { secrets: { tok: secret } },
    );
    const rootfs = await umociUnpack(root, tag);
    expect(await fsp.readFile(path.join(rootfs, 'default'), 'utf8')).toBe('400 0:0\n');
    expect(await fsp.readFile(path.join(rootfs, 'custom'), 'utf8')).toBe('440 1000:1001\n');
    expect(await fsp.readFile(path.join(rootfs, 'tmp/read'), 'utf8')).toBe('s3cret');
    const after = await fsp.stat(secret);
    expect([after.mode, after.uid, after.gid]).toEqual([before.mode, before.uid, before.gid]);
  });

  it('8. RUN true gives an empty layer (only the tar end, as BuildKit), and two of them are two layer dirs of a docker-archive, no member twice', async () => {
    const tag = await built('FROM busybox\nRUN true\nRUN true\n', {}, { noCache: true });
    const { layers } = await manifestOf(tag);
    const last = layers[layers.length - 1]!;
    const bytes = await fsp.readFile(path.join(root, 'blobs/sha256', last.digest.slice(7)));
    expect(bytes.length).toBe(1024);
    expect(bytes.every((b) => b === 0)).toBe(true);
    const out = path.join(scratch, 'twice.tar');
    await built('FROM busybox\nRUN true\nRUN true\n', {}, { output: [parseOutput(`type=docker,dest=${out}`)] });
    const names = (await exec('tar', ['-tf', out])).stdout.trim().split('\n');
    expect(names.length).toBe(new Set(names).size);
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', `docker-archive:${out}`])).stdout) as {
      rootfs: { diff_ids: string[] };
    };
    expect(cfg.rootfs.diff_ids.length).toBe(3);
    // …but `WORKDIR /` has nothing to create: BuildKit adds no layer for it
    expect((await manifestOf(await built('FROM busybox\nWORKDIR /\n'))).layers.length).toBe(1);
  });

  it('9. docker-archive has `repositories`; the OCI archive names the image as docker save does', async () => {
    const dock = path.join(scratch, 'named.tar');
    const oci = path.join(scratch, 'named-oci.tar');
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo hi > /hi\n' });
    await build({
      context: ctx,
      root,
      tags: ['v1'],
      output: [parseOutput(`type=docker,dest=${dock}`), parseOutput(`type=oci,dest=${oci}`)],
    });
    await fsp.rm(ctx, { recursive: true });
    const read = async (tar: string, member: string) =>
      JSON.parse((await exec('tar', ['-xOf', tar, member])).stdout) as never;
    const manifest = (await read(dock, 'manifest.json')) as { RepoTags: string[]; Layers: string[] }[];
    expect(manifest[0]!.RepoTags).toEqual(['v1:latest']);
    const top = manifest[0]!.Layers.at(-1)!.split('/')[0];
    expect(await read(dock, 'repositories')).toEqual({ v1: { latest: top } });
    const index = (await read(oci, 'index.json')) as { manifests: { annotations: Record<string, string> }[] };
    expect(index.manifests[0]!.annotations).toEqual({
      'io.containerd.image.name': 'docker.io/library/v1:latest',
      'org.opencontainers.image.ref.name': 'latest',
    });
    // skopeo finds it by its ref name, as it does in docker's archives
    await exec('skopeo', ['inspect', '--raw', `oci-archive:${oci}:latest`]);
  });

  it('10. --output compression=gzip writes gzip layers skopeo verifies; zstd into a docker-archive and unknown options are refused clearly', async () => {
    const dest = path.join(scratch, 'gz-layout');
    const tag = await built(
      'FROM busybox\nRUN echo gz > /gz\n',
      {},
      { output: [parseOutput(`type=oci,dest=${dest},compression=gzip`)] },
    );
    const m = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${dest}:${tag.split(':')[1]}`])).stdout) as {
      layers: { mediaType: string; digest: string }[];
    };
    expect(m.layers.map((l) => l.mediaType)).toEqual(m.layers.map(() => 'application/vnd.oci.image.layer.v1.tar+gzip'));
    // skopeo checks every blob's digest while copying; umoci then unpacks the gzip layers
    await exec('skopeo', ['copy', `oci:${dest}:latest`, `oci:${scratch}/gz-copy:latest`]);
    const bundle = path.join(scratch, 'gz-bundle');
    await exec('umoci', ['unpack', '--image', `${dest}:latest`, bundle]);
    expect(await fsp.readFile(path.join(bundle, 'rootfs/gz'), 'utf8')).toBe('gz\n');
    const cfg = (await skopeoInspect(root, tag)) as { rootfs: { diff_ids: string[] } };
    const exported = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dest}:latest`])).stdout) as {
      rootfs: { diff_ids: string[] };
    };
    expect(exported.rootfs.diff_ids).toEqual(cfg.rootfs.diff_ids);

    expect(() => parseOutput('type=oci,dest=x,compresion=gzip')).toThrow(
      expect.objectContaining({ code: 'E_BAD_ARG', message: expect.stringContaining('compresion') }),
    );
    expect(() => parseOutput('type=oci,dest=x,compression=lz4')).toThrow(
      expect.objectContaining({ code: 'E_BAD_ARG' }),
    );
    // zstd is written on any Node (test/zstd-export.test.ts), but not into a docker-archive
    expect(parseOutput('type=oci,dest=x,compression=zstd').compression).toBe('zstd');
    expect(() => parseOutput('type=docker,dest=x,compression=zstd')).toThrow(
      expect.objectContaining({ code: 'E_UNSUPPORTED', message: expect.stringContaining('docker-archive') }),
    );
  });
});
