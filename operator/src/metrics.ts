import { X509Certificate } from 'node:crypto';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RotationStats } from './webhook/certificates.js';
import type { CertificatePair } from './webhook/x509.js';

/** How one admission ended, as the webhook's stats count it. */
export type AdmissionOutcome = 'mutated' | 'unchanged' | 'refused' | 'badRequests' | 'failures';

/** What the operator reports as it works; the metrics below implement it, tests may pass their own. */
export interface OperatorObserver {
  reconciled(ok: boolean, seconds: number): void;
  admitted(outcome: AdmissionOutcome, seconds: number): void;
}

export interface OperatorMetricsSources {
  /** The work queue's length, read at scrape time. */
  queueLength?: () => number;
  /** The certificate being served, read at scrape time (its expiry is what an alert watches). */
  servedCertificate?: () => CertificatePair | undefined;
  /** The rotation's counts, when the operator keeps its own CA. */
  rotation?: () => RotationStats | undefined;
}

const OUTCOME_LABEL: Record<AdmissionOutcome, string> = {
  mutated: 'mutated',
  unchanged: 'unchanged',
  refused: 'refused',
  badRequests: 'bad_request',
  failures: 'failure',
};

/**
 * The operator's Prometheus metrics, in a registry of its own (as the sidecar's): reconciles and
 * their duration, the queue's length, admissions by outcome and their duration, the served
 * certificate's expiry, the rotation's counts, and the process's default metrics. Served at
 * `GET /metrics` on the health port.
 */
export class OperatorMetrics implements OperatorObserver {
  readonly registry = new Registry();
  readonly #reconciles: Counter<'result'>;
  readonly #reconcileSeconds: Histogram;
  readonly #admissions: Counter<'outcome'>;
  readonly #admissionSeconds: Histogram;

  constructor(sources: OperatorMetricsSources = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#reconciles = new Counter({
      name: 'tarn_operator_reconciles_total',
      help: 'Reconciles of TarnStorages, by result (error: retried with backoff)',
      labelNames: ['result'],
      registers,
    });
    this.#reconcileSeconds = new Histogram({
      name: 'tarn_operator_reconcile_seconds',
      help: 'How long a reconcile of one TarnStorage took',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#admissions = new Counter({
      name: 'tarn_webhook_admissions_total',
      help: 'AdmissionReviews the webhook answered, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.#admissionSeconds = new Histogram({
      name: 'tarn_webhook_admission_seconds',
      help: 'How long the webhook took to answer one AdmissionReview (the API server gives up at its timeoutSeconds)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const { queueLength, servedCertificate, rotation } = sources;
    if (queueLength)
      new Gauge({
        name: 'tarn_operator_queue_length',
        help: 'TarnStorages waiting to be reconciled',
        registers,
        collect() {
          this.set(queueLength());
        },
      });
    if (servedCertificate)
      new Gauge({
        name: 'tarn_webhook_certificate_expiry_timestamp_seconds',
        help: 'When the certificate the webhook serves expires (Unix seconds); renewed in its last third',
        registers,
        collect() {
          const pair = servedCertificate();
          if (pair) this.set(new Date(new X509Certificate(pair.certificate).validTo).getTime() / 1000);
        },
      });
    if (rotation)
      new Gauge({
        name: 'tarn_webhook_certificates_issued',
        help: 'Certificates this process has issued since it started, by kind (ca, serving)',
        labelNames: ['kind'],
        registers,
        collect() {
          const stats = rotation();
          if (!stats) return;
          this.set({ kind: 'ca' }, stats.caIssued);
          this.set({ kind: 'serving' }, stats.certIssued);
        },
      });
  }

  reconciled(ok: boolean, seconds: number): void {
    this.#reconciles.inc({ result: ok ? 'ok' : 'error' });
    this.#reconcileSeconds.observe(seconds);
  }

  admitted(outcome: AdmissionOutcome, seconds: number): void {
    this.#admissions.inc({ outcome: OUTCOME_LABEL[outcome] });
    this.#admissionSeconds.observe(seconds);
  }
}
