/**
 * A cache hit stops at the key (each instruction module's cacheKey runs before any work): a hit
 * packs no blob, mounts no snapshot, and an ADD --checksum <url> asks the server nothing.
 */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BlobStore } from '../packages/core/src/store/blobs.ts';
import { LayerManager } from '../packages/core/src/layers/manager.ts';
import {
  buildWithEvents,
  cachedSteps,
  freshStore,
  makeContext,
  missedSteps,
  removeStore,
  serveLoopback,
} from './helpers.ts';

let root: string;
let server: Awaited<ReturnType<typeof serveLoopback>>;
let baseUrl: string;
const requests: string[] = [];
const BODY = 'downloaded once\n';
const SUM = `sha256:${createHash('sha256').update(BODY).digest('hex')}`;

beforeAll(async () => {
  root = await freshStore();
  server = await serveLoopback((req, res) => {
    requests.push(req.url ?? '');
    res.writeHead(200).end(BODY);
  });
  baseUrl = server.url;
});
afterAll(async () => {
  await server.close();
  await removeStore(root);
});

/** Build twice; the second build runs with spies on the work a step does on a miss. */
async function buildTwice(files: Record<string, string>) {
  const ctx = await makeContext(files);
  try {
    const first = await buildWithEvents({ context: ctx, root });
    requests.length = 0;
    const packs = vi.spyOn(BlobStore.prototype, 'create');
    const snapshots = vi.spyOn(LayerManager.prototype, 'withWritableSnapshot');
    try {
      const second = await buildWithEvents({ context: ctx, root });
      return { first, second, packs: packs.mock.calls.length, snapshots: snapshots.mock.calls.length };
    } finally {
      packs.mockRestore();
      snapshots.mockRestore();
    }
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

describe('a cache hit does no work', () => {
  it('ADD --checksum <url>: the key is the checksum, a hit sends no request', async () => {
    const df = `FROM busybox\nADD --checksum=${SUM} ${baseUrl}/file.txt /file.txt\n`;
    const r = await buildTwice({ Dockerfile: df });
    expect(missedSteps(r.first.events)).toHaveLength(1);
    expect(cachedSteps(r.second.events)).toHaveLength(1);
    expect(requests).toEqual([]);
    expect(r.packs).toBe(0);
    expect(r.snapshots).toBe(0);
    expect(r.second.result.digest).toBe(r.first.result.digest);
  });

  it('ADD <url> without --checksum: the download is the key, so a hit fetches it but copies nothing', async () => {
    const df = `FROM busybox\nADD ${baseUrl}/plain.txt /plain.txt\n`;
    const r = await buildTwice({ Dockerfile: df });
    expect(cachedSteps(r.second.events)).toHaveLength(1);
    expect(requests).toEqual(['/plain.txt']);
    expect(r.packs).toBe(0);
    expect(r.snapshots).toBe(0);
  });

  it('COPY, COPY --from, WORKDIR and RUN: a hit packs no layer and mounts no tree', async () => {
    const df = [
      'FROM busybox AS a',
      'RUN echo a > /a',
      'FROM busybox',
      'WORKDIR /w',
      'COPY f.txt d/ ./',
      'COPY --from=a /a /from-a',
      'COPY <<EOT /here.txt',
      'inline',
      'EOT',
    ].join('\n');
    const r = await buildTwice({ Dockerfile: `${df}\n`, 'f.txt': 'f\n', 'd/g.txt': 'g\n' });
    expect(missedSteps(r.second.events)).toEqual([]);
    expect(cachedSteps(r.second.events)).toHaveLength(5);
    expect(r.packs).toBe(0);
    expect(r.snapshots).toBe(0);
  });
});
