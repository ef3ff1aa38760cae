import { type Location, NotFoundError, RefusedError, UnsupportedError } from '@tarnjs/tarn';
import { MEMO_ENTRY_MAX, ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CountedBody } from '../body.js';
import { route } from './route.js';

function indexOf(request: FastifyRequest): Location {
  const index = request.tree().memoIndex;
  if (!index)
    throw new UnsupportedError(
      'this sidecar has no memo index: name one in its config (memo.index), or serve a disk lake',
    );
  return index;
}

/** Memo index entries (smartCache's), stored as smartCache stores them: small documents under call keys. */
export async function memoRoutes(app: FastifyInstance): Promise<void> {
  // Entries are bytes (smartCache's JSON, kept as written): taken as a stream whatever the type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, _payload, done) => done(null, request.raw));

  route(app, ROUTES.getMemo, async (request, reply) => {
    const index = indexOf(request);
    const { callKey } = request.params;
    // Index entries are not named by the hash of their bytes: nothing to check them against.
    const raw = await index.read(callKey, { digest: null, signal: request.signal });
    if (!raw) throw new NotFoundError(callKey);
    try {
      let bytes: Buffer;
      if (raw.bytes) bytes = await raw.bytes({ signal: request.signal });
      else {
        const parts: Buffer[] = [];
        for await (const chunk of raw.stream({ signal: request.signal })) parts.push(chunk as Buffer);
        bytes = Buffer.concat(parts);
      }
      return reply.type('application/octet-stream').send(bytes);
    } finally {
      await raw.close();
    }
  });

  route(app, ROUTES.putMemo, async (request, reply) => {
    const index = indexOf(request);
    const { callKey } = request.params;
    const body = new CountedBody(request.raw, MEMO_ENTRY_MAX, 'a memo entry');
    body.checkDeclared();
    const entry = await body.buffer();
    const signal = request.signal;
    const stage = await index.stage({ key: callKey, size: entry.byteLength, signal });
    if (!stage) throw new RefusedError(`the memo index ${index.kind} ${index.target} refused the entry`);
    try {
      if (!(await stage.push(entry))) {
        await stage.abort();
        throw new RefusedError(`the memo index ${index.kind} ${index.target} refused the entry`);
      }
      const result = await stage.commit(callKey);
      if (result.status === 'refused') {
        await stage.abort();
        throw new RefusedError(result.reason);
      }
      return reply.code(201).send({ callKey, status: result.status });
    } catch (e) {
      // A different entry under the call key (another pod's result for the same call) stays: 409.
      await stage.abort().catch(() => undefined);
      throw e;
    }
  });

  route(app, ROUTES.deleteMemo, async (request, reply) => {
    const index = indexOf(request);
    const { callKey } = request.params;
    if (!(await index.delete(callKey, { signal: request.signal }))) throw new NotFoundError(callKey);
    return reply.code(204).send();
  });
}
