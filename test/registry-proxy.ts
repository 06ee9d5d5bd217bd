/**
 * A tiny fault-injecting proxy on 127.0.0.1 in front of a test registry: it forwards every
 * request, and for layer blobs (GET, over 4 kB) flips a byte, resets the connection halfway
 * (always, or only on the first try), or ends the body early; chosen paths get a canned answer.
 * For auth: `rejectAuthorized` requests that carry credentials are forwarded without them (the
 * registry's own 401 and challenge come back, as for a revoked token), and `onUnauthorized` runs
 * before any 401 is passed on.
 */
import http from 'node:http';
import type net from 'node:net';

export type Fault = 'none' | 'flip' | 'reset' | 'reset-once' | 'truncate';

export interface FaultProxy {
  host: string;
  fault: Fault;
  /** Blob GETs that carried a Range header. */
  rangeRequests: number;
  /** Every request forwarded, as `METHOD /path` (a counting proxy: what a client fetched). */
  requests: string[];
  /** Every request's Connection header, in the same order (the raw blob reader sends `close`). */
  connections: string[];
  canned: Map<string, { status: number; headers: Record<string, string>; body: Buffer }>;
  /** How many more requests with an Authorization header to strip (see above), after `passAuthorized` more went through. */
  rejectAuthorized: number;
  passAuthorized: number;
  /** 401s passed on, authorized requests stripped, and the Authorization of every request. */
  unauthorized: number;
  stripped: number;
  authorizations: string[];
  onUnauthorized?: () => Promise<void> | void;
  stop(): Promise<void>;
}

export async function startProxy(upstream: string): Promise<FaultProxy> {
  const [uhost, uport] = upstream.split(':') as [string, string];
  const cut = new Set<string>();
  const sockets = new Set<net.Socket>();
  const p: FaultProxy = {
    host: '',
    fault: 'none',
    rangeRequests: 0,
    requests: [],
    connections: [],
    canned: new Map(),
    rejectAuthorized: 0,
    passAuthorized: 0,
    unauthorized: 0,
    stripped: 0,
    authorizations: [],
    stop: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    const canned = p.canned.get(req.url ?? '');
    if (canned) {
      res.writeHead(canned.status, { ...canned.headers, 'content-length': canned.body.length });
      return res.end(canned.body);
    }
    const headers = { ...req.headers };
    if (headers.authorization) p.authorizations.push(headers.authorization);
    if (headers.authorization && p.passAuthorized > 0) p.passAuthorized--;
    else if (headers.authorization && p.rejectAuthorized > 0) {
      p.rejectAuthorized--;
      p.stripped++;
      delete headers.authorization;
    }
    p.requests.push(`${req.method} ${req.url}`);
    p.connections.push(req.headers.connection ?? '');
    const up = http.request(
      { host: uhost, port: Number(uport), path: req.url, method: req.method, headers },
      async (ur) => {
        if (ur.statusCode === 401) {
          p.unauthorized++;
          await p.onUnauthorized?.();
        }
        const size = Number(ur.headers['content-length'] ?? 0);
        const blob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') && size > 4096;
        if (blob && req.headers.range) p.rangeRequests++;
        const fault = blob ? p.fault : 'none';
        if (fault === 'none' || (fault === 'reset-once' && cut.has(req.url!))) {
          res.writeHead(ur.statusCode!, ur.headers);
          return ur.pipe(res);
        }
        const headers = { ...ur.headers };
        if (fault === 'truncate') delete headers['content-length'];
        res.writeHead(ur.statusCode!, headers);
        let sent = 0;
        let flipped = false;
        ur.on('data', (c: Buffer) => {
          if (fault === 'flip') {
            if (!flipped && c.length > 100) {
              c = Buffer.from(c);
              c[100] = c[100]! ^ 0xff;
              flipped = true;
            }
            return res.write(c);
          }
          if (sent + c.length >= size / 2) {
            res.write(c.subarray(0, Math.max(0, Math.floor(size / 2) - sent)));
            ur.destroy();
            cut.add(req.url!);
            if (fault === 'truncate') res.end();
            else res.socket?.destroy();
            return;
          }
          sent += c.length;
          res.write(c);
        });
        ur.on('end', () => res.end());
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  p.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  p.stop = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return p;
}
