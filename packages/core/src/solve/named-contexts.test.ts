import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../store/store.ts';
import { FileHashCache } from '../context/hash-cache.ts';
import { NamedContexts, refuseTransport } from './named-contexts.ts';
import { parseTransportRef } from '../image/transport.ts';

let tmp: string;
let store: Store;
let hashes: FileHashCache;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-named-'));
  store = await Store.open(path.join(tmp, 'store'));
  hashes = await FileHashCache.load(path.join(tmp, 'hashes.json'));
  await fsp.mkdir(path.join(tmp, 'dir'));
});
afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));

const open = (map: Record<string, string>) => NamedContexts.open(map, store, hashes);

describe('named contexts', () => {
  it.each(['oci-layout:///x/y:tag', 'OCI-ARCHIVE:/x.tar', 'docker-archive:/x.tar', 'docker-image://alpine'])(
    '%s in a Dockerfile is E_NAMED_CONTEXT naming --build-context',
    (ref) => {
      expect(() => refuseTransport(ref, 'FROM')).toThrow(
        expect.objectContaining({
          code: 'E_NAMED_CONTEXT',
          message: expect.stringContaining(`--build-context base=${ref}`),
        }),
      );
      expect(() => refuseTransport(ref, 'COPY --from')).toThrow(
        expect.objectContaining({ message: expect.stringContaining('COPY --from=src') }),
      );
    },
  );

  it.each(['alpine', 'alpine:3.20', 'registry.example/x/y:1', 'stage', 'localhost:5000/a'])(
    '%s is a plain name',
    (ref) => {
      expect(() => refuseTransport(ref, 'FROM')).not.toThrow();
    },
  );

  it('a directory is for COPY --from only; an image name resolves in the store; names match case-insensitively as stages do', async () => {
    const n = await open({ Files: path.join(tmp, 'dir'), img: 'docker-image://none:here' });
    expect([...n.names()].sort()).toEqual(['files', 'img']);
    expect(n.image('files', 'COPY --from')).toBeUndefined();
    expect(() => n.image('files', 'FROM')).toThrow(expect.objectContaining({ code: 'E_NAMED_CONTEXT' }));
    expect((await n.dir('files'))!.root).toBe(path.join(tmp, 'dir'));
    expect(n.dir('img')).toBeUndefined();
    expect(n.image('other', 'FROM')).toBeUndefined();
    await expect(n.image('img', 'FROM')).rejects.toMatchObject({ code: 'E_IMAGE_NOT_FOUND' });
  });

  it.each([
    [{ a: path.join(os.tmpdir(), 'vlab-does-not-exist-named') }, 'E_BAD_ARG'],
    [{ a: 'https://example.invalid/repo.git' }, 'E_BAD_ARG'],
    [{ a: 'docker-image://' }, 'E_BAD_ARG'],
    [{ 'a b': '/tmp' }, 'E_BAD_ARG'],
    [{ a: 'oci-layout:///x@sha256:0000' }, 'E_UNSUPPORTED'],
  ])('%j is refused up front (%s)', async (map, code) => {
    await expect(open(map)).rejects.toMatchObject({ code });
  });

  it('the transport prefix is case-insensitive in the loader as in the check (one parser)', async () => {
    const missing = path.join(tmp, 'no-layout-here');
    const n = await open({ up: `OCI-LAYOUT://${missing}:v1`, arch: `Docker-Archive:${missing}.tar` });
    // Reaches the loader, which looks at the path (no "not an oci-layout:// reference").
    await expect(n.image('up', 'FROM')).rejects.toMatchObject({
      code: 'E_IMAGE_NOT_FOUND',
      message: expect.stringContaining(missing),
    });
    await expect(n.image('arch', 'FROM')).rejects.not.toMatchObject({ code: 'E_BAD_ARG' });
  });

  it.each([
    ['OCI-LAYOUT:///d:t', { transport: 'oci-layout', path: '/d', tag: 't' }],
    ['oci-layout:/d', { transport: 'oci-layout', path: '/d', tag: undefined }],
    ['oci-archive:/x.tar', { transport: 'oci-archive', path: '/x.tar', tag: undefined }],
    ['docker-archive:/x.tar:odd', { transport: 'docker-archive', path: '/x.tar:odd' }],
    ['Docker-Image://alpine:3', { transport: 'docker-image', ref: 'alpine:3' }],
    ['alpine', undefined],
  ])('parseTransportRef(%s)', (ref, want) => {
    expect(parseTransportRef(ref)).toEqual(want);
  });
});
