export { Controller, type ControllerOptions } from './controller.js';
export { crdYaml, specSchema, tarnStorageCrd } from './crd/generate.js';
export { Kube, KubeError, type KubeObject } from './kube/client.js';
export { jsonLogger, type Logger, silentLogger } from './log.js';
export { operatorMain, parseDuration } from './main.js';
export {
  type AdmissionOutcome,
  OperatorMetrics,
  type OperatorMetricsSources,
  type OperatorObserver,
} from './metrics.js';
export * from './names.js';
export { appContainersOf, podAdditions } from './pod-additions.js';
export { WorkQueue } from './queue.js';
export { reconcileStorage } from './reconcile/storage.js';
export { render } from './render.js';
export { type StorageSpec, storageSpec } from './spec.js';
export { InvalidSpecError, validateSpec } from './validate.js';
export {
  type CertificateSource,
  FileCertificates,
  type RotationStats,
  SecretCertificates,
  type SecretCertificatesOptions,
} from './webhook/certificates.js';
export { type Decision, mutatePod, type Pod, patchFor } from './webhook/mutate.js';
export { type AdmissionRequest, BadReviewError, parseReview, reviewResponse } from './webhook/review.js';
export { type RunningWebhook, startWebhook, type WebhookRunOptions } from './webhook/run.js';
export { WebhookServer, type WebhookStats } from './webhook/server.js';
export { type CertificatePair, type IssueOptions, issueCertificate } from './webhook/x509.js';
