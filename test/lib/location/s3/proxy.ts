// A real HTTP proxy on loopback in front of the bed's MinIO: it records every request the location
// sends (so a test can say "one PUT, no HEAD") and can play a server without conditional writes
// (501 NotImplemented to a request that carries If-None-Match, as AWS S3 answered before 2024) or
// a slow one (PUTs held before they are forwarded, so that an abort arrives mid-request). No mock:
// every other request reaches MinIO as sent, its signature intact (the Host header is kept).
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  /** The path without the bucket's leading slash, e.g. `lake/2cf2/4dba…`. */
  path: string;
  query: string;
  /** The If-None-Match header, when sent. */
  ifNoneMatch?: string;
  /** What the client got: the server's status, or the proxy's own (501), or 0 when dropped. */
  status: number;
}

export interface S3Proxy {
  readonly endpoint: string;
  /** Every request answered (or dropped) so far, in order of arrival. */
  readonly seen: Seen[];
  /** `refuse`: answer 501 NotImplemented to any request with If-None-Match instead of forwarding it. */
  mode: 'pass' | 'refuse';
  /** Hold each PUT this long before forwarding it; a request whose client went away is dropped. */
  holdPutsMs: number;
  /**
   * Answer this many of the next conditional requests 409 ConditionalRequestConflict (AWS S3's
   * answer while another conditional write of the key is in flight), then forward again.
   */
  conflicts: number;
  stop(): Promise<void>;
}

const NOT_IMPLEMENTED = (resource: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message><Resource>${resource}</Resource><RequestId>bed-proxy</RequestId></Error>`;

const CONFLICT = (resource: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting operation occurred. If using PutObject you can retry the request.</Message><Resource>${resource}</Resource><RequestId>bed-proxy</RequestId></Error>`;

async function body(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export async function startS3Proxy(target: string): Promise<S3Proxy> {
  const upstream = new URL(target);
  const proxy: S3Proxy = {
    endpoint: '',
    seen: [],
    mode: 'pass',
    holdPutsMs: 0,
    conflicts: 0,
    stop: async () => undefined,
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const ifNoneMatch = req.headers['if-none-match'] as string | undefined;
    const entry: Seen = {
      method: req.method ?? '',
      path: decodeURIComponent(url.pathname.slice(1)),
      query: url.search.slice(1),
      ...(ifNoneMatch === undefined ? {} : { ifNoneMatch }),
      status: 0,
    };
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const data = await body(req).catch(() => undefined);
    if (data === undefined) {
      proxy.seen.push(entry);
      return;
    }
    if (proxy.mode === 'refuse' && ifNoneMatch !== undefined) {
      entry.status = 501;
      proxy.seen.push(entry);
      res.writeHead(501, { 'content-type': 'application/xml' }).end(NOT_IMPLEMENTED(url.pathname));
      return;
    }
    if (proxy.conflicts > 0 && ifNoneMatch !== undefined) {
      proxy.conflicts--;
      entry.status = 409;
      proxy.seen.push(entry);
      res.writeHead(409, { 'content-type': 'application/xml' }).end(CONFLICT(url.pathname));
      return;
    }
    if (req.method === 'PUT' && proxy.holdPutsMs > 0) {
      await new Promise((r) => setTimeout(r, proxy.holdPutsMs));
      if (gone || req.socket.destroyed) {
        proxy.seen.push(entry);
        return;
      }
    }
    const forwarded = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        entry.status = answer.statusCode ?? 0;
        proxy.seen.push(entry);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => {
      proxy.seen.push(entry);
      res.destroy();
    });
    forwarded.end(data);
  };
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** The requests that named an object (not the bucket), as `METHOD status [If-None-Match]`. */
export function objectRequests(seen: readonly Seen[], bucket: string): string[] {
  return seen
    .filter((s) => s.path.startsWith(`${bucket}/`) && s.path.length > bucket.length + 1)
    .map((s) => `${s.method} ${s.status}${s.ifNoneMatch ? ` if-none-match:${s.ifNoneMatch}` : ''}`);
}
