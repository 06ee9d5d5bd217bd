/**
 * Blob uploads (OCI distribution spec "push"): HEAD to find a blob the repository has, a
 * cross-repository mount (`POST …/uploads/?mount=D&from=R`), a monolithic upload (POST, then one
 * PUT `?digest=` with the bytes) for a blob whose digest is known, and a chunked one (PATCHes with
 * Content-Range, then PUT `?digest=`) for a stream compressed on the way, whose digest is only
 * known at the end. A chunk that fails is sent again from the offset the registry reports.
 */
import { Writable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import { discard, withRetry, type HttpResponse } from './http.ts';
import { registryError, type RegistryClient } from './client.ts';

export const DEFAULT_CHUNK = 16 << 20;

/** True when `repo` has the blob. */
export async function hasBlob(client: RegistryClient, repo: string, digest: string, scope: string[]): Promise<boolean> {
  return withRetry(
    async () => {
      const res = await client.fetch({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}`, scope });
      discard(res);
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      throw await registryError(res, `HEAD blob ${digest}`);
    },
    { retries: client.opts.retries, signal: client.opts.signal },
  );
}

export interface Upload {
  /** Where the next request of this upload goes (absolute URL). */
  location: string;
  minChunk: number;
}

function uploadOf(res: HttpResponse, what: string): Upload {
  const loc = res.headers.location;
  if (!loc) throw new VlabError('E_REGISTRY', `${what}: the registry gave no upload location`);
  const min = Number(res.headers['oci-chunk-min-length'] ?? 0);
  return { location: new URL(loc, res.url).href, minChunk: Number.isFinite(min) ? min : 0 };
}

/**
 * Mount `digest` from `from` (same registry) into `repo`, or start an upload: 'mounted' when the
 * registry took it, else the upload it opened instead.
 */
export async function startUpload(
  client: RegistryClient,
  repo: string,
  scope: string[],
  mount?: { digest: string; from: string },
): Promise<'mounted' | Upload> {
  const q = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : '';
  return withRetry(
    async () => {
      const res = await client.fetch({
        method: 'POST',
        url: `/v2/${repo}/blobs/uploads/${q}`,
        scope,
        body: Buffer.alloc(0),
      });
      discard(res);
      if (res.status === 201 && mount) return 'mounted' as const;
      if (res.status === 202) return uploadOf(res, `upload to ${repo}`);
      throw await registryError(res, `start upload to ${repo}`);
    },
    { retries: client.opts.retries, signal: client.opts.signal },
  );
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u.href;
}

/** Finish an upload with a PUT `?digest=` (carrying `body`: the whole blob when monolithic). */
export async function finishUpload(
  client: RegistryClient,
  up: Upload,
  digest: string,
  scope: string[],
  body: Buffer = Buffer.alloc(0),
): Promise<void> {
  const res = await client.fetch({
    method: 'PUT',
    url: withDigest(up.location, digest),
    headers: { 'content-type': 'application/octet-stream' },
    body,
    scope,
  });
  discard(res);
  if (res.status !== 201) throw await registryError(res, `finish upload of ${digest}`);
}

/** Monolithic upload of bytes whose digest is known (configs, small blobs). */
export async function uploadBytes(
  client: RegistryClient,
  repo: string,
  digest: string,
  bytes: Buffer,
  scope: string[],
): Promise<void> {
  await withRetry(
    async () => {
      const up = await startUpload(client, repo, scope);
      await finishUpload(client, up as Upload, digest, scope, bytes);
    },
    { retries: client.opts.retries, signal: client.opts.signal },
  );
}

/** The end of what the registry holds of an upload (its Range header `0-N`), in bytes. */
async function uploadedSoFar(client: RegistryClient, up: Upload, scope: string[]): Promise<number> {
  const res = await client.fetch({ method: 'GET', url: up.location, scope });
  discard(res);
  if (res.status !== 204) throw await registryError(res, 'upload status');
  if (res.headers.location) up.location = new URL(res.headers.location, res.url).href;
  const m = /^0-(\d+)$/.exec(String(res.headers.range ?? ''));
  return m ? Number(m[1]) + 1 : 0;
}

/**
 * A Writable that sends what it is given as chunks of `chunkSize` bytes (PATCH with Content-Range).
 * One chunk is on the wire while the next fills, so compressing and sending overlap.
 * `sent` counts the bytes the registry acknowledged.
 */
export class ChunkedUpload extends Writable {
  sent = 0;
  private parts: Buffer[] = [];
  private pending = 0;
  /** Bytes handed to PATCHes so far (acknowledged or in flight). */
  private queued = 0;
  private inflight: Promise<void> = Promise.resolve();
  private readonly chunkSize: number;

  constructor(
    private readonly client: RegistryClient,
    readonly upload: Upload,
    private readonly scope: string[],
    chunkSize: number,
    private readonly onSent: (n: number) => void,
  ) {
    super();
    this.chunkSize = Math.max(chunkSize, upload.minChunk, 1);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.parts.push(chunk);
    this.pending += chunk.length;
    if (this.pending < this.chunkSize) return cb();
    this.queue().then(() => cb(), cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.queue()
      .then(() => this.inflight)
      .then(() => cb(), cb);
  }

  /** Wait for the chunk on the wire, then put the buffered bytes on it. */
  private async queue(): Promise<void> {
    await this.inflight;
    if (!this.pending) return;
    const chunk = Buffer.concat(this.parts);
    this.parts = [];
    this.pending = 0;
    const start = this.queued;
    this.queued += chunk.length;
    const sending = this.send(chunk, start);
    sending.catch(() => undefined); // awaited by the next queue() or _final
    this.inflight = sending;
  }

  private async send(chunk: Buffer, start: number): Promise<void> {
    await withRetry(
      async (attempt) => {
        // after a failure, the registry may hold part of this chunk already
        const have = attempt ? await uploadedSoFar(this.client, this.upload, this.scope) : start;
        if (have < start || have > start + chunk.length)
          throw new VlabError(
            'E_REGISTRY',
            `upload: the registry holds ${have} bytes, expected ${start}…${start + chunk.length}`,
          );
        const part = chunk.subarray(have - start);
        if (!part.length) return;
        const res = await this.client.fetch({
          method: 'PATCH',
          url: this.upload.location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${have}-${have + part.length - 1}`,
          },
          body: part,
          scope: this.scope,
        });
        discard(res);
        if (res.status !== 202) throw await registryError(res, 'upload chunk');
        if (res.headers.location) this.upload.location = new URL(res.headers.location, res.url).href;
      },
      { retries: this.client.opts.retries, signal: this.client.opts.signal },
    );
    this.sent = start + chunk.length;
    this.onSent(this.sent);
  }
}
