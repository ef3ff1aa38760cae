import { normalizeKey, RefusedError, ServiceError } from '@tarnjs/tarn';
import { ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance } from 'fastify';
import { openShared } from '../shared-file.js';
import type { UploadSlots } from '../slots.js';
import { route } from './route.js';

interface IngestOptions {
  /** Absolute folders shared with the app containers; empty: ingest is off (403). */
  roots: readonly string[];
  slots: UploadSlots;
}

/**
 * POST /v1/blobs/ingest: the write counterpart of GET /v1/blobs/{key}/path. A client on a volume
 * it shares with the sidecar names a file, and the sidecar stores it by reading it itself, as the
 * library does in-process (one read, hashed and written in the same pass): the bytes never cross
 * the socket. Which files may be read is shared-file.ts's job.
 */
export async function ingestRoutes(app: FastifyInstance, options: IngestOptions): Promise<void> {
  const { roots, slots } = options;

  route(app, ROUTES.ingestBlob, async (request, reply) => {
    const storage = request.tree().storage;
    const { path, expect, algorithm } = request.body;
    if (algorithm !== undefined && algorithm !== storage.digest.name)
      throw new ServiceError(
        'TARN_BAD_REQUEST',
        `body.algorithm: this sidecar keys values by ${storage.digest.name}, not ${algorithm}`,
      );
    const expectedKey = expect === undefined ? undefined : normalizeKey(expect, storage.digest);
    const release = slots.take();
    try {
      const file = await openShared(path, roots);
      try {
        const result = await storage.put(file.path, { expectedKey, signal: request.signal });
        return reply.code(201).send({ key: result.key, size: result.size ?? 0, status: result.status });
      } finally {
        await file.close();
      }
    } catch (e) {
      // A file can be offered again: a refusal holds no bytes, but say so to the error's owner.
      if (e instanceof RefusedError) await e.discard();
      throw e;
    } finally {
      release();
    }
  });
}
