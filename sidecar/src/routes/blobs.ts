import { pipeline, type Readable, Transform } from 'node:stream';
import {
  DiskLocation,
  ForbiddenError,
  type HashKeyStorage,
  InvalidKeyError,
  NoLocalCopyError,
  NotFoundError,
  normalizeKey,
  RefusedError,
  ServiceError,
  type StoredValue,
  walkTree,
} from '@tarnjs/tarn';
import { HEADERS, ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CountedBody } from '../body.js';
import { withHeaders } from '../plugins/problem.js';
import type { ServeSettings } from '../settings.js';
import type { UploadSlots } from '../slots.js';
import { route } from './route.js';

/** Values up to this size are verified before their first byte is sent (they are read into memory). */
const VERIFY_FIRST = 1 << 20;
/** Values up to this size are answered from one buffer rather than streamed. */
const IN_ONE_PIECE = 64 << 10;

/** Keys never change their bytes: a response may be cached for as long as caches keep anything. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * A key of this storage's digest, lowercased; InvalidKeyError otherwise. The route schema has only
 * checked that it is hex of a sane length: the exact length is the storage's.
 */
function keyOf(storage: HashKeyStorage, key: string): string {
  return normalizeKey(key, storage.digest);
}

/** The one expected key of an upload (header or `?expect=`); both, and different: 400. */
function expectedKeyOf(request: FastifyRequest<{ Querystring: { expect?: string } }>): string | undefined {
  const header = request.headers[HEADERS.expectedKey];
  if (Array.isArray(header))
    throw new ServiceError('TARN_BAD_REQUEST', `headers.${HEADERS.expectedKey}: given more than once`);
  if (header !== undefined && !/^[0-9a-fA-F]{8,128}$/.test(header))
    throw new InvalidKeyError(header, `headers.${HEADERS.expectedKey} must be 8 to 128 hex digits`);
  const query = request.query.expect;
  if (header !== undefined && query !== undefined && header.toLowerCase() !== query.toLowerCase())
    throw new ServiceError(
      'TARN_BAD_REQUEST',
      `headers.${HEADERS.expectedKey} and querystring.expect name different keys; give one`,
    );
  return header ?? query;
}

/** True when an `If-None-Match` header names this key's ETag (or `*`). */
function matchesEtag(header: string | undefined, key: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim().replace(/^W\//, '');
    return t === '*' || t === `"${key}"`;
  });
}

export type ByteRange = { start: number; end: number };

/**
 * The one range of a `Range` header (RFC 9110 §14.1.2), inclusive, within `size`. Undefined: serve
 * the whole value (no header, or a unit other than bytes, which a server ignores). A range that
 * does not fit, several ranges, or a malformed one: TARN_RANGE (416).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return undefined;
  const unsatisfiable = (why: string) =>
    withHeaders(new ServiceError('TARN_RANGE', `range ${header.slice(0, 100)}: ${why}`), {
      'content-range': `bytes */${size}`,
    });
  const specs = (m[1] as string).split(',');
  if (specs.length > 1) throw unsatisfiable('several ranges are not served; ask for one');
  const r = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(specs[0] as string);
  if (!r || (r[1] === '' && r[2] === '')) throw unsatisfiable('not a byte range (bytes=a-b, a- or -n)');
  const [first, last] = [r[1] as string, r[2] as string];
  if (first === '') {
    const n = Number(last);
    if (n === 0 || size === 0) throw unsatisfiable(`the value has ${size} bytes`);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) throw unsatisfiable('its end is before its start');
  if (start >= size) throw unsatisfiable(`the value has ${size} bytes`);
  return { start, end };
}

/**
 * Passes every chunk but the last, which it holds until the source has ended without error: a
 * verified stream that turns out corrupt at its end fails before its last bytes go out, so the
 * response is cut short and no client ever sees a complete wrong body.
 */
function holdingLast(source: Readable): Readable {
  let held: Buffer | undefined;
  const hold = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback) {
      callback(null, held);
    },
  });
  // Errors reach `hold` (and so the response, which fastify then destroys); nothing else to do here.
  pipeline(source, hold, () => undefined);
  return hold;
}

/**
 * A GET answered from the hot cache: the same answer as from the tree (ETag and 304, one range,
 * `?verify=1`, which kept bytes have passed when they were kept), from one buffer.
 */
function sendKept(request: FastifyRequest, reply: FastifyReply, key: string, bytes: Buffer): FastifyReply {
  const etag = `"${key}"`;
  const { headers } = request;
  reply.header('etag', etag).header('cache-control', IMMUTABLE);
  if (headers['if-none-match'] !== undefined && matchesEtag(headers['if-none-match'], key))
    return reply.code(304).send();
  reply.header(HEADERS.key, key).header('accept-ranges', 'bytes').type('application/octet-stream');
  const ifRange = headers['if-range'];
  const range =
    headers.range !== undefined && (ifRange === undefined || ifRange === etag)
      ? parseRange(headers.range, bytes.byteLength)
      : undefined;
  if (range)
    return reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${bytes.byteLength}`)
      .header('content-length', String(range.end - range.start + 1))
      .send(bytes.subarray(range.start, range.end + 1));
  return reply.header('content-length', String(bytes.byteLength)).send(bytes);
}

interface BlobOptions {
  settings: ServeSettings;
  slots: UploadSlots;
}

export async function blobRoutes(app: FastifyInstance, options: BlobOptions): Promise<void> {
  const { settings, slots } = options;

  // Upload bodies are the value's bytes, whatever their content type (or none): handed over as the
  // request stream, never parsed or buffered. Only in this context: the JSON routes keep their parsers.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, _payload, done) => done(null, request.raw));

  route(app, ROUTES.putBlob, async (request, reply) => {
    const storage = request.tree().storage;
    const expected = expectedKeyOf(request);
    const body = new CountedBody(request.raw, settings.bodyLimit);
    body.checkDeclared();
    const release = slots.take();
    try {
      const expectedKey = expected === undefined ? undefined : keyOf(storage, expected);
      // A small body of known length is read whole first (one piece, bounded by its length): the
      // library then hashes it before anything is written, a value already stored costs a lookup,
      // and the hot cache can keep it.
      const hot = request.tree().hot;
      if (body.declared !== undefined && body.declared <= IN_ONE_PIECE) {
        const bytes = await body.buffer();
        const result = await storage.put(bytes, { expectedKey, signal: request.signal });
        hot?.set(result.key, bytes);
        return reply.code(201).send({ key: result.key, size: bytes.byteLength, status: result.status });
      }
      const result = await storage.put(body.chunks(), { expectedKey, signal: request.signal });
      // Found stored before its bytes were all read: its size is the body's.
      const size = result.size ?? body.declared ?? (await body.drain());
      return reply.code(201).send({ key: result.key, size, status: result.status });
    } catch (e) {
      // A refused stream holds the bytes it read for a replay nobody here will ask for.
      if (e instanceof RefusedError) await e.discard();
      throw e;
    } finally {
      release();
    }
  });

  route(app, ROUTES.getBlob, async (request, reply) => {
    const tree = request.tree();
    const storage = tree.storage;
    const key = keyOf(storage, request.params.key);
    const verify = request.query.verify ?? false;
    // A lookup and a small read in disk lakes alone are a few syscalls: nothing to abort.
    const lookupSignal = tree.abortable ? request.signal : undefined;
    const etag = `"${key}"`;
    const hot = tree.hot;
    const kept = hot?.get(key);
    if (kept !== undefined) return sendKept(request, reply, key, kept);
    if (matchesEtag(request.headers['if-none-match'], key)) {
      if (!(await storage.contains(key, { signal: lookupSignal }))) throw new NotFoundError(key);
      return reply.code(304).header('etag', etag).header('cache-control', IMMUTABLE).send();
    }
    const value = await storage.read(key, { verify, signal: lookupSignal });
    request.whenDone(() => value.close());
    const size = value.size;
    const ifRange = request.headers['if-range'];
    const range =
      size !== undefined && (ifRange === undefined || ifRange === etag)
        ? parseRange(request.headers.range, size)
        : undefined;
    // Small values, and values served in part (a range cannot be checked on its own), are checked
    // whole before the first byte: a corrupt one is a clean 500, and quarantined.
    if (verify && (range || (size !== undefined && size <= VERIFY_FIRST)))
      await value.verify({ signal: request.signal });
    reply
      .header('etag', etag)
      .header(HEADERS.key, key)
      .header('cache-control', IMMUTABLE)
      .header('accept-ranges', 'bytes')
      .type('application/octet-stream');
    if (range && size !== undefined) {
      reply
        .code(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
        .header('content-length', String(range.end - range.start + 1));
      return reply.send(value.range(range.start, range.end, { signal: request.signal }));
    }
    if (size !== undefined) reply.header('content-length', String(size));
    // A small value in one piece: one read where the location can (a file), and no stream machinery,
    // which costs more than the read itself at a few KiB. `bytes()` checks it when verifying.
    if (size !== undefined && size <= IN_ONE_PIECE) {
      const bytes = await value.bytes({ signal: lookupSignal });
      hot?.set(key, bytes);
      return reply.send(bytes);
    }
    const stream = value.stream({ signal: request.signal });
    return reply.send(verify ? holdingLast(stream) : stream);
  });

  route(app, ROUTES.headBlob, async (request, reply) => {
    const { storage, hot } = request.tree();
    const key = keyOf(storage, request.params.key);
    let size = hot?.get(key)?.byteLength;
    if (size === undefined) {
      // Straight from the tree, as housekeeping: a HEAD must not copy a value into the upper levels.
      const raw = await storage.location.read(key, {
        signal: request.signal,
        digest: storage.digest,
        touch: false,
      });
      if (!raw) return reply.code(404).send();
      size = raw.size;
      await raw.close();
    }
    reply.header('etag', `"${key}"`).header(HEADERS.key, key).header('accept-ranges', 'bytes');
    if (size !== undefined) reply.header('content-length', String(size));
    return reply.code(200).type('application/octet-stream').send();
  });

  route(app, ROUTES.deleteBlob, async (request, reply) => {
    if (!settings.allowDelete)
      throw new ForbiddenError('this sidecar does not delete values (its config sets no serve.allowDelete)');
    const { storage, hot } = request.tree();
    const key = keyOf(storage, request.params.key);
    // Forgotten before (a GET racing this delete reads the tree, not the kept copy) and after (such
    // a GET may have kept the bytes it read before the file went).
    hot?.delete(key);
    try {
      if (!(await storage.delete(key, { signal: request.signal }))) throw new NotFoundError(key);
    } finally {
      hot?.delete(key);
    }
    return reply.code(204).send();
  });

  route(app, ROUTES.blobPath, async (request, reply) => {
    const storage = request.tree().storage;
    const key = keyOf(storage, request.params.key);
    const verify = request.query.verify ?? false;
    // A read copies the value into the upper levels of a Levels tree and serves the top-most copy.
    const value: StoredValue = await storage.read(key, { verify, signal: request.signal });
    try {
      if (verify) await value.verify({ signal: request.signal });
      // Served from a level that is no file (Redis above the disk): the copy-on-read also put it in
      // the disk lakes below that level, so the top-most lake that has it gives the file.
      const local =
        value.path !== undefined && value.size !== undefined
          ? { path: value.path, size: value.size }
          : await localCopy(storage, key, request.signal);
      if (local === undefined)
        throw new NoLocalCopyError(
          key,
          'no disk lake of the tree holds it, and none took a copy as it was read',
        );
      // The file outlives the value's handle: a blob file stays where it is until it is deleted.
      return reply.send({ key, ...local });
    } finally {
      await value.close();
    }
  });
}

/** The file of the top-most disk lake of the tree that holds `key`, if any (no copy, no touch). */
async function localCopy(
  storage: HashKeyStorage,
  key: string,
  signal: AbortSignal,
): Promise<{ path: string; size: number } | undefined> {
  for (const { location, first } of walkTree(storage.location)) {
    if (!first || !(location instanceof DiskLocation)) continue;
    const value = await location.read(key, { signal, touch: false, digest: storage.digest });
    if (!value) continue;
    const { path, size } = value;
    await value.close();
    if (path !== undefined && size !== undefined) return { path, size };
  }
  return undefined;
}
