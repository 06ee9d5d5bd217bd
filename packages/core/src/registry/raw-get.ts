/**
 * One blob GET whose body is read straight into the caller's buffers (`onread` of net/tls: no
 * Buffer per socket read). node:http hands every 64 KiB read over as a new Buffer: a 284 MB layer
 * made ~4,300 of them and 12–15 full garbage collections (external memory), ~0.4 CPU-s of a 0.58 s
 * receive+hash, where reading into reused memory took 0.19 s with the hash (bench/README.md "Pull
 * speed, session 22"). Only the plain answer is read here: 200 (206 from an offset) with a
 * Content-Length and no Transfer-Encoding; anything else (a redirect, 401, an error, chunked) is
 * left to the usual client (`handled: false`), which asks again.
 */
import net from 'node:net';
import tls from 'node:tls';
import { VlabError } from '@vlab/errors';
import type { HostTls } from './tls.ts';

export interface RawTarget {
  url: URL;
  headers: Record<string, string>;
  tls: HostTls;
  timeoutMs: number;
  signal?: AbortSignal;
  /** A socket error as the client reports it (http.ts: transportError). */
  error: (e: unknown) => VlabError;
}

/** Where a body goes: `space()` is written into by the socket, `took(n)` says how much; false: no room now, `room()` resolves when there is. */
export interface BodySink {
  space(): Buffer;
  took(n: number): boolean;
  room(): Promise<void>;
}

const MAX_HEAD = 64 << 10;
const HEAD_END = Buffer.from('\r\n\r\n');

function request(t: RawTarget, offset: number): string {
  const h: Record<string, string> = {
    host: t.url.host,
    'user-agent': 'vbuild',
    ...t.headers,
    ...(offset ? { range: `bytes=${offset}-` } : {}),
    connection: 'close',
  };
  return `GET ${t.url.pathname}${t.url.search} HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

/** Status and lower-cased headers of a response head, or undefined if it is not HTTP/1.x. */
function parseHead(head: string): { status: number; headers: Map<string, string> } | undefined {
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return { status: Number(m[1]), headers };
}

/**
 * GET `t.url` from byte `offset` of a `total`-byte blob into `sink`. Resolves `handled: true`
 * once all bytes are in (`advance` was told each count), `handled: false` when the answer is not
 * one read here (nothing given to the sink). A broken or early-closed connection rejects with a
 * retryable error after the bytes that did arrive were given; the caller resumes from there.
 */
export function rawGet(
  t: RawTarget,
  offset: number,
  total: number,
  sink: BodySink,
  advance: (n: number) => void,
): Promise<{ handled: boolean }> {
  const want = total - offset;
  const secure = t.url.protocol === 'https:';
  const host = t.url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(t.url.port || (secure ? 443 : 80));
  return new Promise((resolve, reject) => {
    let head: Buffer | undefined = Buffer.allocUnsafe(MAX_HEAD);
    let headLen = 0;
    let got = 0;
    let settled = false;
    const finish = (e: unknown, handled = false) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (e) reject(e);
      else resolve({ handled });
    };
    const body = (n: number): boolean => {
      got += n;
      if (got > want)
        return (
          finish(new VlabError('E_DIGEST_MISMATCH', `${t.url.pathname}: the registry sent more than ${total} bytes`)),
          false
        );
      advance(n);
      const room = sink.took(n);
      if (got === want) finish(undefined, true);
      return room;
    };
    const pause = () => {
      sink.room().then(
        () => !settled && sock.resume(),
        (e: unknown) => finish(e),
      );
      return false;
    };
    const onHead = (n: number): boolean => {
      headLen += n;
      const end = head!.subarray(0, headLen).indexOf(HEAD_END);
      if (end < 0) {
        if (headLen === MAX_HEAD) finish(undefined, false);
        return true;
      }
      const p = parseHead(head!.toString('latin1', 0, end));
      const len = Number(p?.headers.get('content-length') ?? -1);
      const range = p?.headers.get('content-range');
      const plain =
        p &&
        p.status === (offset ? 206 : 200) &&
        !p.headers.has('transfer-encoding') &&
        len === want &&
        (!offset || range?.startsWith(`bytes ${offset}-`));
      if (!plain) return (finish(undefined, false), false);
      const rest = head!.subarray(end + 4, headLen);
      head = undefined;
      let room = true;
      for (let off = 0; off < rest.length && !settled;) {
        const k = rest.copy(sink.space(), 0, off);
        off += k;
        room = body(k);
      }
      return room || settled || pause();
    };
    const onread = {
      buffer: () => (head ? head.subarray(headLen) : sink.space()),
      callback: (n: number) => {
        if (settled) return false;
        try {
          return head ? onHead(n) : body(n) || settled || pause();
        } catch (e) {
          return (finish(e), false);
        }
      },
    };
    const opts = { host, port, onread };
    const sock = secure
      ? tls.connect({
          ...opts,
          servername: net.isIP(host) ? undefined : host,
          rejectUnauthorized: t.tls.verify,
          ...(t.tls.ca ? { ca: t.tls.ca } : {}),
          ...(t.tls.cert && t.tls.key ? { cert: t.tls.cert, key: t.tls.key } : {}),
        })
      : net.connect(opts);
    sock.setTimeout(t.timeoutMs, () =>
      finish(t.error(Object.assign(new Error('registry stopped sending'), { code: 'ETIMEDOUT' }))),
    );
    sock.once(secure ? 'secureConnect' : 'connect', () => sock.write(request(t, offset)));
    sock.on('error', (e) => finish(t.error(e)));
    const aborted = () => finish(new VlabError('E_ABORTED', 'aborted'));
    if (t.signal?.aborted) aborted();
    t.signal?.addEventListener('abort', aborted, { once: true });
    sock.once('close', () => t.signal?.removeEventListener('abort', aborted));
    sock.once('close', () =>
      finish(
        new VlabError('E_REGISTRY', `${t.url.host} closed the connection at byte ${offset + got} of ${total}`, {
          details: { retryable: true },
        }),
      ),
    );
  });
}
