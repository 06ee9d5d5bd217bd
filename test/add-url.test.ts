/**
 * ADD <url> against a real HTTP server on 127.0.0.1: --checksum is checked at every use of a
 * download the build shares between ADDs of one URL (and a cache entry is only ever recorded for
 * a checksum that was checked); a URL whose name does not fit one path component.
 */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildOptions } from '@vlab/image';
import { buildWithEvents, cachedSteps, freshStore, makeContext, removeStore, umociUnpack } from './helpers.ts';

let root: string;
let server: http.Server;
let baseUrl: string;
const BODY = 'the real content\n';
const REAL = `sha256:${createHash('sha256').update(BODY).digest('hex')}`;
const WRONG = `sha256:${'0'.repeat(64)}`;

beforeAll(async () => {
  root = await freshStore();
  server = http.createServer((_req, res) => res.writeHead(200).end(BODY));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await removeStore(root);
});

let n = 0;
async function run(dockerfile: string, opts: Partial<BuildOptions> = {}) {
  const ctx = await makeContext({ Dockerfile: dockerfile });
  const tag = `addurl${++n}:latest`;
  try {
    const { events } = await buildWithEvents({ context: ctx, tags: [tag], root, ...opts });
    return { tag, events, error: undefined };
  } catch (e) {
    return { tag, events: [], error: e as { code: string; message: string; location?: { line: number } } };
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

describe('ADD --checksum with a URL the build already fetched', () => {
  it.each([false, true])(
    'a wrong --checksum on the second ADD of one URL is E_CHECKSUM_MISMATCH (noCache=%s)',
    async (noCache) => {
      const u = `${baseUrl}/ck-${noCache}`;
      const { error } = await run(`FROM busybox\nADD ${u} /a\nADD --checksum=${WRONG} ${u} /b\nRUN cat /b\n`, {
        noCache,
      });
      expect(error?.code).toBe('E_CHECKSUM_MISMATCH');
    },
  );

  it('a stage that fetched the URL first does not let a wrong --checksum into the cache', async () => {
    const u = `${baseUrl}/poison`;
    const first = await run(
      `FROM busybox AS a\nADD ${u} /a\nFROM busybox\nADD --checksum=${WRONG} ${u} /b\nCOPY --from=a /a /a\n`,
    );
    expect(first.error?.code).toBe('E_CHECKSUM_MISMATCH');
    // A later build with only the wrong checksum: nothing cached to hit, the fetch refuses it.
    const later = await run(`FROM busybox\nADD --checksum=${WRONG} ${u} /b\n`);
    expect(later.error?.code).toBe('E_CHECKSUM_MISMATCH');
    expect(cachedSteps(later.events)).toEqual([]);
  });

  it('the right --checksum on a shared download builds, and hits the cache next time', async () => {
    const u = `${baseUrl}/right`;
    const df = `FROM busybox\nADD ${u} /a\nADD --checksum=${REAL} ${u} /b\n`;
    const first = await run(df);
    expect(first.error).toBeUndefined();
    const again = await run(df);
    expect(again.error).toBeUndefined();
    expect(cachedSteps(again.events).length).toBe(2);
    const rootfs = await umociUnpack(root, again.tag);
    expect(await fsp.readFile(path.join(rootfs, 'b'), 'utf8')).toBe(BODY);
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
  });
});

describe('ADD <url> whose name does not fit one path component', () => {
  const long = 'a'.repeat(300);
  it('into a directory: E_ADD_NAME naming the fix', async () => {
    const { error } = await run(`FROM busybox\nADD ${baseUrl}/${long} /got/\n`);
    expect(error?.code).toBe('E_ADD_NAME');
    expect(error?.message).toMatch(/more than the 255.*ADD <url> \/dir\/file/);
  });
  it('to a named file: builds', async () => {
    const { tag, error } = await run(`FROM busybox\nADD ${baseUrl}/${long} /got/file\n`);
    expect(error).toBeUndefined();
    const rootfs = await umociUnpack(root, tag);
    expect(await fsp.readFile(path.join(rootfs, 'got/file'), 'utf8')).toBe(BODY);
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
  });
});
