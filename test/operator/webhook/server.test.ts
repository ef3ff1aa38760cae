// The webhook's HTTPS server on hostile input: whatever a client sends, it answers with a status
// and goes on serving. The storage it reads is a fixed one (what a Ready TarnStorage looks like);
// the whole chain through a real API server is test/operator/webhook.test.ts.
import { connect } from 'node:tls';
import { issueCertificate, silentLogger, WebhookServer } from '@tarnjs/operator';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheSpec } from '../fixtures.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the server answers
type Any = any;

const now = Date.now();
const ca = issueCertificate({
  commonName: 'test CA',
  ca: true,
  notBefore: new Date(now - 60_000),
  notAfter: new Date(now + 3_600_000),
});
const leaf = issueCertificate({
  commonName: '127.0.0.1',
  hosts: ['127.0.0.1'],
  issuer: ca,
  notBefore: new Date(now - 60_000),
  notAfter: new Date(now + 3_600_000),
});
const readyStorage = {
  metadata: { name: 'cache', namespace: 'lab', generation: 1 },
  spec: cacheSpec,
  status: {
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'ok', lastTransitionTime: '' },
    ],
  },
};

const review = (object: Any, extra: Any = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: 'u-1', operation: 'CREATE', namespace: 'lab', kind: { kind: 'Pod' }, object, ...extra },
});

describe('the webhook server', () => {
  let server: WebhookServer;
  let url: string;
  const post = async (body: string | Buffer, headers: Record<string, string> = {}) => {
    const res = await fetch(url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...headers },
      // @ts-expect-error undici's option: trust the test CA
      dispatcher: agent,
    });
    return { status: res.status, text: await res.text() };
  };
  let agent: unknown;

  beforeAll(async () => {
    const { Agent } = await import('undici');
    agent = new Agent({ connect: { ca: ca.certificate } });
    server = new WebhookServer({
      log: silentLogger,
      image: 'localhost/tarn-sidecar:test',
      certificate: leaf,
      storage: async (_ns, name) => (name === 'cache' ? (readyStorage as Any) : undefined),
    });
    const port = await server.listen(0, '127.0.0.1');
    url = `https://127.0.0.1:${port}/mutate-pods`;
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers a labelled Pod with a JSON Patch that only adds, keeping the user’s items in place', async () => {
    const pod = {
      metadata: { labels: { 'tarn.dev/storage': 'cache' }, annotations: { mine: 'x' } },
      spec: {
        initContainers: [{ name: 'fetch', image: 'busybox' }],
        containers: [{ name: 'app', image: 'a', env: [{ name: 'TARN_SIDECAR', value: 'stale' }] }],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    };
    const { status, text } = await post(JSON.stringify(review(pod)));
    expect(status).toBe(200);
    const response = JSON.parse(text).response;
    expect(response).toMatchObject({ uid: 'u-1', allowed: true, patchType: 'JSONPatch' });
    const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString());
    expect(patch.every((op: Any) => op.op === 'add' || op.op === 'replace')).toBe(true);
    expect(patch).toContainEqual({
      op: 'add',
      path: '/metadata/annotations/tarn.dev~1config-hash',
      value: expect.any(String),
    });
    expect(patch).toContainEqual({
      op: 'add',
      path: '/spec/initContainers/-',
      value: expect.objectContaining({ name: 'tarn-sidecar' }),
    });
    expect(patch).toContainEqual({
      op: 'replace',
      path: '/spec/containers/0/env/0',
      value: { name: 'TARN_SIDECAR', value: '/run/tarn/tarn.sock' },
    });
    expect(
      patch.filter((op: Any) => op.path === '/spec/volumes/-').map((op: Any) => op.value.name),
    ).toContain('tarn-socket');
  });

  it('replaces every TARN_SIDECAR set by hand, and marks the pod injected', async () => {
    const pod = {
      metadata: { labels: { 'tarn.dev/storage': 'cache' } },
      spec: {
        containers: [
          {
            name: 'app',
            env: [{ name: 'TARN_SIDECAR', value: 'a' }, { name: 'X' }, { name: 'TARN_SIDECAR', value: 'b' }],
          },
        ],
      },
    };
    const response = JSON.parse((await post(JSON.stringify(review(pod)))).text).response;
    const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString());
    expect(patch.filter((op: Any) => op.op === 'replace').map((op: Any) => op.path)).toEqual([
      '/spec/containers/0/env/0',
      '/spec/containers/0/env/2',
    ]);
    expect(patch).toContainEqual({ op: 'add', path: '/metadata/labels/tarn.dev~1injected', value: 'cache' });
    // A pod with no annotations gets them whole.
    expect(patch).toContainEqual({
      op: 'add',
      path: '/metadata/annotations',
      value: { 'tarn.dev/config-hash': expect.any(String) },
    });
  });

  it('refuses a clash with a volume or a mount path the pod already has, rather than overwrite it', async () => {
    const mounted = {
      metadata: { labels: { 'tarn.dev/storage': 'cache' } },
      spec: { containers: [{ name: 'app', volumeMounts: [{ name: 'mine', mountPath: '/run/tarn/' }] }] },
    };
    const clash = JSON.parse((await post(JSON.stringify(review(mounted)))).text).response;
    expect(clash).toMatchObject({ allowed: false, status: { code: 422 } });
    expect(clash.status.message).toContain('container app already mounts something at /run/tarn');
    const pod = {
      metadata: { labels: { 'tarn.dev/storage': 'cache' } },
      spec: { containers: [{ name: 'app' }], volumes: [{ name: 'tarn-socket', emptyDir: {} }] },
    };
    const response = JSON.parse((await post(JSON.stringify(review(pod)))).text).response;
    expect(response.allowed).toBe(false);
    expect(response.status.message).toContain('already has a volume named tarn-socket');
  });

  it('answers what is not an AdmissionReview with a 4xx and a message, and a huge body with 413', async () => {
    expect(await post('not json')).toEqual({ status: 400, text: 'the body is not JSON\n' });
    expect((await post(JSON.stringify({ kind: 'AdmissionReview' }))).status).toBe(400);
    expect((await post(JSON.stringify(review({ spec: { containers: 'no' } })))).text).toContain(
      'containers is not a list',
    );
    expect((await post(Buffer.alloc(5 << 20, 0x20))).status).toBe(413);
    const get = await fetch(url, {
      // @ts-expect-error undici's option
      dispatcher: agent,
    });
    expect(get.status).toBe(405);
  });

  it('never fails on random reviews: every answer is a 200 with the request’s uid, or a 400', async () => {
    const before = server.stats.failures;
    const value = fc.letrec((tie) => ({
      any: fc.oneof(
        { depthSize: 'small' },
        fc.string(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('any'), { maxLength: 3 }),
        fc.dictionary(fc.constantFrom('name', 'env', 'volumeMounts', 'labels', 'x'), tie('any'), {
          maxKeys: 3,
        }),
      ),
    })).any;
    const pods = fc.record(
      {
        metadata: fc.record(
          {
            labels: fc.oneof(
              fc.dictionary(
                fc.constantFrom('tarn.dev/storage', 'tarn.dev/optional', 'a'),
                fc.constantFrom('cache', 'true', 'x', '..', 'nowhere'),
              ),
              value,
            ),
          },
          { requiredKeys: [] },
        ),
        spec: fc.oneof(
          fc.record(
            {
              containers: fc.oneof(
                fc.array(
                  fc.record(
                    {
                      name: fc.oneof(fc.constantFrom('app', 'tarn-sidecar'), value),
                      env: value,
                      volumeMounts: value,
                    },
                    { requiredKeys: [] },
                  ),
                  { maxLength: 3 },
                ),
                value,
              ),
              initContainers: fc.oneof(
                fc.array(fc.record({ name: fc.constantFrom('tarn-sidecar', 'x') }), { maxLength: 2 }),
                value,
              ),
              volumes: fc.oneof(fc.array(fc.record({ name: fc.string() }), { maxLength: 2 }), value),
            },
            { requiredKeys: [] },
          ),
          value,
        ),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(pods, async (object) => {
        const { status, text } = await post(JSON.stringify(review(object)));
        if (status === 200) expect(JSON.parse(text).response.uid).toBe('u-1');
        else expect(status).toBe(400);
      }),
      { numRuns: 150 },
    );
    expect(server.stats.failures).toBe(before);
  });

  it('a client that goes away in the middle of its body leaves it serving', async () => {
    const port = Number(new URL(url).port);
    const socket = connect({ host: '127.0.0.1', port, ca: ca.certificate, servername: undefined });
    await new Promise((r) => socket.once('secureConnect', r));
    socket.write('POST /mutate-pods HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{"apiVersion":');
    socket.end();
    await new Promise((r) => socket.once('close', r));
    const { status } = await post(JSON.stringify(review({ metadata: {}, spec: { containers: [] } })));
    expect(status).toBe(200);
  });

  it('swaps its certificate in place, refusing a pair whose key does not match', async () => {
    const other = issueCertificate({
      commonName: 'o',
      ca: true,
      notBefore: new Date(now - 1000),
      notAfter: new Date(now + 60_000),
    });
    expect(() =>
      server.setCertificate({ certificate: leaf.certificate, privateKey: other.privateKey }),
    ).toThrow();
    expect(server.certificate).toBe(leaf);
    const renewed = issueCertificate({
      commonName: '127.0.0.1',
      hosts: ['127.0.0.1'],
      issuer: ca,
      notBefore: new Date(now - 1000),
      notAfter: new Date(now + 7_200_000),
    });
    server.setCertificate(renewed);
    const port = Number(new URL(url).port);
    const served = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca: ca.certificate }, () => {
        resolve(s.getPeerX509Certificate()?.serialNumber ?? '');
        s.end();
      });
      s.on('error', reject);
    });
    const { X509Certificate } = await import('node:crypto');
    expect(served).toBe(new X509Certificate(renewed.certificate).serialNumber);
  });
});
