import type { Decision, Pod } from './mutate.js';

/** The parts of an `admission.k8s.io/v1` AdmissionReview request the webhook reads. */
export interface AdmissionRequest {
  uid: string;
  operation: string;
  namespace: string;
  kind?: { group?: string; version?: string; kind?: string };
  object: Pod;
}

/** A body that is not an AdmissionReview the webhook can answer: a 400, never a crash. */
export class BadReviewError extends Error {
  override readonly name = 'BadReviewError';
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Reads an AdmissionReview from untrusted bytes. Only the shape the answer depends on is checked
 * (the API server sends much more); anything else is a BadReviewError naming what is wrong.
 */
export function parseReview(body: string): AdmissionRequest {
  let review: unknown;
  try {
    review = JSON.parse(body);
  } catch {
    throw new BadReviewError('the body is not JSON');
  }
  if (!isObject(review) || review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview')
    throw new BadReviewError('the body is not an admission.k8s.io/v1 AdmissionReview');
  const request = review.request;
  if (!isObject(request)) throw new BadReviewError('the AdmissionReview has no request');
  const { uid, operation, namespace, object, kind } = request;
  if (typeof uid !== 'string' || uid === '' || uid.length > 256)
    throw new BadReviewError('request.uid is not a string');
  if (typeof operation !== 'string') throw new BadReviewError('request.operation is not a string');
  if (typeof namespace !== 'string') throw new BadReviewError('request.namespace is not a string');
  if (!isObject(object)) throw new BadReviewError('request.object is not an object');
  const metadata = object.metadata;
  if (metadata !== undefined && !isObject(metadata))
    throw new BadReviewError('request.object.metadata is not an object');
  for (const field of ['labels', 'annotations'] as const) {
    const map = metadata?.[field];
    if (map !== undefined && (!isObject(map) || Object.values(map).some((v) => typeof v !== 'string')))
      throw new BadReviewError(`request.object.metadata.${field} is not a map of strings`);
  }
  const spec = object.spec;
  if (spec !== undefined && !isObject(spec)) throw new BadReviewError('request.object.spec is not an object');
  for (const field of ['containers', 'initContainers', 'volumes'] as const) {
    const list = spec?.[field];
    if (list !== undefined && (!Array.isArray(list) || !list.every(isObject)))
      throw new BadReviewError(`request.object.spec.${field} is not a list of objects`);
  }
  for (const c of (spec?.containers ?? []) as Array<Record<string, unknown>>)
    for (const field of ['env', 'volumeMounts'] as const) {
      const list = c[field];
      if (list !== undefined && (!Array.isArray(list) || !list.every(isObject)))
        throw new BadReviewError(`a container's ${field} is not a list of objects`);
    }
  return {
    uid,
    operation,
    namespace,
    object: object as Pod,
    ...(isObject(kind) ? { kind: kind as AdmissionRequest['kind'] } : {}),
  };
}

/** The AdmissionReview that answers `uid` with a decision. */
export function reviewResponse(uid: string, decision: Decision): Record<string, unknown> {
  const response: Record<string, unknown> = { uid, allowed: decision.allowed };
  if (decision.allowed) {
    if (decision.patch && decision.patch.length > 0) {
      response.patchType = 'JSONPatch';
      response.patch = Buffer.from(JSON.stringify(decision.patch)).toString('base64');
    }
    if (decision.warnings) response.warnings = decision.warnings;
  } else {
    response.status = { code: decision.code, reason: decision.reason, message: decision.message };
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}
