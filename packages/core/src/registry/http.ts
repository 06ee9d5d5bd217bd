/**
 * HTTP to one registry host over node:http/https: keep-alive agents with the host's TLS settings,
 * https first and plain http only where tls.ts allows it, an idle timeout on every socket, and
 * the transport errors sorted into what the caller may retry (reset, timeout) and what it must
 * not (refused: the registry is down; a certificate refused).
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { VlabError } from '@vlab/errors';
import type { RawTarget } from './raw-get.ts';
import { isCertError, isNotTls, type HostTls } from './tls.ts';

export interface HttpRequest {
  method: string;
  /** Path and query (`/v2/…`) on this host, or an absolute URL (a redirect, a token realm). */
  url: string;
  headers?: Record<string, string>;
  body?: Buffer;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  url: URL;
}

/** Transport failures worth another try: the connection broke, not the request. */
const RETRYABLE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
const DOWN = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export function isRetryable(e: unknown): boolean {
  if (e instanceof VlabError) return e.details?.retryable === true;
  const err = e as NodeJS.ErrnoException;
  return RETRYABLE.has(err?.code ?? '') || /socket hang up|aborted/i.test(err?.message ?? '');
}

export class HostConnection {
  private scheme: 'https' | 'http' | undefined;
  private probing: Promise<HttpResponse> | undefined;
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  constructor(
    readonly domain: string,
    private readonly tls: HostTls,
    private readonly timeoutMs = 30_000,
  ) {
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 16,
      rejectUnauthorized: tls.verify,
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
    });
  }

  /** The base URL (`https://host`) once known; the first request finds it. */
  private base(scheme: 'https' | 'http'): string {
    return `${scheme}://${this.domain}`;
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    if (/^https?:\/\//.test(req.url)) return this.send(new URL(req.url), req);
    // requests sent at once wait for the first to find the scheme (not 16 TLS attempts at a plain port)
    if (!this.scheme && this.probing) await this.probing.catch(() => undefined);
    if (this.scheme) return this.send(new URL(this.base(this.scheme) + req.url), req);
    const probe = this.probe(req);
    this.probing ??= probe;
    try {
      return await probe;
    } finally {
      if (this.probing === probe) this.probing = undefined;
    }
  }

  private async probe(req: HttpRequest): Promise<HttpResponse> {
    try {
      const res = await this.send(new URL(this.base('https') + req.url), req);
      this.scheme = 'https';
      return res;
    } catch (e) {
      if (!(this.tls.allowHttp && isNotTls((e as VlabError).cause ?? e))) throw e;
      const res = await this.send(new URL(this.base('http') + req.url), req);
      this.scheme = 'http';
      return res;
    }
  }

  /** Where a raw GET of `path` (raw-get.ts) goes, once the first request found the scheme. */
  target(path: string): Omit<RawTarget, 'headers' | 'signal'> | undefined {
    if (!this.scheme) return undefined;
    const url = new URL(this.base(this.scheme) + path);
    return { url, tls: this.tls, timeoutMs: this.timeoutMs, error: (e) => this.transportError(e, url) };
  }

  private send(url: URL, req: HttpRequest): Promise<HttpResponse> {
    const secure = url.protocol === 'https:';
    const sameHost = url.host === this.domain || url.host === new URL(`http://${this.domain}`).host;
    const agent = secure ? (sameHost ? this.httpsAgent : https.globalAgent) : sameHost ? this.httpAgent : undefined;
    const mod = secure ? https : http;
    return new Promise((resolve, reject) => {
      const r = mod.request(
        url,
        {
          method: req.method,
          headers: {
            'user-agent': 'vbuild',
            ...req.headers,
            ...(req.body ? { 'content-length': req.body.length } : {}),
          },
          agent,
          signal: req.signal,
        },
        (res) => {
          // idle timeout while the body streams, too; the listener goes with the response (the
          // socket is reused by the next request)
          const sock = res.socket;
          const idle = () => res.destroy(Object.assign(new Error('registry stopped sending'), { code: 'ETIMEDOUT' }));
          sock.setTimeout(this.timeoutMs);
          sock.on('timeout', idle);
          res.once('close', () => sock.off('timeout', idle));
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
        },
      );
      r.setTimeout(this.timeoutMs, () =>
        r.destroy(
          Object.assign(new Error(`no answer from ${url.host} in ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }),
        ),
      );
      r.on('error', (e) => reject(this.transportError(e, url)));
      r.end(req.body);
    });
  }

  /** A transport error as a VlabError: E_REGISTRY_UNREACHABLE, E_REGISTRY_TLS or a retryable E_REGISTRY. */
  transportError(e: unknown, url: URL): VlabError {
    if (e instanceof VlabError) return e;
    const err = e as NodeJS.ErrnoException;
    if (err?.name === 'AbortError') return new VlabError('E_ABORTED', 'aborted', { cause: e });
    if (DOWN.has(err?.code ?? ''))
      return new VlabError(
        'E_REGISTRY_UNREACHABLE',
        `cannot reach registry ${url.host} (${err.code}): is it running, and is the address right?`,
        { cause: e },
      );
    if (isCertError(e))
      return new VlabError(
        'E_REGISTRY_TLS',
        `TLS certificate of ${url.host} refused (${err.code}): trust its CA with --tls-ca or ${'<certs.d>'}/${this.domain}/ca.crt, or use --tls-verify=false`,
        { cause: e },
      );
    if (isNotTls(e) && url.protocol === 'https:')
      return new VlabError(
        'E_REGISTRY_TLS',
        `${url.host} does not speak TLS: plain http is only used for localhost/127.0.0.1 or with --tls-verify=false`,
        { cause: e },
      );
    return new VlabError('E_REGISTRY', `connection to ${url.host} failed: ${err?.message ?? String(e)}`, {
      cause: e,
      details: { retryable: isRetryable(e) },
    });
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }
}

/** Read a response body of at most `max` bytes (an error document, a manifest, a token). */
export async function readBody(res: HttpResponse, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length'] ?? -1);
  if (declared > max) {
    res.body.destroy();
    throw new VlabError('E_BAD_MANIFEST', `${what}: ${declared} bytes, over the ${max >> 20} MiB limit`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.body.destroy();
      throw new VlabError('E_BAD_MANIFEST', `${what}: over the ${max >> 20} MiB limit`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Drain and drop a body we do not need, so the socket goes back to the pool. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}

export interface RetryOptions {
  retries?: number;
  baseDelayMs?: number;
  signal?: AbortSignal;
  onRetry?: (e: unknown, attempt: number) => void;
}

/** Run `fn` again on retryable failures, with exponential backoff (base, 2×, 4× … plus jitter). */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const retries = o.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= retries || !isRetryable(e) || o.signal?.aborted) throw e;
      o.onRetry?.(e, attempt + 1);
      const delay = (o.baseDelayMs ?? 200) * 2 ** attempt;
      await sleep(delay + Math.random() * delay * 0.25, undefined, { signal: o.signal });
    }
  }
}
