import { ERRORS, type ErrorCode, errorOfProblem, RemoteError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';

/** Codes a client acts on, whatever their status; every other 5xx is the sidecar failing. */
const TYPED_5XX = new Set(['TARN_UNSUPPORTED', 'TARN_CORRUPTION', 'TARN_PARTIAL_DELETE']);
/** 4xx that say the sidecar cannot serve now (busy, closing, timed out): passed over like a fault. */
const UNAVAILABLE_4XX = new Set(['TARN_BUSY', 'TARN_UNAVAILABLE', 'TARN_TIMEOUT']);

describe('sidecar problem+json → library errors', () => {
  const codes = Object.keys(ERRORS) as ErrorCode[];
  it.each(codes)('%s becomes its own error class, worded by the sidecar', (code) => {
    const row = ERRORS[code];
    const detail = `the sidecar says why (${code})`;
    const e = errorOfProblem(
      { type: `https://tarn.dev/errors/${code}`, title: code, status: row.http, detail, code },
      { key: 'ab'.repeat(32), where: 'sidecar /run/tarn.sock', action: 'GET /v1/x' },
    );
    const remote =
      code === 'TARN_REMOTE' || UNAVAILABLE_4XX.has(code) || (row.http >= 500 && !TYPED_5XX.has(code));
    if (code === 'TARN_REMOTE') {
      expect(e).toBeInstanceOf(RemoteError);
      expect(e.message).toContain(detail);
      expect(e.message).toContain('sidecar /run/tarn.sock');
      return;
    }
    // A sidecar that fails is a RemoteError (Levels pass over it, smartCache computes); the typed
    // error is its cause. What the request did wrong is thrown as is.
    expect(e instanceof RemoteError).toBe(remote);
    const typed = (remote ? e.cause : e) as Error & { code: string };
    expect(typed.code).toBe(code);
    expect(typed.constructor.name).toBe(row.error);
    expect(typed.message).toBe(detail);
    if (remote) expect(e.message).toContain(detail);
  });

  it('keeps a code it does not know (a newer sidecar), and the fields of the typed errors', () => {
    const e = errorOfProblem(
      { type: 'x', title: 'x', status: 418, detail: 'new', code: 'TARN_SOMETHING_NEW' },
      { where: 'sidecar s', action: 'GET /' },
    ) as Error & { code: string };
    expect(e.code).toBe('TARN_SOMETHING_NEW');
    expect(e.message).toBe('new');
    const key = 'cd'.repeat(32);
    const mismatch = errorOfProblem(
      {
        type: 'x',
        title: 'x',
        status: 422,
        detail: `the value hashes to ${key}, not to the expected key ${'ef'.repeat(32)}; nothing was stored`,
        code: 'TARN_KEY_MISMATCH',
      },
      { expected: 'ef'.repeat(32), where: 'sidecar s', action: 'PUT /v1/blobs' },
    ) as Error & { expected: string; actual: string };
    expect(mismatch).toMatchObject({ expected: 'ef'.repeat(32), actual: key });
  });
});
