import { z } from 'zod';

/**
 * The sidecar's HTTP API, version 1: one contract for both sides. The server (`@tarnjs/sidecar`)
 * registers its routes from `ROUTES` and validates with these schemas; its OpenAPI document is
 * generated from them; the client (`SidecarLocation`) parses answers with the same schemas.
 *
 * Bodies of values are raw bytes (`application/octet-stream`), streamed both ways. Everything else
 * is JSON. Every error is RFC 9457 `application/problem+json` carrying the library's stable `code`
 * (errors.ts maps each code to its HTTP status, once).
 */

export const API_VERSION = 'v1';

/** Request and response headers of the API (lowercase, as Node hands them out). */
export const HEADERS = {
  /** PUT /v1/blobs: the key the body must hash to (or `?expect=`); 422 and nothing stored otherwise. */
  expectedKey: 'x-tarn-expected-key',
  /** Every response: the request's id, as logged (a client's own `x-request-id` is kept when sane). */
  requestId: 'x-request-id',
  /** Every problem answer: its `code`, also where there is no body to carry it (HEAD). */
  code: 'x-tarn-code',
  /** GET/HEAD /v1/blobs/{key}: the value's key, also its ETag (quoted there). */
  key: 'x-tarn-key',
  /** POST /v1/blobs/ingest: `off` on a 403 when the sidecar ingests nothing (no allowed folder). */
  ingest: 'x-tarn-ingest',
} as const;

/** A value key as a path parameter: hex, bounded; its exact length is the storage digest's to check. */
export const keyParam = z
  .string()
  .regex(/^[0-9a-fA-F]{8,128}$/, 'a key is 8 to 128 hex digits')
  .describe('The value key: lowercase hex of the storage digest (sha256 by default: 64 digits)');

/** A memo call key (smartCache hashes calls with sha256 whatever the storage's digest). */
export const callKeyParam = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'a call key is 64 lowercase hex digits')
  .describe('The call key smartCache computed: sha256 hex of the function, its dependencies and arguments');

export const leaseNameParam = z
  .string()
  // Whole bytes: a lease name is a key's form (the leasing locations check it as one).
  .regex(/^(?:[0-9a-f]{2}){1,64}$/, 'a lease name is 2 to 128 lowercase hex digits, an even number')
  .describe('The lease name (smartCache uses the call key)');

export const blobParams = z.object({ key: keyParam }).strict();
export const memoParams = z.object({ callKey: callKeyParam }).strict();
export const leaseParams = z.object({ name: leaseNameParam }).strict();

const flag = z
  .enum(['1', '0', 'true', 'false'])
  .transform((v) => v === '1' || v === 'true')
  .describe('1 or true, 0 or false');

export const putQuery = z
  .object({ expect: keyParam.optional().describe('The key the body must hash to (as the header)') })
  .strict();

/** POST /v1/blobs/ingest: a file the sidecar reads itself, from a folder shared with the caller. */
export const ingestBody = z
  .object({
    path: z
      .string()
      .min(1)
      .max(4096)
      .refine((p) => p.startsWith('/') && !p.includes('\0'), 'an absolute path without NUL')
      .describe(
        'Absolute path of a regular file, as both the caller and the sidecar see it (a shared volume)',
      ),
    expect: keyParam.optional().describe('The key the file must hash to; 422 and nothing stored otherwise'),
    algorithm: z
      .string()
      .max(40)
      .optional()
      .describe('The digest the caller keys with; a sidecar keyed otherwise answers 400'),
  })
  .strict()
  .meta({ id: 'IngestRequest' });

export const getQuery = z
  .object({
    verify: flag
      .optional()
      .describe(
        'Re-hash the value: a corrupt copy is quarantined and, if no good copy is left, answered 500 TARN_CORRUPTION before any byte (or, past the first byte, the connection is cut)',
      ),
  })
  .strict();

export const putResult = z
  .object({
    key: z.string().describe('The value key'),
    size: z.number().int().nonnegative().describe('Bytes of the value'),
    status: z
      .enum(['stored', 'existed'])
      .describe('stored: this request stored it; existed: it was already stored'),
  })
  .strict()
  .meta({ id: 'PutResult' });

export const pathResult = z
  .object({
    key: z.string(),
    path: z
      .string()
      .describe(
        'A read-only file holding exactly the value, in the sidecar’s top local lake; open it where the lake’s volume is mounted at the same path',
      ),
    size: z.number().int().nonnegative(),
  })
  .strict()
  .meta({ id: 'PathResult' });

export const KEYS_PAGE_MAX = 10_000;

export const keysQuery = z
  .object({
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(KEYS_PAGE_MAX)
      .optional()
      .describe(
        'Page mode: at most this many keys, in ascending order, as JSON. Without it: every key, streamed as NDJSON in no particular order',
      ),
    after: keyParam.optional().describe('Page mode: only keys after this one (the previous page’s `next`)'),
  })
  .strict();

export const keysPage = z
  .object({
    keys: z.array(z.string()),
    next: z.string().nullable().describe('Pass as `after` for the next page; null on the last page'),
  })
  .strict()
  .meta({ id: 'KeysPage' });

/** One line of the NDJSON listing. */
export const keyLine = z.object({ key: z.string() }).strict().meta({ id: 'KeyLine' });

export const FETCH_MAX_KEYS = 10_000;

export const fetchBody = z
  .object({ keys: z.array(keyParam).min(1).max(FETCH_MAX_KEYS) })
  .strict()
  .meta({ id: 'FetchRequest' });

export const fetchResult = z
  .object({
    results: z.array(z.object({ key: z.string(), present: z.boolean() }).strict()),
  })
  .strict()
  .meta({ id: 'FetchResult' });

/** `/v1/describe`: the library's StorageDescription (plain JSON; its shape is the library's). */
export const description = z
  .object({
    algorithm: z.string(),
    reachable: z.boolean(),
    location: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'StorageDescription' });

/** Memo entries are small JSON documents written by smartCache; the sidecar stores them as bytes. */
export const MEMO_ENTRY_MAX = 64 * 1024;

export const memoPutResult = z
  .object({ callKey: z.string(), status: z.enum(['stored', 'existed']) })
  .strict()
  .meta({ id: 'MemoPutResult' });

export const LEASE_TTL_MIN_MS = 100;
export const LEASE_TTL_MAX_MS = 10 * 60_000;

export const leaseBody = z
  .discriminatedUnion('action', [
    z
      .object({
        action: z.literal('acquire'),
        ttlMs: z.number().int().min(LEASE_TTL_MIN_MS).max(LEASE_TTL_MAX_MS),
      })
      .strict(),
    z
      .object({
        action: z.literal('renew'),
        token: z.string().regex(/^[0-9a-f]{32}$/),
      })
      .strict(),
    z
      .object({
        action: z.literal('release'),
        token: z.string().regex(/^[0-9a-f]{32}$/),
      })
      .strict(),
  ])
  .meta({ id: 'LeaseRequest' });

export const leaseResult = z
  .object({
    acquired: z.boolean().describe('False: someone else holds it (try again later)'),
    token: z.string().optional().describe('Present when acquired or renewed: names this holding'),
    ttlMs: z.number().int().optional(),
  })
  .strict()
  .meta({ id: 'LeaseResult' });

export const health = z
  .object({ status: z.literal('ok') })
  .strict()
  .meta({ id: 'Health' });

export const readiness = z
  .object({
    ready: z.boolean(),
    /** How many configs have been loaded (1 at start, +1 per successful reload). */
    generation: z.number().int(),
    loadedAt: z.string().nullable(),
    lastReload: z
      .object({ ok: z.boolean(), at: z.string(), error: z.string().optional() })
      .strict()
      .nullable(),
  })
  .strict()
  .meta({ id: 'Readiness' });

/** RFC 9457 problem details, with the library's code. */
export const problem = z
  .object({
    type: z.string().describe('https://tarn.dev/errors/<code>'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string().describe('The stable error code (docs/library.md lists them)'),
    instance: z.string().optional().describe('The request id'),
  })
  .meta({ id: 'Problem' });

export type PutResultBody = z.infer<typeof putResult>;
export type IngestRequestBody = z.infer<typeof ingestBody>;
export type PathResultBody = z.infer<typeof pathResult>;
export type KeysPageBody = z.infer<typeof keysPage>;
export type FetchResultBody = z.infer<typeof fetchResult>;
export type LeaseRequestBody = z.infer<typeof leaseBody>;
export type LeaseResultBody = z.infer<typeof leaseResult>;
export type ReadinessBody = z.infer<typeof readiness>;
export type ProblemBody = z.infer<typeof problem>;

/** A response: JSON described by a schema, raw bytes, an NDJSON stream, or nothing. */
export type ResponseSpec =
  | { description: string; json: z.ZodType }
  | { description: string; bytes: true }
  /** NDJSON; `json` too when a query switches the answer to one JSON document (a page). */
  | { description: string; ndjson: z.ZodType; json?: z.ZodType }
  | { description: string; empty: true };

export interface RouteSpec {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** fastify's form: `/v1/blobs/:key`. */
  url: string;
  id: string;
  summary: string;
  params?: z.ZodObject;
  querystring?: z.ZodObject;
  /** A JSON body, validated; or `bytes`: a raw body, streamed to the handler unparsed. */
  body?: z.ZodType | 'bytes';
  /** Request headers the route reads (documentation; values are validated by the handler). */
  headers?: Record<string, string>;
  responses: Record<number, ResponseSpec>;
}

const problemResponse = (description: string): ResponseSpec => ({ description, json: problem });

/** Every route of the API. The server registers exactly these; the OpenAPI document lists them. */
export const ROUTES = {
  putBlob: {
    method: 'PUT',
    url: '/v1/blobs',
    id: 'putBlob',
    summary: 'Store the body; it is hashed as it streams in and never held whole in memory',
    querystring: putQuery,
    body: 'bytes',
    headers: {
      [HEADERS.expectedKey]: 'The key the body must hash to; 422 and nothing stored otherwise',
      'content-length': 'Lets an over-limit body be refused before it is read (chunked bodies are counted)',
    },
    responses: {
      201: { description: 'Stored, or already stored', json: putResult },
      400: problemResponse('Bad key or parameter; or the body ended early or failed'),
      408: problemResponse('The client sent too slowly'),
      413: problemResponse('The body is over the limit'),
      422: problemResponse('The body does not hash to the expected key'),
      503: problemResponse('Every upload slot is taken, or the sidecar is shutting down'),
      507: problemResponse('Every level refused the value (full, over a cap)'),
    },
  },
  ingestBlob: {
    method: 'POST',
    url: '/v1/blobs/ingest',
    id: 'ingestBlob',
    summary:
      'Store a file the sidecar reads itself from an allowed shared folder (serve.ingestRoots): its bytes never cross the socket',
    body: ingestBody,
    responses: {
      201: { description: 'Stored, or already stored', json: putResult },
      400: problemResponse(
        'Bad path or key, another digest than the sidecar’s; or the file changed while it was read',
      ),
      403: problemResponse(
        'Ingest is off (header x-tarn-ingest: off), or the file is outside the allowed folders, a link, not a regular file, or unreadable by the sidecar',
      ),
      422: problemResponse('The file does not hash to the expected key'),
      503: problemResponse('Every upload slot is taken, or the sidecar is shutting down'),
      507: problemResponse('Every level refused the value (full, over a cap)'),
    },
  },
  getBlob: {
    method: 'GET',
    url: '/v1/blobs/:key',
    id: 'getBlob',
    summary: 'Stream a value (copy-on-read into the upper levels); ETag is the key; Range gives 206',
    params: blobParams,
    querystring: getQuery,
    headers: { range: 'bytes=a-b, bytes=a- or bytes=-n (one range)' },
    responses: {
      200: { description: 'The value', bytes: true },
      206: { description: 'The range asked for', bytes: true },
      304: { description: 'If-None-Match named this key', empty: true },
      400: problemResponse('Not a key of this storage'),
      404: problemResponse('Not stored'),
      416: problemResponse('The range does not fit the value'),
      500: problemResponse('Corrupt (with verify=1), or the storage failed'),
    },
  },
  headBlob: {
    method: 'HEAD',
    url: '/v1/blobs/:key',
    id: 'headBlob',
    summary: 'Whether a value is stored, and its size when known (Content-Length)',
    params: blobParams,
    responses: {
      200: { description: 'Stored', empty: true },
      404: { description: 'Not stored', empty: true },
    },
  },
  deleteBlob: {
    method: 'DELETE',
    url: '/v1/blobs/:key',
    id: 'deleteBlob',
    summary: 'Delete a value from every level (only where serve.allowDelete is true)',
    params: blobParams,
    responses: {
      204: { description: 'Deleted', empty: true },
      403: problemResponse('The config does not allow deletes'),
      404: problemResponse('Not stored'),
      502: problemResponse('Deleted from some levels only'),
    },
  },
  blobPath: {
    method: 'GET',
    url: '/v1/blobs/:key/path',
    id: 'blobPath',
    summary:
      'Zero-copy read: copy the value into the top local lake (copy-on-read) and answer the file’s path',
    params: blobParams,
    querystring: getQuery,
    responses: {
      200: { description: 'The file', json: pathResult },
      404: problemResponse('Not stored'),
      409: problemResponse('Stored, but no local lake holds or takes a copy'),
    },
  },
  listKeys: {
    method: 'GET',
    url: '/v1/keys',
    id: 'listKeys',
    summary: 'Every key as NDJSON (streamed, bounded memory), or a sorted page with ?limit',
    querystring: keysQuery,
    responses: {
      200: { description: 'Keys (NDJSON), or with ?limit one page (JSON)', ndjson: keyLine, json: keysPage },
    },
  },
  fetch: {
    method: 'POST',
    url: '/v1/fetch',
    id: 'fetch',
    summary: 'Warm the upper levels with these keys (copy-on-read); says which are stored',
    body: fetchBody,
    responses: {
      200: { description: 'Which keys were found', json: fetchResult },
    },
  },
  describe: {
    method: 'GET',
    url: '/v1/describe',
    id: 'describe',
    summary: 'The location tree, each location probed for reachability',
    responses: { 200: { description: 'The tree', json: description } },
  },
  getMemo: {
    method: 'GET',
    url: '/v1/memo/:callKey',
    id: 'getMemo',
    summary: 'A memo index entry (smartCache): the bytes stored under a call key',
    params: memoParams,
    responses: {
      200: { description: 'The entry', bytes: true },
      404: problemResponse('No entry'),
      501: problemResponse('The config has no memo index'),
    },
  },
  putMemo: {
    method: 'PUT',
    url: '/v1/memo/:callKey',
    id: 'putMemo',
    summary: 'Store a memo index entry (at most 64 KiB); an entry already there stays',
    params: memoParams,
    body: 'bytes',
    responses: {
      201: { description: 'Stored, or an entry was already there', json: memoPutResult },
      409: problemResponse('A different entry is stored under the call key (it stays)'),
      413: problemResponse('Over 64 KiB'),
      501: problemResponse('The config has no memo index'),
    },
  },
  deleteMemo: {
    method: 'DELETE',
    url: '/v1/memo/:callKey',
    id: 'deleteMemo',
    summary: 'Forget a memo entry (the next call computes again)',
    params: memoParams,
    responses: {
      204: { description: 'Forgotten', empty: true },
      404: problemResponse('No entry'),
      501: problemResponse('The config has no memo index'),
    },
  },
  lease: {
    method: 'POST',
    url: '/v1/leases/:name',
    id: 'lease',
    summary:
      'Acquire, renew or release a single-flight lease (Redis key or disk lock of the tree), expiring ttlMs after its last renewal',
    params: leaseParams,
    body: leaseBody,
    responses: {
      200: {
        description: 'Acquired (or held by someone else: acquired false), or renewed',
        json: leaseResult,
      },
      204: { description: 'Released', empty: true },
      409: problemResponse('The token names no lease held any more'),
      501: problemResponse('The tree has no Redis or disk lake to lease from'),
    },
  },
  healthz: {
    method: 'GET',
    url: '/healthz',
    id: 'healthz',
    summary: 'Liveness: the process answers',
    responses: { 200: { description: 'Alive', json: health } },
  },
  readyz: {
    method: 'GET',
    url: '/readyz',
    id: 'readyz',
    summary: 'Readiness: a storage is built and the last config reload succeeded',
    responses: {
      200: { description: 'Ready', json: readiness },
      503: { description: 'Not ready (no storage, or the last reload failed)', json: readiness },
    },
  },
  openapi: {
    method: 'GET',
    url: '/v1/openapi.json',
    id: 'openapi',
    summary: 'This API as an OpenAPI 3.1 document',
    responses: { 200: { description: 'The document', json: z.record(z.string(), z.unknown()) } },
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteId = keyof typeof ROUTES;
