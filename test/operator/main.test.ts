import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { issueCertificate, operatorMain, parseDuration } from '@tarnjs/operator';
import { describe, expect, it } from 'vitest';
import { kubeconfigYaml } from '../bed/kube.js';
import { tempDir } from '../helpers/tmp.js';

/** Runs the operator's process with `args` and no cluster: what a wrong command line gets. */
async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => {
    stdout += d;
  });
  err.on('data', (d) => {
    stderr += d;
  });
  const code = await operatorMain(args, {
    env: { TARN_SIDECAR_IMAGE: 'localhost/tarn-sidecar:test', ...env },
    stdout: out,
    stderr: err,
    signal: AbortSignal.abort(),
  });
  return { code, stdout, stderr };
}

describe('the operator’s command line', () => {
  it('reads durations as a number and a unit, and nothing else', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('720h')).toBe(2_592_000_000);
    expect(parseDuration('365d')).toBe(31_536_000_000);
    expect(parseDuration('150ms')).toBe(150);
    for (const bad of ['', '0s', '-1s', '1.5h', '10', 'd', '1w', '1 s', '9999999999d'])
      expect(parseDuration(bad)).toBeUndefined();
  });

  it('refuses webhook flags that cannot work, with exit 2 and a line that says why', async () => {
    // A webhook that could start, but for the flag each case adds.
    const base = ['--webhook-port', '9443', '--webhook-host', 'h', '--webhook-namespace', 'n'];
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['--webhook-service', 'x'], {}, /--webhook-service needs --webhook-port/],
      [['--webhook-port', '99999'], {}, /--webhook-port is a TCP port/],
      [['--webhook-port', '9443', '--webhook-service', 'w'], {}, /needs its namespace/],
      [['--webhook-port', '9443'], { POD_NAMESPACE: 'tarn-system' }, /needs a name/],
      [[...base, '--webhook-overlap', 'soon'], {}, /--webhook-overlap soon: a duration/],
      [
        [...base, '--webhook-ca-validity', '1d', '--webhook-cert-validity', '2d'],
        {},
        /longer than --webhook-ca-validity/,
      ],
      [[...base, '--webhook-sync-interval', '2h'], {}, /at most 1h/],
      [[...base, '--webhook-overlap', '15s'], {}, /at least twice/],
      [[...base, '--webhook-timeout', '31s'], {}, /at most 30s/],
    ];
    for (const [args, env, why] of cases) {
      const r = await run(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it('stops with exit 1 when the webhook cannot start (its port taken), rather than run never Ready', async () => {
    const dir = tempDir('tarn-operator-main-');
    const now = Date.now();
    const pair = issueCertificate({
      commonName: 'w',
      hosts: ['127.0.0.1'],
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3_600_000),
    });
    writeFileSync(join(dir, 'tls.crt'), pair.certificate);
    writeFileSync(join(dir, 'tls.key'), pair.privateKey);
    // An API server nobody answers at (loopback): the controller's watches only retry.
    writeFileSync(
      join(dir, 'kubeconfig'),
      kubeconfigYaml({
        server: 'https://127.0.0.1:9',
        token: 't',
        caData: Buffer.from(pair.certificate).toString('base64'),
      }),
    );
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const out = new PassThrough();
      let logged = '';
      out.on('data', (d) => {
        logged += d;
      });
      const code = await operatorMain(
        [
          '--kubeconfig',
          join(dir, 'kubeconfig'),
          '--health-port',
          '0',
          '--webhook-port',
          String(port),
          '--webhook-address',
          '127.0.0.1',
          '--webhook-cert-dir',
          dir,
        ],
        {
          env: { TARN_SIDECAR_IMAGE: 'i' },
          stdout: out,
          stderr: new PassThrough(),
          signal: new AbortController().signal,
        },
      );
      expect(code).toBe(1);
      expect(logged).toMatch(/"msg":"the webhook could not start; stopping".*EADDRINUSE/);
    } finally {
      taken.close();
    }
  });

  it('documents every webhook flag in its usage', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const flag of ['--webhook-port', '--webhook-cert-dir', '--webhook-overlap', '--webhook-config'])
      expect(stdout).toContain(flag);
  });
});
