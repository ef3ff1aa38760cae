/**
 * A small X.509 issuer for the admission webhook: its own CA and the serving certificate the
 * kube-apiserver checks against the webhook's caBundle. Everything is built here from node:crypto
 * (keys, SHA, ECDSA) and a minimal DER encoder, so the operator needs neither openssl at runtime nor
 * an npm dependency for it.
 *
 * The certificates follow RFC 5280 closely, because the verifier that matters is Go's crypto/x509
 * (kube-apiserver), which rejects anything that is not strict DER: negative or non-minimal
 * INTEGERs, explicit DEFAULT values, non-zero padding bits, mismatched signature algorithms.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';

/** A certificate and its private key, both PEM (the key PKCS#8). */
export interface CertificatePair {
  certificate: string;
  privateKey: string;
}

export interface IssueOptions {
  commonName: string;
  /** DNS names and IP addresses (v4 or v6) for subjectAltName; a server certificate needs at least one. */
  hosts?: readonly string[];
  notBefore: Date;
  notAfter: Date;
  /** A CA: basicConstraints CA:TRUE (critical), keyUsage keyCertSign+cRLSign+digitalSignature (critical). Otherwise a TLS server leaf: basicConstraints CA:FALSE, keyUsage digitalSignature (critical), extKeyUsage serverAuth, SAN. */
  ca?: boolean;
  /** Signs the certificate; absent: self-signed. */
  issuer?: CertificatePair;
}

// ---------------------------------------------------------------------------------------------
// DER encoding (ITU-T X.690), just the types a certificate needs.
// ---------------------------------------------------------------------------------------------

const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Tag, length, value. DER wants the shortest length: one byte below 128, else 0x80|n and n bytes. */
function tlv(tag: number, content: Uint8Array): Buffer {
  const length = content.length;
  if (length < 0x80) return Buffer.concat([Buffer.of(tag, length), content]);
  const lengthBytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthBytes.unshift(rest % 256);
  return Buffer.concat([Buffer.of(tag, 0x80 | lengthBytes.length, ...lengthBytes), content]);
}

const sequence = (...items: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));

/** DER sorts the elements of a SET OF by their encodings (ours hold one, but stay correct). */
const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));

/**
 * An INTEGER from big-endian unsigned bytes. DER forbids redundant leading zero bytes, and the
 * value is two's complement, so a set top bit needs a 0x00 in front to stay positive.
 */
function unsignedInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const body = bytes.length === 0 ? Buffer.of(0) : Buffer.from(bytes.subarray(start));
  return tlv(TAG.INTEGER, (body[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.of(0), body]) : body);
}

/** An OBJECT IDENTIFIER: the first two arcs share a byte (40·a + b), every arc is base 128, high bit = more. */
function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const digits = [arc % 128];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) digits.unshift(0x80 | (v % 128));
    bytes.push(...digits);
  }
  return tlv(TAG.OID, Buffer.from(bytes));
}

/** A BIT STRING: the first content byte counts the unused (zero) bits of the last byte. */
const bitString = (bytes: Uint8Array, unusedBits = 0): Buffer =>
  tlv(TAG.BIT_STRING, Buffer.concat([Buffer.of(unusedBits), bytes]));

/**
 * A named-bit BIT STRING (keyUsage): bit 0 is the top bit of the first byte. DER drops trailing
 * zero bits, so the string ends at the highest bit set and the rest of that byte counts as unused.
 */
function namedBits(bits: readonly number[]): Buffer {
  const last = Math.max(...bits);
  const bytes = new Array<number>((last >> 3) + 1).fill(0);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  return bitString(Buffer.from(bytes), 7 - (last & 7));
}

const octetString = (bytes: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, bytes);
const utf8String = (text: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
/** DER's TRUE is 0xff, exactly (BER would take any non-zero byte, Go does not). */
const booleanTrue = (): Buffer => tlv(TAG.BOOLEAN, Buffer.of(0xff));
/** [n] EXPLICIT: a constructed context tag wrapping the whole inner encoding. */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** [n] IMPLICIT on a primitive type: the context tag replaces the universal one. */
const implicit = (n: number, content: Uint8Array): Buffer => tlv(0x80 | n, content);

/**
 * RFC 5280 §4.1.2.5: UTCTime (two-digit year, read as 1950–2049) through 2049, GeneralizedTime
 * otherwise; both in UTC with seconds and a Z, no fractions (Go insists on that form).
 */
function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const two = (n: number) => String(n).padStart(2, '0');
  const rest =
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    'Z';
  if (year >= 1950 && year <= 2049) return tlv(TAG.UTC_TIME, Buffer.from(two(year % 100) + rest, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(String(year).padStart(4, '0') + rest, 'ascii'));
}

// ---------------------------------------------------------------------------------------------
// DER reading, only as far as the issuer's certificate and an SPKI need it.
// ---------------------------------------------------------------------------------------------

interface Element {
  tag: number;
  /** Where the element's header starts (to copy it whole, byte for byte). */
  offset: number;
  /** Its content. */
  start: number;
  /** The first byte after it. */
  end: number;
}

function readElement(der: Uint8Array, offset: number): Element {
  const fail = (): never => {
    throw new TypeError(`issueCertificate: malformed DER at byte ${offset}`);
  };
  const tag = der[offset] ?? fail();
  // Low tag numbers only (< 31): every tag in a certificate is one.
  if ((tag & 0x1f) === 0x1f) fail();
  let first = der[offset + 1] ?? fail();
  let start = offset + 2;
  let length = first;
  if (first & 0x80) {
    // Long form; 0x80 alone would be BER's indefinite length, which DER does not have.
    const count = first & 0x7f;
    if (count === 0 || count > 4) fail();
    length = 0;
    for (let i = 0; i < count; i++) {
      first = der[start + i] ?? fail();
      length = length * 256 + first;
    }
    start += count;
  }
  const end = start + length;
  if (end > der.length) fail();
  return { tag, offset, start, end };
}

function childrenOf(der: Uint8Array, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const child = readElement(der, at);
    if (child.end > parent.end) throw new TypeError(`issueCertificate: malformed DER at byte ${at}`);
    out.push(child);
    at = child.end;
  }
  return out;
}

const bytesOf = (der: Uint8Array, element: Element): Buffer =>
  Buffer.from(der.subarray(element.offset, element.end));
const contentOf = (der: Uint8Array, element: Element): Buffer =>
  Buffer.from(der.subarray(element.start, element.end));

/**
 * RFC 5280 §4.2.1.2 method 1: the key identifier is the SHA-1 of the subjectPublicKey BIT STRING's
 * bits (without its tag, length and unused-bits byte), not of the whole SubjectPublicKeyInfo.
 */
function keyIdentifier(spki: Buffer): Buffer {
  const outer = readElement(spki, 0);
  const bits = childrenOf(spki, outer)[1];
  if (bits?.tag !== TAG.BIT_STRING) throw new TypeError('issueCertificate: malformed SubjectPublicKeyInfo');
  return createHash('sha1')
    .update(spki.subarray(bits.start + 1, bits.end))
    .digest();
}

// ---------------------------------------------------------------------------------------------
// The certificate.
// ---------------------------------------------------------------------------------------------

const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

/** RFC 5758 §3.2: ecdsa-with-SHA256 has its parameters absent (not NULL), or Go does not know it. */
const SIGNATURE_ALGORITHM = sequence(oid(OID.ecdsaWithSHA256));

/** A Name holding one RDN, the CN, as UTF8String (what RFC 5280 asks of new certificates). */
const nameOf = (commonName: string): Buffer =>
  sequence(set(sequence(oid(OID.commonName), utf8String(commonName))));

/** An Extension. `critical` is BOOLEAN DEFAULT FALSE, and DER omits a default, so only TRUE is written. */
const extension = (id: string, critical: boolean, value: Buffer): Buffer =>
  sequence(oid(id), ...(critical ? [booleanTrue()] : []), octetString(value));

/** RFC 1123 labels, lower case, optionally under one leading wildcard label. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function isDnsName(host: string): boolean {
  const name = host.startsWith('*.') ? host.slice(2) : host;
  const labels = name.split('.');
  // An all-digit last label is no host name (RFC 1123 §2.1) but a mistyped IPv4 ("10.0.0.256",
  // "10.0.0.01"): refuse it rather than issue a dNSName nobody will ever ask for.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return false;
  return host.length <= 253 && labels.every((label) => DNS_LABEL.test(label));
}

/** An IPv6 address as its 16 bytes: "::" stands for the missing zero groups, a dotted quad for the last two. */
function ipv6Bytes(text: string): Buffer {
  const groups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [Number.parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [a * 256 + b, c * 256 + d];
        });
  const [left = '', right] = text.split('::');
  const head = groups(left);
  const tail = right === undefined ? [] : groups(right);
  const all =
    right === undefined
      ? head
      : [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  if (all.length !== 8) throw new TypeError(`issueCertificate: cannot read the IPv6 address ${text}`);
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => {
    bytes.writeUInt16BE(group, i * 2);
  });
  return bytes;
}

/** A GeneralName for subjectAltName: dNSName [2] IA5String, or iPAddress [7] OCTET STRING of 4 or 16 bytes. */
function generalName(host: string): Buffer {
  // net.isIP takes an IPv6 zone ("fe80::1%eth0"), which has no place in a certificate.
  const version = host.includes('%') ? 0 : isIP(host);
  if (version === 4) return implicit(7, Buffer.from(host.split('.').map(Number)));
  if (version === 6) return implicit(7, ipv6Bytes(host));
  if (isDnsName(host)) return implicit(2, Buffer.from(host, 'ascii'));
  throw new TypeError(
    `issueCertificate: host ${JSON.stringify(host)} is neither a DNS name (lower-case labels of a-z, 0-9 and '-', ` +
      `1–63 characters, the last not all digits, an optional leading '*.') nor an IPv4 or IPv6 address`,
  );
}

interface Signer {
  /** The issuer's subject, exactly as its certificate encodes it. */
  name: Buffer;
  keyIdentifier: Buffer;
  key: KeyObject;
}

/** What signing needs from the issuer, read from its certificate's DER and checked against its key. */
function signerOf(issuer: CertificatePair): Signer {
  let certificate: X509Certificate;
  let key: KeyObject;
  try {
    certificate = new X509Certificate(issuer.certificate);
  } catch (cause) {
    throw new TypeError('issueCertificate: issuer.certificate is not a PEM certificate', { cause });
  }
  try {
    key = createPrivateKey(issuer.privateKey);
  } catch (cause) {
    throw new TypeError('issueCertificate: issuer.privateKey is not a PEM private key', { cause });
  }

  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
  // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity,
  //                               subject, subjectPublicKeyInfo, [1], [2] OPTIONAL, [3] extensions OPTIONAL }
  const der = certificate.raw;
  const malformed = () => new TypeError('issueCertificate: malformed issuer certificate');
  const [tbs] = childrenOf(der, readElement(der, 0));
  if (tbs?.tag !== TAG.SEQUENCE) throw malformed();
  const fields = childrenOf(der, tbs);
  const skip = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[skip + 4];
  const spki = fields[skip + 5];
  if (subject?.tag !== TAG.SEQUENCE || spki?.tag !== TAG.SEQUENCE) throw malformed();

  // Read the extensions ourselves rather than X509Certificate.ca, which folds basicConstraints and
  // keyUsage into one answer (OpenSSL's X509_check_ca) and so cannot say what is wrong.
  let identifier: Buffer | undefined;
  let isCa = false;
  let certSign = true; // no keyUsage at all restricts nothing
  const extensions = fields.slice(skip + 6).find((field) => field.tag === 0xa3);
  const list = extensions && childrenOf(der, extensions)[0];
  for (const ext of list ? childrenOf(der, list) : []) {
    // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    const parts = childrenOf(der, ext);
    const id = parts[0] && bytesOf(der, parts[0]);
    const value = parts[parts.length - 1];
    if (!id || value?.tag !== TAG.OCTET_STRING) throw malformed();
    const inner = readElement(der, value.start);
    if (id.equals(oid(OID.subjectKeyIdentifier)) && inner.tag === TAG.OCTET_STRING) {
      identifier = contentOf(der, inner);
    } else if (id.equals(oid(OID.basicConstraints)) && inner.tag === TAG.SEQUENCE) {
      // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
      const cA = childrenOf(der, inner)[0];
      isCa = cA?.tag === TAG.BOOLEAN && (der[cA.start] ?? 0) !== 0;
    } else if (id.equals(oid(OID.keyUsage)) && inner.tag === TAG.BIT_STRING) {
      // Bit 5 is in the first byte after the unused-bits count.
      certSign = ((der[inner.start + 1] ?? 0) & (0x80 >> KEY_USAGE.keyCertSign)) !== 0;
    }
  }

  const who = certificate.subject.replaceAll('\n', ', ');
  if (!isCa) {
    throw new TypeError(`issueCertificate: the issuer ${who} is not a CA (no basicConstraints CA:TRUE)`);
  }
  // Verifiers other than Go (OpenSSL, so Node) refuse what such a CA signs; say so here instead.
  if (!certSign) {
    throw new TypeError(
      `issueCertificate: the issuer ${who} may not sign certificates (keyUsage without keyCertSign)`,
    );
  }
  // The signature algorithm written into the certificate is ecdsa-with-SHA256; another key would lie.
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('issueCertificate: the issuer key must be ECDSA P-256');
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new TypeError(
      "issueCertificate: issuer.privateKey does not match the issuer certificate's public key",
    );
  }
  // An issuer without an SKI gets the identifier it would have had (RFC 5280 method 1).
  return { name: bytesOf(der, subject), keyIdentifier: identifier ?? keyIdentifier(bytesOf(der, spki)), key };
}

/** The dates to the second (what the certificate can hold), checked. */
function validity(notBefore: Date, notAfter: Date): [Date, Date] {
  const seconds = (date: Date, what: string): Date => {
    const ms = date instanceof Date ? date.getTime() : Number.NaN;
    if (Number.isNaN(ms)) throw new TypeError(`issueCertificate: ${what} is not a valid Date`);
    const truncated = new Date(Math.floor(ms / 1000) * 1000);
    const year = truncated.getUTCFullYear();
    if (year < 0 || year > 9999) {
      throw new TypeError(`issueCertificate: ${what} is outside the years 0000–9999`);
    }
    return truncated;
  };
  const from = seconds(notBefore, 'notBefore');
  const to = seconds(notAfter, 'notAfter');
  if (to.getTime() <= from.getTime()) {
    throw new TypeError(
      `issueCertificate: notAfter (${notAfter.toISOString()}) must be after notBefore (${notBefore.toISOString()}), ` +
        'to the second',
    );
  }
  return [from, to];
}

/** DER to PEM: base64 in lines of 64 (RFC 7468). */
function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Issues an X.509 v3 certificate with a new ECDSA P-256 key: a CA, or a TLS server certificate,
 * self-signed or signed by `issuer`. Throws a TypeError for options no verifier would accept.
 */
export function issueCertificate(options: IssueOptions): CertificatePair {
  const { commonName, hosts = [], ca = false, issuer } = options;
  if (typeof commonName !== 'string' || commonName.length === 0) {
    throw new TypeError('issueCertificate: commonName must not be empty');
  }
  // ub-common-name (RFC 5280 appendix A.1): longer CNs are not valid X.520.
  if ([...commonName].length > 64) {
    throw new TypeError('issueCertificate: commonName is longer than 64 characters');
  }
  if (!ca && hosts.length === 0) {
    throw new TypeError(
      'issueCertificate: a server certificate needs at least one host (DNS name or IP) for subjectAltName',
    );
  }
  const altNames = hosts.map(generalName);
  const [notBefore, notAfter] = validity(options.notBefore, options.notAfter);

  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  // Node writes the EC SubjectPublicKeyInfo as RFC 5480 wants: id-ecPublicKey, the named curve, an uncompressed point.
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ownIdentifier = keyIdentifier(spki);
  const subject = nameOf(commonName);
  const signer: Signer = issuer
    ? signerOf(issuer)
    : { name: subject, keyIdentifier: ownIdentifier, key: privateKey };

  // 16 random bytes (RFC 5280 allows up to 20 octets). Clearing the top bit keeps the INTEGER
  // positive without a 0x00 in front, and setting the next one keeps it exactly 16 bytes long.
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;

  const usage = ca
    ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]
    : [KEY_USAGE.digitalSignature];
  const extensions = [
    // cA is BOOLEAN DEFAULT FALSE: a leaf's BasicConstraints is the empty SEQUENCE.
    extension(OID.basicConstraints, true, ca ? sequence(booleanTrue()) : sequence()),
    extension(OID.keyUsage, true, namedBits(usage)),
    ...(ca ? [] : [extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth)))]),
    extension(OID.subjectKeyIdentifier, false, octetString(ownIdentifier)),
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING, ... }
    extension(OID.authorityKeyIdentifier, false, sequence(implicit(0, signer.keyIdentifier))),
    // The subject has a CN, so the SAN need not be critical (RFC 5280 §4.2.1.6).
    ...(altNames.length > 0 ? [extension(OID.subjectAltName, false, sequence(...altNames))] : []),
  ];

  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.of(2))), // v3
    unsignedInteger(serial),
    SIGNATURE_ALGORITHM, // must equal the outer signatureAlgorithm byte for byte (Go checks)
    signer.name,
    sequence(time(notBefore), time(notAfter)),
    subject,
    spki,
    explicit(3, sequence(...extensions)),
  );
  // crypto.sign gives ECDSA-Sig-Value (SEQUENCE { r, s }) in DER, what the BIT STRING holds.
  const signature = sign('sha256', tbs, signer.key);
  const certificate = sequence(tbs, SIGNATURE_ALGORITHM, bitString(signature));

  return {
    certificate: pem('CERTIFICATE', certificate),
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
