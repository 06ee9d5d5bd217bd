/**
 * A tiny fault-injecting proxy on 127.0.0.1 in front of a test registry: it forwards every
 * request, and for layer blobs (GET, over 4 kB) flips a byte, resets the connection halfway
 * (always, or only on the first try), or ends the body early; chosen paths get a canned answer.
 */
import http from 'node:http';
import type net from 'node:net';

export type Fault = 'none' | 'flip' | 'reset' | 'reset-once' | 'truncate';

export interface FaultProxy {
  host: string;
  fault: Fault;
  /** Blob GETs that carried a Range header. */
  rangeRequests: number;
  canned: Map<string, { status: number; headers: Record<string, string>; body: Buffer }>;
  stop(): Promise<void>;
}

export async function startProxy(upstream: string): Promise<FaultProxy> {
  const [uhost, uport] = upstream.split(':') as [string, string];
  const cut = new Set<string>();
  const sockets = new Set<net.Socket>();
  const p: FaultProxy = { host: '', fault: 'none', rangeRequests: 0, canned: new Map(), stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const canned = p.canned.get(req.url ?? '');
    if (canned) {
      res.writeHead(canned.status, { ...canned.headers, 'content-length': canned.body.length });
      return res.end(canned.body);
    }
    const up = http.request(
      { host: uhost, port: Number(uport), path: req.url, method: req.method, headers: req.headers },
      (ur) => {
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
