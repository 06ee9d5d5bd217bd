import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CopyInstruction } from '@vlab/dockerfile';
import type { BuildSession } from '../context.ts';
import { fetchOnce } from './key.ts';

let server: http.Server;
let url = '';
let tmp = '';
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-fetchonce-'));
  server = http.createServer((_req, res) => res.end('hello\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/f.txt`;
});
afterAll(async () => {
  server.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** The parts of a build's session that fetchOnce reads (the download itself is real, over loopback). */
const session = (downloads: BuildSession['downloads'], signal: AbortSignal) =>
  ({ downloads, signal, store: { path: () => tmp } }) as unknown as BuildSession;
const inst = { kind: 'ADD', sources: [url] } as unknown as CopyInstruction;

describe('fetchOnce', () => {
  it('a download that failed (here: aborted) is not kept for the build: the next use downloads again', async () => {
    const downloads: BuildSession['downloads'] = new Map();
    const stopped = new AbortController();
    stopped.abort();
    await expect(fetchOnce(session(downloads, stopped.signal), url, inst)).rejects.toMatchObject({
      code: 'E_ABORTED',
    });
    // e.g. a build's retry after E_CACHE_LAYER, whose first try a failing sibling stage aborted
    expect(downloads.has(url)).toBe(false);
    const d = await fetchOnce(session(downloads, new AbortController().signal), url, inst);
    expect(d.digest).toBe(`sha256:${createHash('sha256').update('hello\n').digest('hex')}`);
    expect(downloads.has(url)).toBe(true);
    await fs.rm(d.dir, { recursive: true, force: true });
  });
});
