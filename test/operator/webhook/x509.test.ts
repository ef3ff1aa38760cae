import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';
import { type CertificatePair, type IssueOptions, issueCertificate } from '@tarnjs/operator';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SERVICE = 'tarn-webhook.tarn-system.svc';
const HOUR = 3_600_000;
const now = Date.now();
const window = { notBefore: new Date(now - HOUR), notAfter: new Date(now + 24 * HOUR) };

const issueCa = (commonName = 'tarn webhook CA', issuer?: CertificatePair): CertificatePair =>
  issueCertificate({ commonName, ca: true, ...window, ...(issuer && { issuer }) });

const x509 = (pair: CertificatePair): X509Certificate => new X509Certificate(pair.certificate);

/** The SAN as Node prints it, one entry a string; IPv6 normalised by the URL parser (Node prints it long). */
const sanOf = (cert: X509Certificate): string[] =>
  (cert.subjectAltName ?? '').split(', ').map((entry) => {
    const ip = /^IP Address:(.*)$/.exec(entry)?.[1];
    return ip === undefined ? entry : `IP:${normalIp(ip)}`;
  });
const normalIp = (ip: string): string => (isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname : ip);
const expectedSan = (hosts: readonly string[]): string[] =>
  hosts.map((host) => (isIP(host) ? `IP:${normalIp(host)}` : `DNS:${host}`));

/** The DER of one top-level TBSCertificate field: tiny reader, so the test does not trust the issuer's own. */
function tbsField(der: Buffer, field: 'issuer' | 'subject'): Buffer {
  const element = (at: number) => {
    const first = der[at + 1] ?? 0;
    const count = first & 0x80 ? first & 0x7f : 0;
    let length = count ? 0 : first;
    for (let i = 0; i < count; i++) length = length * 256 + (der[at + 2 + i] ?? 0);
    const start = at + 2 + count;
    return { tag: der[at] ?? 0, at, start, end: start + length };
  };
  const tbs = element(element(0).start);
  const fields = [];
  for (let at = tbs.start; at < tbs.end; at = fields[fields.length - 1]?.end ?? tbs.end)
    fields.push(element(at));
  const skip = fields[0]?.tag === 0xa0 ? 1 : 0;
  const found = fields[skip + (field === 'issuer' ? 2 : 4)];
  if (!found) throw new Error('no such field');
  return der.subarray(found.at, found.end);
}

let dir: string;
const file = (name: string, content: string): string => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const openssl = (...args: string[]) => {
  const run = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: run.status === 0, output: run.stdout + run.stderr };
};
/** A self-signed EC CA made by OpenSSL, valid a day: `name.key`, `name.pem` in the test's folder. */
const opensslCa = (name: string, subject: string, curve: string, keyUsage: string): CertificatePair => {
  const [key, cert] = [join(dir, `${name}.key`), join(dir, `${name}.pem`)];
  const made = openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    `ec_paramgen_curve:${curve}`,
    '-nodes',
    '-subj',
    subject,
    '-addext',
    `keyUsage=${keyUsage}`,
    '-days',
    '1',
    '-keyout',
    key,
    '-out',
    cert,
  );
  expect(made.ok, made.output).toBe(true);
  return { certificate: openssl('x509', '-in', cert).output, privateKey: openssl('pkey', '-in', key).output };
};
const opensslVerify = (ca: CertificatePair, leaf: CertificatePair, ...extra: string[]) =>
  openssl(
    'verify',
    '-x509_strict',
    '-purpose',
    'sslserver',
    '-CAfile',
    file('ca.pem', ca.certificate),
    ...extra,
    file('leaf.pem', leaf.certificate),
  );

let ca: CertificatePair;
let leaf: CertificatePair;
const hosts = [SERVICE, `${SERVICE}.cluster.local`, '*.tarn-system.svc', '127.0.0.1', '::1', '2001:db8::42'];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'x509-'));
  ca = issueCa();
  leaf = issueCertificate({ commonName: SERVICE, hosts, ...window, issuer: ca });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('issueCertificate', () => {
  it('issues a self-signed CA', () => {
    const cert = x509(ca);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=tarn webhook CA');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkPrivateKey(createPrivateKey(ca.privateKey))).toBe(true);
    expect(ca.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/); // PKCS#8
    expect(cert.subjectAltName).toBeUndefined();
  });

  it('issues a server certificate signed by the CA', () => {
    const cert = x509(leaf);
    const authority = x509(ca);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toBe(`CN=${SERVICE}`);
    expect(cert.issuer).toBe(authority.subject);
    expect(cert.verify(authority.publicKey)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(false);
    expect(cert.checkIssued(authority)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(leaf.privateKey))).toBe(true);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extKeyUsage serverAuth
    expect(sanOf(cert)).toEqual(expectedSan(hosts));
    expect(cert.checkHost(SERVICE)).toBeDefined();
    expect(cert.checkHost('anything.tarn-system.svc')).toBeDefined();
    expect(cert.checkHost('tarn-webhook.default.svc')).toBeUndefined();
    expect(cert.checkIP('127.0.0.1')).toBeDefined();
    expect(cert.checkIP('::1')).toBeDefined();
    expect(cert.checkIP('2001:db8:0:0::42')).toBeDefined();
    expect(cert.checkIP('127.0.0.2')).toBeUndefined();
  });

  it('keeps the validity to the second', () => {
    const cert = x509(leaf);
    const second = (date: Date) => Math.floor(date.getTime() / 1000) * 1000;
    expect(new Date(cert.validFrom).getTime()).toBe(second(window.notBefore));
    expect(new Date(cert.validTo).getTime()).toBe(second(window.notAfter));
  });

  it('draws a random positive serial of 16 bytes', () => {
    const serials = [x509(ca), x509(leaf), x509(issueCa())].map((cert) => cert.serialNumber);
    expect(new Set(serials).size).toBe(3);
    for (const serial of serials) expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/);
  });

  it('copies the issuer name byte for byte', () => {
    // OpenSSL's CA has a three-RDN subject with a PrintableString C: nothing issueCertificate would write itself.
    // (-x509_strict wants a CA's keyUsage, which req leaves out by default.)
    const other = opensslCa('other', '/C=DE/O=Tarn/CN=OpenSSL CA', 'P-256', 'critical,keyCertSign,cRLSign');
    const issued = issueCertificate({ commonName: SERVICE, hosts: [SERVICE], ...window, issuer: other });
    expect(tbsField(x509(issued).raw, 'issuer')).toEqual(tbsField(x509(other).raw, 'subject'));
    expect(x509(issued).checkIssued(x509(other))).toBe(true);
    const verified = opensslVerify(other, issued);
    expect(verified.ok, verified.output).toBe(true);
    // And the AKI is the OpenSSL CA's SKI.
    const ski = /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(
      openssl('x509', '-noout', '-text', '-in', join(dir, 'other.pem')).output,
    )?.[1];
    expect(ski).toBeDefined();
    expect(openssl('x509', '-noout', '-text', '-in', file('issued.pem', issued.certificate)).output).toMatch(
      new RegExp(`Authority Key Identifier:\\s*\\n\\s*(keyid:)?${ski}`),
    );
  });

  it('refuses an OpenSSL CA it cannot sign for', () => {
    const make = (name: string, curve: string, keyUsage: string) =>
      opensslCa(name, `/CN=${name}`, curve, keyUsage);
    const options = { commonName: SERVICE, hosts: [SERVICE], ...window };
    const noCertSign = make('no-cert-sign', 'P-256', 'critical,digitalSignature');
    expect(() => issueCertificate({ ...options, issuer: noCertSign })).toThrow(TypeError);
    expect(() => issueCertificate({ ...options, issuer: noCertSign })).toThrow(/without keyCertSign/);
    const p384 = make('p384', 'P-384', 'critical,keyCertSign');
    expect(() => issueCertificate({ ...options, issuer: p384 })).toThrow(/must be ECDSA P-256/);
  });

  it('passes openssl verify against its CA, and fails against another', () => {
    const verified = opensslVerify(ca, leaf);
    expect(verified.ok, verified.output).toBe(true);
    const wrong = opensslVerify(issueCa('another CA'), leaf);
    expect(wrong.ok).toBe(false);
    expect(wrong.output).toMatch(/unable to get local issuer certificate/);
  });

  it('chains through an intermediate CA', () => {
    const intermediate = issueCa('tarn intermediate CA', ca);
    const issued = issueCertificate({
      commonName: SERVICE,
      hosts: [SERVICE],
      ...window,
      issuer: intermediate,
    });
    expect(x509(intermediate).ca).toBe(true);
    expect(x509(issued).checkIssued(x509(intermediate))).toBe(true);
    const verified = opensslVerify(
      ca,
      issued,
      '-untrusted',
      file('intermediate.pem', intermediate.certificate),
    );
    expect(verified.ok, verified.output).toBe(true);
  });

  it('writes the critical extensions openssl expects', () => {
    const text = (pair: CertificatePair) =>
      openssl('x509', '-noout', '-text', '-in', file('cert.pem', pair.certificate)).output;
    const authority = text(ca);
    expect(authority).toMatch(/Version: 3 \(0x2\)/);
    expect(authority).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(authority).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\n/);
    expect(authority).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign\n/);
    expect(authority).toMatch(/X509v3 Subject Key Identifier:/);
    expect(authority).not.toMatch(/Extended Key Usage/);
    const server = text(leaf);
    expect(server).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE\n/);
    expect(server).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(server).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
    expect(server).toMatch(/X509v3 Authority Key Identifier:/);
    expect(server).toMatch(new RegExp(`X509v3 Subject Alternative Name:\\s+DNS:${SERVICE},`));
  });

  describe('a TLS handshake on 127.0.0.1', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer({ key: leaf.privateKey, cert: leaf.certificate }, (socket) => {
        socket.on('error', () => {});
        socket.end('hello');
      });
      server.on('tlsClientError', () => {});
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      port = typeof address === 'object' && address ? address.port : 0;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const handshake = (options: { servername?: string; ca?: string }) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: ca.certificate, ...options }, () => {
          socket.end();
          resolve(socket.getPeerCertificate().subject.CN as string);
        });
        socket.on('error', reject);
      });

    it('succeeds for a DNS name of the SAN', async () => {
      await expect(handshake({ servername: SERVICE })).resolves.toBe(SERVICE);
      await expect(handshake({ servername: 'sidecar.tarn-system.svc' })).resolves.toBe(SERVICE);
    });
    it('succeeds by IP address', async () => {
      await expect(handshake({})).resolves.toBe(SERVICE);
    });
    it('fails for a name not in the SAN', async () => {
      await expect(handshake({ servername: 'tarn-webhook.default.svc' })).rejects.toMatchObject({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    });
    it('fails against another CA', async () => {
      await expect(
        handshake({ servername: SERVICE, ca: issueCa('another CA').certificate }),
      ).rejects.toThrow();
    });
  });

  it('writes GeneralizedTime outside 1950–2049 and UTCTime inside', () => {
    const late = issueCertificate({
      commonName: SERVICE,
      hosts: [SERVICE],
      notBefore: new Date('2049-12-31T23:59:59.999Z'),
      notAfter: new Date('2051-06-01T12:34:56Z'),
      issuer: ca,
    });
    const cert = x509(late);
    expect(new Date(cert.validFrom).toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(new Date(cert.validTo).toISOString()).toBe('2051-06-01T12:34:56.000Z');
    expect(cert.raw.includes(Buffer.concat([Buffer.of(0x17, 13), Buffer.from('491231235959Z')]))).toBe(true);
    expect(cert.raw.includes(Buffer.concat([Buffer.of(0x18, 15), Buffer.from('20510601123456Z')]))).toBe(
      true,
    );
    expect(cert.verify(x509(ca).publicKey)).toBe(true);
    // openssl verify at a time inside the validity, past the CA's.
    const at = String(Date.parse('2050-06-01T00:00:00Z') / 1000);
    const longCa = issueCertificate({
      commonName: 'long CA',
      ca: true,
      notBefore: new Date('1949-01-01T00:00:00Z'),
      notAfter: new Date('2100-01-01T00:00:00Z'),
    });
    expect(x509(longCa).raw.includes(Buffer.from('19490101000000Z'))).toBe(true);
    const longLeaf = issueCertificate({
      commonName: SERVICE,
      hosts: [SERVICE],
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2051-01-01T00:00:00Z'),
      issuer: longCa,
    });
    const verified = opensslVerify(longCa, longLeaf, '-attime', at);
    expect(verified.ok, verified.output).toBe(true);
  });

  it('issues a self-signed server certificate without an issuer', () => {
    const self = x509(issueCertificate({ commonName: 'localhost', hosts: ['localhost'], ...window }));
    expect(self.ca).toBe(false);
    // (checkIssued would say no: OpenSSL wants keyCertSign of an issuer, and a leaf has none.)
    expect(self.issuer).toBe(self.subject);
    expect(self.verify(self.publicKey)).toBe(true);
  });

  describe('refuses with a TypeError', () => {
    const leafOptions: IssueOptions = { commonName: SERVICE, hosts: [SERVICE], ...window };
    const refuses = (options: Partial<IssueOptions>, message: RegExp) => {
      expect(() => issueCertificate({ ...leafOptions, ...options })).toThrow(TypeError);
      expect(() => issueCertificate({ ...leafOptions, ...options })).toThrow(message);
    };

    it('an empty or over-long commonName', () => {
      refuses({ commonName: '' }, /commonName must not be empty/);
      refuses({ commonName: 'x'.repeat(65) }, /longer than 64/);
    });
    it('a server certificate without hosts', () => {
      refuses({ hosts: undefined }, /at least one host/);
      refuses({ hosts: [] }, /at least one host/);
    });
    it.each([
      '',
      'Tarn.svc',
      'tarn_webhook.svc',
      'a..b',
      '.a',
      'a.',
      '-a.svc',
      'a-.svc',
      `${'x'.repeat(64)}.svc`,
      `${'abcdefgh.'.repeat(28)}svc`,
      '*',
      '*.',
      'a.*.svc',
      '**.svc',
      'tarn webhook',
      'tärn.svc',
      '10.0.0.256',
      '10.0.0.01',
      '1.2.3',
      'fe80::1%eth0',
      '::g',
      '[::1]',
    ])('a host %j', (host) => {
      refuses({ hosts: [SERVICE, host] }, /is neither a DNS name/);
    });
    it('notAfter not after notBefore', () => {
      refuses({ notAfter: window.notBefore }, /must be after notBefore/);
      refuses({ notAfter: new Date(now - 2 * HOUR) }, /must be after notBefore/);
      // Within the same second: the certificate could not tell them apart.
      refuses(
        { notBefore: new Date('2030-01-01T00:00:00.100Z'), notAfter: new Date('2030-01-01T00:00:00.900Z') },
        /must be after notBefore/,
      );
      refuses({ notAfter: new Date(Number.NaN) }, /notAfter is not a valid Date/);
    });
    it('an issuer that is not a CA', () => {
      refuses({ issuer: leaf }, /is not a CA/);
    });
    it("an issuer key that is not its certificate's", () => {
      refuses({ issuer: { certificate: ca.certificate, privateKey: leaf.privateKey } }, /does not match/);
    });
  });

  it('puts any valid host list into the SAN, and the leaf always verifies', () => {
    const authority = x509(ca);
    const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
    const last = fc.stringMatching(/^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?$/);
    const dnsName = fc
      .tuple(fc.boolean(), fc.array(label, { maxLength: 3 }), last)
      .map(([wildcard, labels, tld]) => `${wildcard ? '*.' : ''}${[...labels, tld].join('.')}`);
    const host = fc.oneof(dnsName, fc.ipV4(), fc.ipV6());
    fc.assert(
      fc.property(fc.array(host, { minLength: 1, maxLength: 8 }), (hosts) => {
        const cert = x509(issueCertificate({ commonName: 'property', hosts, ...window, issuer: ca }));
        expect(sanOf(cert)).toEqual(expectedSan(hosts));
        expect(cert.verify(authority.publicKey)).toBe(true);
        expect(cert.checkIssued(authority)).toBe(true);
        for (const name of hosts) {
          if (isIP(name)) expect(cert.checkIP(name), name).toBeDefined();
          else if (!name.startsWith('*.')) expect(cert.checkHost(name), name).toBeDefined();
        }
      }),
    );
  });
});
