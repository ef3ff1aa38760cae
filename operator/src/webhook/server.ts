import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../log.js';
import type { AdmissionOutcome, OperatorObserver } from '../metrics.js';
import { WEBHOOK_PATH } from '../names.js';
import { type MutateContext, mutatePod } from './mutate.js';
import { BadReviewError, parseReview, reviewResponse } from './review.js';
import type { CertificatePair } from './x509.js';

/** An AdmissionReview of a Pod is well under this (an object is at most 1.5 MiB in etcd). */
const MAX_BODY = 4 << 20;

export interface WebhookOptions extends MutateContext {
  log: Logger;
  /** Told of every answer (the operator's metrics). */
  observer?: Pick<OperatorObserver, 'admitted'>;
  /** The serving certificate to start with; swapped with `setCertificate`. */
  certificate: CertificatePair;
}

/** What the webhook has answered, by outcome (for the logs, tests and a dashboard). */
export interface WebhookStats {
  reviews: number;
  mutated: number;
  unchanged: number;
  refused: number;
  badRequests: number;
  failures: number;
}

/**
 * The admission webhook's HTTPS server: POST /mutate-pods answers an AdmissionReview
 * (mutate.ts decides), GET /healthz. It serves untrusted bytes: bodies are bounded in size and
 * time, a malformed review is a 400 with a message, an unexpected failure a 500 that is logged,
 * and nothing a client sends can end the process. The certificate is swapped in place (new
 * connections get the new one; open ones keep theirs until they close), so a rotation drops
 * no request.
 */
export class WebhookServer {
  readonly stats: WebhookStats = {
    reviews: 0,
    mutated: 0,
    unchanged: 0,
    refused: 0,
    badRequests: 0,
    failures: 0,
  };
  readonly #o: WebhookOptions;
  readonly #server: Server;
  #certificate: CertificatePair;
  #closing = false;

  constructor(options: WebhookOptions) {
    this.#o = options;
    this.#certificate = options.certificate;
    this.#server = createServer(
      {
        cert: options.certificate.certificate,
        key: options.certificate.privateKey,
        minVersion: 'TLSv1.2',
        // A TLS handshake that stalls holds a socket: 10 s, not the default 120.
        handshakeTimeout: 10_000,
        // A client that trickles its headers or body is cut.
        headersTimeout: 10_000,
        requestTimeout: 15_000,
        keepAliveTimeout: 30_000,
      },
      (req, res) => {
        const started = performance.now();
        this.#handle(req, res, started).catch((e: unknown) => {
          this.#count('failures', started);
          this.#o.log.error('webhook request failed', { error: (e as Error).message });
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
      },
    );
    // The API server keeps a few connections per replica; more than this is somebody else.
    this.#server.maxConnections = 512;
    // A TLS handshake that fails (a scanner, a client that does not trust the CA) is not ours to log loudly.
    this.#server.on('tlsClientError', (e) =>
      this.#o.log.debug('webhook TLS handshake failed', { error: e.message }),
    );
    this.#server.on('clientError', (_e, socket) => socket.destroy());
  }

  /** The certificate being served. */
  get certificate(): CertificatePair {
    return this.#certificate;
  }

  /** Serves `pair` to every connection from now on; throws (keeping the old one) if the key does not match. */
  setCertificate(pair: CertificatePair): void {
    if (
      pair.certificate === this.#certificate.certificate &&
      pair.privateKey === this.#certificate.privateKey
    )
      return;
    const options = { cert: pair.certificate, key: pair.privateKey };
    createSecureContext(options); // throws on a mismatched or unreadable pair
    this.#server.setSecureContext(options);
    this.#certificate = pair;
  }

  async listen(port: number, host?: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return (this.#server.address() as AddressInfo).port;
  }

  /**
   * Stops accepting, lets the requests in flight finish (each answered with `connection: close`),
   * closes idle keep-alive connections at once, and any still open after `graceMs`.
   */
  async close(graceMs = 5000): Promise<void> {
    this.#closing = true;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => this.#server.closeAllConnections(), graceMs);
      this.#server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
  }

  #count(outcome: AdmissionOutcome, started: number): void {
    this.stats[outcome]++;
    this.#o.observer?.admitted(outcome, (performance.now() - started) / 1000);
  }

  async #handle(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    // A keep-alive connection would outlive close(): the API server opens a new one to whoever serves next.
    if (this.#closing) res.setHeader('connection', 'close');
    const url = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (url !== WEBHOOK_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'POST' }).end('POST an AdmissionReview\n');
      return;
    }
    const body = await readBody(req, MAX_BODY);
    if ('error' in body && body.error === 'cut') {
      res.destroy();
      return;
    }
    if ('error' in body) {
      this.#count('badRequests', started);
      // The rest of the body is not read: the connection goes with the answer.
      res
        .writeHead(413, { 'content-type': 'text/plain', connection: 'close' })
        .end('the body is over 4 MiB\n');
      return;
    }
    let request: ReturnType<typeof parseReview>;
    try {
      request = parseReview(body.text);
    } catch (e) {
      if (!(e instanceof BadReviewError)) throw e;
      this.#count('badRequests', started);
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
      return;
    }
    this.stats.reviews++;
    const isPodCreate =
      request.operation === 'CREATE' && (request.kind === undefined || request.kind.kind === 'Pod');
    const decision = isPodCreate
      ? await mutatePod(request.object, request.namespace, this.#o)
      : { allowed: true as const };
    this.#count(!decision.allowed ? 'refused' : decision.patch?.length ? 'mutated' : 'unchanged', started);
    const pod = request.object.metadata?.name ?? request.object.metadata?.generateName ?? '';
    this.#o.log.info('admission', {
      namespace: request.namespace,
      pod,
      allowed: decision.allowed,
      ...(decision.allowed ? { mutated: Boolean(decision.patch?.length) } : { reason: decision.reason }),
    });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify(reviewResponse(request.uid, decision)));
  }
}

/** The body as text; 'too large' once it passes `limit` bytes (the rest is not read); 'cut' when the client went away. */
async function readBody(
  req: IncomingMessage,
  limit: number,
): Promise<{ text: string } | { error: 'too large' | 'cut' }> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return { error: 'too large' };
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) return { error: 'too large' };
      chunks.push(chunk as Buffer);
    }
  } catch {
    return { error: 'cut' };
  }
  return { text: Buffer.concat(chunks).toString('utf8') };
}
