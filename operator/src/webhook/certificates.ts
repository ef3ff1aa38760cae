import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type CallOptions, isConflict, isInvalid, type Kube, type KubeObject } from '../kube/client.js';
import type { Logger } from '../log.js';
import { GROUP, MANAGED_BY_LABEL, MANAGER } from '../names.js';
import { MUTATING_WEBHOOKS, objectPath, SECRETS } from '../resources.js';
import { type CertificatePair, issueCertificate } from './x509.js';

/** Where the webhook's serving certificate comes from; `sync` is called again and again, and returns what to serve. */
export interface CertificateSource {
  sync(options?: CallOptions): Promise<CertificatePair>;
}

/**
 * cert-manager's way (or any other issuer's): `tls.crt` and `tls.key` in a folder (a mounted
 * Secret, which the kubelet updates in place), read again at every sync; the caBundle is not ours
 * (cert-manager's CA injector keeps it).
 */
export class FileCertificates implements CertificateSource {
  constructor(readonly dir: string) {}

  async sync(): Promise<CertificatePair> {
    const [certificate, privateKey] = await Promise.all([
      readFile(join(this.dir, 'tls.crt'), 'utf8'),
      readFile(join(this.dir, 'tls.key'), 'utf8'),
    ]);
    return { certificate, privateKey };
  }
}

export interface SecretCertificatesOptions {
  kube: Kube;
  log: Logger;
  /** The Secret that holds the CA and the serving pair: every replica serves what it holds. */
  namespace: string;
  secret: string;
  /** The MutatingWebhookConfiguration whose every caBundle is kept current (none: the caller's business). */
  webhookConfig?: string;
  /** What the serving certificate is for: DNS names (the Service's) and IP addresses. */
  hosts: readonly string[];
  caValidityMs: number;
  certValidityMs: number;
  /**
   * How long a new CA is trusted (in the caBundle) before a certificate it signed is served, and
   * how long a new certificate is served before the CA it replaced leaves the bundle: longer than
   * the API server takes to see a changed webhook configuration and the replicas take to sync.
   */
  overlapMs: number;
  now?: () => Date;
}

/** The Secret's keys. */
const CA_CRT = 'ca.crt';
const CA_KEY = 'ca.key';
const BUNDLE = 'ca-bundle.crt';
const TLS_CRT = 'tls.crt';
const TLS_KEY = 'tls.key';
/** Since when every caBundle holds the current CA, and when the current serving certificate was first written. */
const TRUSTED_AT = `${GROUP}/ca-trusted-at`;
const SERVED_AT = `${GROUP}/cert-served-at`;

interface State {
  ca: CertificatePair;
  /** The CAs the API server is told to trust, current first. */
  bundle: string[];
  leaf: CertificatePair;
  /** Since when every caBundle holds the current CA; absent: not (known to be) yet. */
  trustedAt?: Date;
  servedAt: Date;
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
  type?: string;
}

/** What the rotation has done, for the logs and the tests. */
export interface RotationStats {
  caIssued: number;
  certIssued: number;
  bundleUpdates: number;
}

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) =>
  s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8');

/**
 * The operator's own CA and serving certificate, kept in a Secret and rotated without a lost
 * admission. Each `sync` reads the Secret and takes at most the steps that are due:
 *
 * 1. no Secret, or one that does not hold a working CA and pair: a new CA and certificate;
 * 2. the CA in its last third of life: a new CA joins the bundle, in front of the old one, while
 *    the certificate the old one signed is still served; the Secret is written (a compare-and-swap:
 *    a replica that lost the race reads again);
 * 3. every caBundle of the webhook configuration is made the bundle; the current CA counts as
 *    trusted from the first sync that found it in every one of them (a configuration that is
 *    missing, or one re-created without it, starts that clock again);
 * 4. the certificate is due (its last third of life, other hosts, or signed by a CA that is no
 *    longer the current one) and the current CA has been trusted for `overlapMs`: a new certificate;
 * 5. the bundle still holds a replaced CA and the new certificate has been served for `overlapMs`:
 *    the old CA leaves the bundle (published at the next sync);
 * 6. the Secret is written again when 3–5 changed it.
 *
 * So the certificate served is signed by a CA the API server has been told to trust for a while
 * (the one exception is the very first, when nothing was trusted before), and a CA leaves the
 * bundle only once nothing it signed is served.
 */
export class SecretCertificates implements CertificateSource {
  readonly stats: RotationStats = { caIssued: 0, certIssued: 0, bundleUpdates: 0 };
  readonly #o: SecretCertificatesOptions;
  #missingConfigLogged = false;

  constructor(options: SecretCertificatesOptions) {
    this.#o = options;
  }

  async sync(options: CallOptions = {}): Promise<CertificatePair> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.#steps(options)).leaf;
      } catch (e) {
        // Another replica wrote the Secret, or the configuration, first: start from a fresh read.
        if (!(isConflict(e) || isInvalid(e)) || attempt >= 3) throw e;
      }
    }
  }

  async #steps(options: CallOptions): Promise<State> {
    const { kube, log, namespace, secret } = this.#o;
    const path = objectPath(SECRETS, namespace, secret);
    let found = await kube.find<SecretObject>(path, options);
    const now = this.#now();
    let state = found ? this.#parse(found) : undefined;
    if (found && !state)
      log.warn('the webhook certificate Secret holds no working CA; making a new one', { secret });
    let changed = false;
    // 1.
    if (!state) {
      const ca = this.#issueCa(now);
      state = { ca, bundle: [ca.certificate], leaf: this.#issueLeaf(ca, now), servedAt: now };
      changed = true;
    }
    const ca = new X509Certificate(state.ca.certificate);
    // Expired CAs help nobody.
    const bundle = state.bundle.filter(
      (pem, i) => i === 0 || new Date(new X509Certificate(pem).validTo) > now,
    );
    if (bundle.length !== state.bundle.length) {
      state = { ...state, bundle };
      changed = true;
    }
    // 2.
    if (state.bundle.length === 1 && this.#due(ca, this.#o.caValidityMs, now)) {
      const next = this.#issueCa(now);
      const { trustedAt: _, ...rest } = state;
      state = { ...rest, ca: next, bundle: [next.certificate, ...state.bundle] };
      changed = true;
      log.info('webhook CA rotation: a new CA joins the caBundle', { expires: ca.validTo });
    }
    if (changed) found = await this.#write(path, found, state, options);
    changed = false;
    // 3.
    const published = await this.#publishBundle(state, options);
    // Missing: nothing trusts it; newly: from now; already (or not ours to publish): since it was.
    const trustedAt =
      published === 'missing' ? undefined : published === 'newly trusted' ? now : (state.trustedAt ?? now);
    if (trustedAt?.getTime() !== state.trustedAt?.getTime()) {
      const { trustedAt: _, ...rest } = state;
      state = trustedAt ? { ...rest, trustedAt } : rest;
      changed = true;
    }
    // 4.
    const current = new X509Certificate(state.ca.certificate);
    const leaf = new X509Certificate(state.leaf.certificate);
    const trusted =
      state.trustedAt !== undefined && now.getTime() - state.trustedAt.getTime() >= this.#o.overlapMs;
    const servable = state.bundle.some((pem) => leaf.checkIssued(new X509Certificate(pem)));
    const leafDue =
      !leaf.checkIssued(current) || this.#due(leaf, this.#o.certValidityMs, now) || !this.#coversHosts(leaf);
    if ((leafDue && trusted) || !servable || new Date(leaf.validTo) <= now) {
      state = { ...state, leaf: this.#issueLeaf(state.ca, now), servedAt: now };
      changed = true;
      log.info('webhook serving certificate issued', { hosts: this.#o.hosts });
    }
    // 5.
    const served = now.getTime() - state.servedAt.getTime() >= this.#o.overlapMs;
    if (
      state.bundle.length > 1 &&
      new X509Certificate(state.leaf.certificate).checkIssued(current) &&
      served
    ) {
      state = { ...state, bundle: [state.ca.certificate] };
      changed = true;
      log.info('webhook CA rotation: the old CA leaves the caBundle');
    }
    // 6.
    if (changed) await this.#write(path, found, state, options);
    return state;
  }

  /** In its last third of life (of the validity it is issued with now). */
  #due(cert: X509Certificate, validityMs: number, now: Date): boolean {
    return new Date(cert.validTo).getTime() - now.getTime() < validityMs / 3;
  }

  /** For exactly the hosts wanted (Node's checks compare addresses as addresses: `::1` is `0:0:…:1`). */
  #coversHosts(leaf: X509Certificate): boolean {
    const entries = (leaf.subjectAltName ?? '').split(', ').filter(Boolean);
    return (
      entries.length === this.#o.hosts.length &&
      this.#o.hosts.every((h) =>
        isIP(h) ? leaf.checkIP(h) !== undefined : leaf.checkHost(h, { wildcards: false }) === h,
      )
    );
  }

  #issueCa(now: Date): CertificatePair {
    this.stats.caIssued++;
    return issueCertificate({
      commonName: `${MANAGER} webhook CA ${now.toISOString()}`,
      ca: true,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + this.#o.caValidityMs),
    });
  }

  #issueLeaf(ca: CertificatePair, now: Date): CertificatePair {
    this.stats.certIssued++;
    const caEnds = new Date(new X509Certificate(ca.certificate).validTo).getTime();
    return issueCertificate({
      // The names are in the subjectAltName, which is what TLS checks; a Service's name in a long
      // namespace would not fit a common name's 64 characters.
      commonName: `${MANAGER} webhook`,
      hosts: this.#o.hosts,
      issuer: ca,
      notBefore: new Date(now.getTime() - 60_000),
      // A certificate never outlives its CA: a chain is only as valid as its shortest link.
      notAfter: new Date(Math.min(now.getTime() + this.#o.certValidityMs, caEnds)),
    });
  }

  /** The state a Secret holds, or undefined when it does not hold a CA with its key and a pair it signed. */
  #parse(secret: SecretObject): State | undefined {
    const data = secret.data ?? {};
    const get = (k: string) => unb64(data[k]);
    const caCrt = get(CA_CRT);
    const caKey = get(CA_KEY);
    const tlsCrt = get(TLS_CRT);
    const tlsKey = get(TLS_KEY);
    if (!caCrt || !caKey || !tlsCrt || !tlsKey) return undefined;
    try {
      const ca = new X509Certificate(caCrt);
      const leaf = new X509Certificate(tlsCrt);
      if (
        !ca.ca ||
        !ca.checkPrivateKey(createPrivateKey(caKey)) ||
        !leaf.checkPrivateKey(createPrivateKey(tlsKey))
      )
        return undefined;
      const bundle = [caCrt, ...(get(BUNDLE)?.match(PEM) ?? []).filter((p) => p.trim() !== caCrt.trim())];
      for (const pem of bundle) new X509Certificate(pem);
      const annotations = secret.metadata?.annotations ?? {};
      const at = (k: string) => {
        const d = new Date(annotations[k] ?? Number.NaN);
        return Number.isNaN(d.getTime()) ? undefined : d;
      };
      const trustedAt = at(TRUSTED_AT);
      return {
        ca: { certificate: caCrt, privateKey: caKey },
        bundle,
        leaf: { certificate: tlsCrt, privateKey: tlsKey },
        ...(trustedAt ? { trustedAt } : {}),
        servedAt: at(SERVED_AT) ?? new Date(0),
      };
    } catch {
      return undefined;
    }
  }

  /** Writes the state; returns the Secret as written (its new version, for a second write). */
  async #write(
    path: string,
    found: SecretObject | undefined,
    state: State,
    options: CallOptions,
  ): Promise<SecretObject> {
    const { kube, namespace, secret } = this.#o;
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      // A Secret's type cannot change: one made by hand (Opaque) keeps its type.
      type: found?.type ?? 'kubernetes.io/tls',
      metadata: {
        name: secret,
        namespace,
        labels: { ...found?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGER },
        annotations: {
          ...Object.fromEntries(
            Object.entries(found?.metadata?.annotations ?? {}).filter(([k]) => k !== TRUSTED_AT),
          ),
          ...(state.trustedAt ? { [TRUSTED_AT]: state.trustedAt.toISOString() } : {}),
          [SERVED_AT]: state.servedAt.toISOString(),
        },
        ...(found ? { resourceVersion: found.metadata?.resourceVersion } : {}),
      },
      data: {
        [CA_CRT]: b64(state.ca.certificate),
        [CA_KEY]: b64(state.ca.privateKey),
        [BUNDLE]: b64(state.bundle.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('')),
        [TLS_CRT]: b64(state.leaf.certificate),
        [TLS_KEY]: b64(state.leaf.privateKey),
      },
    };
    // Both are compare-and-swaps: a stale update is a 409 Conflict, a create that finds the
    // Secret made meanwhile a 409 AlreadyExists, and sync() reads again.
    return found
      ? kube.replace(path, body, options)
      : kube.create(SECRETS.collection(namespace), body, options);
  }

  /**
   * Makes every webhook's caBundle the bundle (a JSON Patch guarded by the version it read), and
   * says whether the current CA was already in all of them before ('trusted'), only from now on
   * ('newly trusted'), or cannot be ('missing': no configuration); 'unmanaged' without one to keep.
   */
  async #publishBundle(
    state: State,
    options: CallOptions,
  ): Promise<'trusted' | 'newly trusted' | 'missing' | 'unmanaged'> {
    const { kube, log, webhookConfig } = this.#o;
    if (!webhookConfig) return 'unmanaged';
    const path = `${MUTATING_WEBHOOKS}/${encodeURIComponent(webhookConfig)}`;
    const config = await kube.find<
      KubeObject & { webhooks?: Array<{ clientConfig?: { caBundle?: string } }> }
    >(path, options);
    const webhooks = config?.webhooks ?? [];
    if (webhooks.length === 0) {
      if (!this.#missingConfigLogged)
        log.warn('the webhook configuration does not exist (yet)', { webhookConfig });
      this.#missingConfigLogged = true;
      return 'missing';
    }
    this.#missingConfigLogged = false;
    const want = b64(state.bundle.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''));
    const ca = state.ca.certificate.trim();
    const ops: unknown[] = [];
    let trusted = true;
    webhooks.forEach((w, i) => {
      const had = w.clientConfig?.caBundle;
      if (!(unb64(had)?.match(PEM) ?? []).some((p) => p.trim() === ca)) trusted = false;
      if (had !== want) ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
    });
    if (ops.length > 0) {
      await kube.jsonPatch(
        path,
        [{ op: 'test', path: '/metadata/resourceVersion', value: config?.metadata?.resourceVersion }, ...ops],
        options,
      );
      this.stats.bundleUpdates++;
      log.info('webhook caBundle updated', { webhookConfig, cas: state.bundle.length });
    }
    return trusted ? 'trusted' : 'newly trusted';
  }

  #now(): Date {
    return (this.#o.now ?? (() => new Date()))();
  }
}
