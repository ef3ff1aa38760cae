import {
  CollisionError,
  type Location,
  NotFoundError,
  RefusedError,
  readIndexEntry,
  UnsupportedError,
  writeIndexEntry,
} from '@tarnjs/tarn';
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
    const bytes = await readIndexEntry(index, callKey, request.signal);
    if (!bytes) throw new NotFoundError(callKey);
    return reply.type('application/octet-stream').send(bytes);
  });

  route(app, ROUTES.putMemo, async (request, reply) => {
    const index = indexOf(request);
    const { callKey } = request.params;
    const body = new CountedBody(request.raw, MEMO_ENTRY_MAX, 'a memo entry');
    body.checkDeclared();
    const entry = await body.buffer();
    const signal = request.signal;
    // Twice at most: an entry found stored and then gone before it was compared was deleted in
    // between (a `tarn` housekeeping, another client), and this one is then stored after all.
    for (let attempt = 1; ; attempt++) {
      const status = await writeIndexEntry(index, callKey, entry, signal);
      if (status === 'refused')
        throw new RefusedError(`the memo index ${index.kind} ${index.target} refused the entry`);
      if (status === 'stored') return reply.code(201).send({ callKey, status });
      // An index compares what it already holds by size at most (a disk lake's): the bytes of the
      // stored entry decide whether this is the same result or another pod's different one.
      const stored = await readIndexEntry(index, callKey, signal);
      if (stored?.equals(entry)) return reply.code(201).send({ callKey, status: 'existed' });
      if (stored || attempt === 2)
        throw new CollisionError(callKey, 'another memo entry is stored under this call key');
    }
  });

  route(app, ROUTES.deleteMemo, async (request, reply) => {
    const index = indexOf(request);
    const { callKey } = request.params;
    if (!(await index.delete(callKey, { signal: request.signal }))) throw new NotFoundError(callKey);
    return reply.code(204).send();
  });
}
